"""Pruning page: prune the sidebar's baseline with chosen settings, see what it measured against the
baseline, every stored pruning of this baseline as curves, and per-layer sensitivity."""

from dataclasses import replace

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from compression import pipeline
from compression.catalog import PRUNE_METHODS, STRUCTURED_METHODS
from compression.recipe import PruneSpec, Recipe
from compression.store import Store

METHOD_HELP = {
    "l1-unstructured": "smallest weights of each layer → zeros (gzip shrinks; dense FLOPs and latency do not)",
    "global-unstructured": "smallest weights under one threshold across layers → zeros",
    "channel-l1": "whole filters / neurons with the smallest L1 norm, removed with their dependants",
    "channel-l2": "whole filters / neurons with the smallest L2 norm, removed with their dependants",
    "activation": "whole channels ranked by λ·weight magnitude + (1−λ)·mean activation",
}

recipe = ui.valid_recipe()
store = Store()
st.title("Pruning")
st.caption("Remove weights (unstructured) or whole channels (structured), fine-tune on the train split, export, "
           "and measure in onnxruntime against the baseline timed in the same process.")

with st.form("prune"):
    left, right = st.columns(2)
    method = left.selectbox("Method", PRUNE_METHODS, key="prune_method",
                            format_func=lambda m: f"{m} — {METHOD_HELP[m]}")
    ratio = left.slider("Fraction removed", 0.0, 0.95, 0.5, 0.05, key="prune_ratio")
    lam = left.slider("λ (activation only): weight magnitude vs activation", 0.0, 1.0, 0.5, 0.05, key="prune_lam")
    steps = right.slider("Prune / fine-tune rounds", 1, 5, 1, key="prune_steps",
                         help="Iterative pruning: the removed fraction rises linearly over the rounds.")
    finetune = right.slider("Fine-tune epochs per round", 0, 30, PruneSpec.finetune_epochs, key="prune_finetune")
    round_to = right.selectbox("Channel methods: round kept channels down to a multiple of", (1, 8, 16),
                               key="prune_round_to", help="onnxruntime's convolutions are fastest on multiples "
                               "of the SIMD block (16 on AVX-512, 8 on AVX2).")
    submitted = st.form_submit_button("Prune and measure", type="primary")

if submitted:
    spec = PruneSpec(method, ratio, steps, finetune, lam, round_to if method in STRUCTURED_METHODS else 1)
    pruned = replace(recipe, prune=spec)
    st.session_state["pruning_last"] = pruned.hash
    ui.run_in_status(f"Pruning {method} at {ratio:.0%}…", lambda progress: pipeline.run(pruned, store, progress))

base = store.get_result(recipe.hash)
last = store.get_result(st.session_state.get("pruning_last", ""))
last_recipe = Recipe.from_dict(last.recipe) if last is not None else None
if last_recipe is not None and last_recipe.prune is not None and last_recipe.baseline() == recipe:
    spec = last_recipe.prune
    st.subheader(f"{spec.method} at {spec.ratio:.0%}, {spec.steps} round(s)")
    st.caption(f"All measured: accuracy by running the exported ONNX file in {last.accuracy_source} on the test "
               "split; latency in onnxruntime, timed interleaved with the baseline in the same process; FLOPs "
               "counted on the exported model; sizes are the ONNX file's bytes.")
    cols = st.columns(6)
    cols[0].metric("Test accuracy", f"{last.accuracy:.2%}",
                   f"{100 * (last.accuracy - last.baseline_accuracy):+.2f} pts vs baseline",
                   help=f"measured in {last.accuracy_source}")
    cols[1].metric("FLOPs", f"{last.flops_ratio_vs_baseline:.2f}×", help=f"{ui.fmt_count(last.flops)} per sample")
    cols[2].metric("Latency p50", f"{1 / last.speedup_vs_baseline:.2f}×",
                   help=f"{last.latency_ms.p50:.3f} ms vs baseline {last.baseline_latency_ms.p50:.3f} ms, "
                        f"batch {last.latency_ms.batch}, {last.latency_ms.threads} thread(s), same process")
    cols[3].metric("ONNX size", f"{last.size_ratio_vs_baseline:.2f}×", help=ui.fmt_bytes(last.size_bytes))
    cols[4].metric("gzip size", f"{last.size_gzip_ratio_vs_baseline:.2f}×", help=ui.fmt_bytes(last.size_gzip_bytes))
    cols[5].metric("Zero weights", f"{last.sparsity:.0%}", help=f"{last.params_nonzero:,} of {last.params_total:,}")
    if not spec.structured:
        st.caption("Unstructured zeros stay in dense tensors: onnxruntime still multiplies them, so FLOPs and "
                   "latency do not fall — only the gzip size shows the sparsity.")
    elif last.speedup_vs_baseline < 1:
        channels = ", ".join(str(layer.shape[0]) for layer in last.layers[:-1])
        st.warning(f"Fewer FLOPs, yet slower than the baseline: the kept channel counts ({channels}) are not "
                   "multiples of the CPU's SIMD block, and onnxruntime's fast convolution layout wants them to "
                   "be (16 on AVX-512, 8 on AVX2). Try rounding kept channels down to a multiple of 16.")

