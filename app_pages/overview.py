"""Overview: what the three compression families do, the workspace's measured baseline, a few images of its
data set, and the Pareto chart of everything measured on this workspace so far."""

import json

import numpy as np
import streamlit as st

import ui
from compression.errors import CompressionError
from compression.pareto import METRICS

FAMILIES = (
    ("Pruning", ":material/content_cut:", "app_pages/pruning.py",
     "**Remove what the network does not need.** Trained networks are over-parameterised: many weights are "
     "near zero and many channels barely matter. *Unstructured* pruning zeroes single weights — the file "
     "compresses, but a dense runtime still multiplies the zeros. *Structured* pruning removes whole channels: "
     "fewer FLOPs, a smaller file and, when the kept counts suit the CPU, less latency. Fine-tuning afterwards "
     "wins most of the accuracy back."),
    ("Quantization", ":material/grain:", "app_pages/quantization.py",
     "**Store and compute with fewer bits.** An affine mapping *x ≈ scale · (q − zero point)* puts 32-bit floats "
     "on an 8-bit integer grid: about 4× smaller, and faster where the CPU has integer dot-product instructions. "
     "Calibration on training images picks the activation ranges; below 8 bits no CPU runtime executes the "
     "model, so those accuracies are *simulated* in torch and marked so."),
    ("Distillation", ":material/school:", "app_pages/distillation.py",
     "**Teach a small student to mimic a large teacher.** The student learns from the teacher's softened "
     "outputs at temperature *T* — which wrong classes look alike — as well as from the labels: "
     "*α · T² · KL(teacher ‖ student) + (1 − α) · cross-entropy*. The same student trained on labels alone "
     "is the control that shows what the teacher added."),
)
SAMPLE_PX = 80  # the width a sample image is shown at

recipe = ui.baseline_recipe()
st.title("Compression Explorer")
st.markdown("Make a trained network **smaller and faster** and see what it costs in accuracy — every number "
            "below is measured on a held-out test split, on the exported file a user would ship.")

for column, (name, icon, page, text) in zip(st.columns(3), FAMILIES):
    with column.container(border=True, height="stretch"):
        st.subheader(name, anchor=False)
        st.markdown(text)
        st.page_link(page, label=f"Try {name.lower()}", icon=icon)

try:
    recipe.validate()
except CompressionError as exc:
    st.error(str(exc))
    st.stop()

store = ui.Store()
base, results = ui.workspace_results(recipe, store)

st.header("The baseline", anchor=False)
st.caption(f"{ui.workspace_label(recipe)} — the uncompressed model every variant is compared against: trained on "
           "the train split, exported to ONNX, scored on the held-out test split by running that ONNX file in "
           "onnxruntime.")
if base is None:
    job = ui.find_job(recipe.hash)
    if job is not None and job.error:
        st.error(job.error)
    else:
        st.info(f"The baseline of **{ui.workspace_label(recipe)}** is training — progress in the sidebar. It is "
                "measured once and stored; this page fills in when it is done.", icon=":material/hourglass_top:")
else:
    latency, single = base.latency_ms, base.latency_ms_single
    cols = st.columns(6)
    cols[0].metric("Test accuracy", f"{base.accuracy:.2%}", help=f"measured in {base.accuracy_source}, test split")
    cols[1].metric("ONNX size", ui.fmt_bytes(base.size_bytes), help="bytes of the deployable ONNX file")
    cols[2].metric("gzip size", ui.fmt_bytes(base.size_gzip_bytes), help="where unstructured zeros show")
    cols[3].metric("FLOPs / sample", ui.fmt_count(base.flops), help="counted on the exported model")
    for col, lat in ((cols[4], latency), (cols[5], single)):
        col.metric(f"Batch-{lat.batch} latency", f"{lat.p50:.3f} ms",
                   help=f"median (p50) of {lat.runs} runs of a batch of {lat.batch}; p90 {lat.p90:.3f} ms; "
                        f"{lat.threads} thread(s)")
    flags = ", ".join(f for f, on in base.provenance.get("cpu_flags", {}).items() if on) or "none"
    st.caption(f"All measured: {base.provenance.get('runtime', 'onnxruntime')} CPU, {latency.threads} intra-op "
               f"thread(s), spinning off; CPU flags {flags}. Parameters {base.params_total:,} "
               f"({base.params_nonzero:,} non-zero). Validation accuracy {base.val_accuracy:.2%}. Stored "
               f"{ui.fmt_time(base.created_at)} as `{base.recipe_hash}`.")
    with st.expander("Per-layer weights and the full result"):
        # Markdown and a download, not st.dataframe / st.json: their JavaScript (about 2 MB) would load with
        # the first page a browser opens even while this is folded.
        st.markdown("| layer | shape | weights | non-zero |\n|---|---|---|---|\n" + "\n".join(
            f"| `{layer.name}` | {' × '.join(map(str, layer.shape))} | {layer.weights:,} | {layer.nonzero:,} |"
            for layer in base.layers))
        st.download_button("Download the full result (JSON)", json.dumps(base.to_dict(), indent=2),
                           file_name=f"baseline-{base.recipe_hash}.json", mime="application/json")


@st.cache_data(show_spinner=False, max_entries=8)
def sample_images(dataset: str, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """One train-split image a class (at most 10), as `ui.screen_image` draws it, enlarged to about SAMPLE_PX."""
    from compression import pipeline  # shares the loaded splits with the jobs

    splits = pipeline.load_splits(dataset, seed)
    mean = np.asarray(splits.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(splits.std, dtype=np.float32).reshape(-1, 1, 1)
    labels = splits.train.y.numpy()
    images, captions = [], []
    for index, name in enumerate(splits.classes[:10]):
        where = np.flatnonzero(labels == index)
        if not len(where):
            continue
        x = ui.screen_image(splits.train.x[where[0]].numpy() * std + mean)
        factor = max(1, SAMPLE_PX // x.shape[1])  # whole pixels: an 8×8 digit stays sharp
        images.append(x.repeat(factor, axis=0).repeat(factor, axis=1))
        captions.append(name)
    return images, captions


st.header("The data", anchor=False)
local = recipe.dataset == "digits" or recipe.dataset.startswith("imagefolder:")
if base is None and not local:
    st.caption("Sample images show once the data set is on disk (it downloads with the baseline's training).")
else:
    try:
        images, captions = sample_images(recipe.dataset, recipe.seed)
    except CompressionError as exc:
        st.warning(str(exc))
    else:
        st.image(images, caption=captions, width=SAMPLE_PX)
        st.caption(f"One image a class from the train split of **{recipe.dataset}** (the test split is kept for "
                   "final scores only).")

st.header("Everything measured so far", anchor=False)
if base is None:
    st.caption("The Pareto chart appears once the baseline is measured.")
else:
    metric = st.segmented_control("Cost axis", METRICS, default="size", key="overview_metric", required=True,
                                  format_func=ui.METRIC_NAMES.get,
                                  **ui.PERSIST)
    st.plotly_chart(ui.tradeoff_figure(results, metric, base, height=420), width="stretch", key="overview_chart")
    notes = [ui.CHART_NOTE]
    if (missing := ui.unplotted_note(results, metric, base)) is not None:
        notes.append(missing)
    if not results:
        notes.append("Only the baseline so far: compress it on a technique page and every result lands here.")
    st.caption(" ".join(notes))
    st.page_link("app_pages/tradeoffs.py", label="Explore every result on the Trade-offs page",
                 icon=":material/scatter_plot:")
