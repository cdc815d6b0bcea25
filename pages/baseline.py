"""Baseline page: the uncompressed model of the sidebar's data set, trained once, measured in onnxruntime."""

import streamlit as st

import ui
from compression import pipeline
from compression.store import Store

recipe = ui.valid_recipe()
store = Store()
st.title("Baseline")
st.caption("The uncompressed model every compressed variant is compared against: trained on the train split, "
           "exported to ONNX, scored on the held-out test split by running that ONNX file in onnxruntime.")

result = store.get_result(recipe.hash)
if result is None:
    quick = (recipe.dataset, recipe.model) == ("digits", "cnn")
    hint = " digits / cnn takes under a minute on two cores." if quick else ""
    st.info(f"No baseline yet for **{recipe.model}** on **{recipe.dataset}** (seed {recipe.seed}, "
            f"{recipe.epochs} epochs).{hint}")
    if st.button("Train and measure baseline", type="primary"):
        ui.run_in_status("Training and measuring the baseline…",
                         lambda progress: pipeline.run(recipe, store, progress))

else:
    latency, single = result.latency_ms, result.latency_ms_single
    cols = st.columns(5)
    cols[0].metric("Test accuracy", f"{result.accuracy:.2%}", help=f"measured in {result.accuracy_source}")
    cols[1].metric("ONNX size", ui.fmt_bytes(result.size_bytes), help=f"gzip: {ui.fmt_bytes(result.size_gzip_bytes)}")
    cols[2].metric("FLOPs / sample", ui.fmt_count(result.flops))
    cols[3].metric(f"Latency p50 · batch {latency.batch}", f"{latency.p50:.3f} ms",
                   help=f"p90 {latency.p90:.3f} ms over {latency.runs} runs, {latency.threads} thread(s)")
    cols[4].metric("Latency p50 · batch 1", f"{single.p50:.3f} ms",
                   help=f"p90 {single.p90:.3f} ms over {single.runs} runs, {single.threads} thread(s)")
    flags = ", ".join(f for f, on in result.provenance.get("cpu_flags", {}).items() if on) or "none"
    st.caption(f"Measured: {result.provenance.get('runtime')}, {latency.threads} intra-op thread(s), spinning off; "
               f"CPU flags {flags}. Parameters {result.params_total:,} ({result.params_nonzero:,} non-zero). "
               f"Validation accuracy {result.val_accuracy:.2%}. Stored {result.created_at} as {result.recipe_hash}.")
    with st.expander("Per-layer weights"):
        st.dataframe([vars(layer) for layer in result.layers], hide_index=True)
    with st.expander("Result JSON"):
        st.json(result.to_dict())
