"""Overview: what the three compression families do, the workspace's measured baseline, a few images of its
data set, and the Pareto chart of everything measured on this workspace so far."""

import json

import streamlit as st

from compression import describe, workspace
from compression.data import screen_image
from compression.errors import CompressionError
from compression.pareto import METRICS
from compression.result import Result
from ui import figures, metrics
from ui import workspace as ws
from ui.forms import PERSIST

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


def families() -> None:
    for column, (name, icon, page, text) in zip(st.columns(3), FAMILIES):
        with column.container(border=True, height="stretch"):
            st.subheader(name, anchor=False)
            st.markdown(text)
            st.page_link(page, label=f"Try {name.lower()}", icon=icon)


def baseline(base: Result) -> None:
    metrics.baseline_row(base)
    with st.expander("Per-layer weights and the full result"):
        # Markdown and a download, not st.dataframe / st.json: their JavaScript (about 2 MB) would load with
        # the first page a browser opens even while this is folded.
        st.markdown("| layer | shape | weights | non-zero |\n|---|---|---|---|\n" + "\n".join(
            f"| `{layer.name}` | {' × '.join(map(str, layer.shape))} | {layer.weights:,} | {layer.nonzero:,} |"
            for layer in base.layers))
        st.download_button("Download the full result (JSON)", json.dumps(base.to_dict(), indent=2),
                           file_name=f"baseline-{base.recipe_hash}.json", mime="application/json")


def samples(dataset: str, seed: int, stored: bool) -> None:
    local = dataset == "digits" or dataset.startswith("imagefolder:")
    if not stored and not local:
        st.caption("Sample images show once the data set is on disk (it downloads with the baseline's training).")
        return
    try:
        images = ws.sample_images(dataset, seed)
    except CompressionError as exc:
        st.warning(str(exc))
        return
    st.image([screen_image(p, SAMPLE_PX) for p in images.pixels], caption=images.names, width=SAMPLE_PX)
    st.caption(f"One image a class from the train split of **{dataset}** (the test split is kept for final scores "
               "only).")


def page() -> None:
    recipe = ws.baseline_recipe()
    st.title("Compression Explorer")
    st.markdown("Make a trained network **smaller and faster** and see what it costs in accuracy — every number "
                "below is measured on a held-out test split, on the exported file a user would ship.")
    families()
    try:
        ws.check(recipe)
    except CompressionError as exc:
        st.error(str(exc))
        st.stop()
    space = workspace.load(recipe, ws.store())

    st.header("The baseline", anchor=False)
    st.caption(f"{describe.workspace(recipe)} — the uncompressed model every variant is compared against: trained on "
               "the train split, exported to ONNX, scored on the held-out test split by running that ONNX file in "
               "onnxruntime.")
    if space.baseline is not None:
        baseline(space.baseline)
    elif (error := ws.baseline_error(recipe)) is not None:
        st.error(error)
    else:
        st.info(f"The baseline of **{describe.workspace(recipe)}** is training — progress in the sidebar. It is "
                "measured once and stored; this page fills in when it is done.", icon=":material/hourglass_top:")

    st.header("The data", anchor=False)
    samples(recipe.dataset, recipe.seed, space.baseline is not None)

    st.header("Everything measured so far", anchor=False)
    if space.baseline is None:
        st.caption("The Pareto chart appears once the baseline is measured.")
        return
    metric = st.segmented_control("Cost axis", METRICS, default="size", key="overview_metric", required=True,
                                  format_func=figures.METRIC_NAMES.get, **PERSIST)
    st.plotly_chart(figures.tradeoff_figure(space.results, metric, space.baseline, height=420), width="stretch",
                    key="overview_chart")
    st.caption(figures.chart_notes(space.results, metric, space.baseline, "" if space.results else
                                   "Only the baseline so far: compress it on a technique page and every result "
                                   "lands here."))
    st.page_link("app_pages/tradeoffs.py", label="Explore every result on the Trade-offs page",
                 icon=":material/scatter_plot:")


page()