variants = [(r, Recipe.from_dict(r.recipe).prune) for r in pipeline.compressed_variants(recipe, store)]
variants = [(r, spec) for r, spec in variants if spec is not None]
if variants and base is not None:
    st.subheader("Every pruning of this baseline")
    st.caption("Measured: test accuracy in onnxruntime; latency and sizes as ratios to the baseline.")
    table = pd.DataFrame([{
        "method": spec.method + (f" (round to {spec.round_to})" if spec.round_to > 1 else ""),
        "fraction removed": spec.ratio, "rounds": spec.steps, "fine-tune epochs": spec.finetune_epochs,
        "test accuracy": r.accuracy, "latency ×": 1 / r.speedup_vs_baseline, "FLOPs ×": r.flops_ratio_vs_baseline,
        "gzip ×": r.size_gzip_ratio_vs_baseline,
    } for r, spec in variants]).sort_values(["method", "fraction removed"])
    by_ratio = px.line(table, x="fraction removed", y="test accuracy", color="method", markers=True,
                       title="Accuracy vs fraction removed")
    by_latency = px.scatter(table, x="latency ×", y="test accuracy", color="method",
                            hover_data=["fraction removed", "rounds"], title="Accuracy vs latency (ratio to baseline)")
    left, right = st.columns(2)
    for column, figure in ((left, by_ratio), (right, by_latency)):
        figure.add_hline(y=base.accuracy, line_dash="dot", annotation_text="baseline")
        figure.update_yaxes(tickformat=".1%")
        column.plotly_chart(figure, width="stretch")
    st.dataframe(table, hide_index=True, width="stretch")
elif base is None:
    st.info("The baseline is measured the first time you prune (or on the Baseline page).")

st.subheader("Layer sensitivity")
st.caption("Each layer pruned alone at 0.1 … 0.9, no fine-tuning; accuracy measured in torch on the validation "
           "split (not the test split, not onnxruntime): flat lines are layers that tolerate pruning.")
sens_method = st.selectbox("Sensitivity method", PRUNE_METHODS, index=PRUNE_METHODS.index("channel-l2"),
                           key="sensitivity_method")
sensitivity = store.get("sensitivity", recipe.sensitivity_key(sens_method))
if sensitivity is None:
    if st.button("Compute sensitivity"):
        ui.run_in_status("Pruning each layer alone…",
                         lambda progress: pipeline.sensitivity_table(recipe, sens_method, store, progress))
else:
    rows = [{"layer": layer["name"], "fraction removed": ratio, "validation accuracy": accuracy}
            for layer in sensitivity["layers"] for ratio, accuracy in zip(sensitivity["ratios"], layer["accuracy"])]
    st.plotly_chart(px.line(pd.DataFrame(rows), x="fraction removed", y="validation accuracy", color="layer",
                            markers=True), width="stretch")
