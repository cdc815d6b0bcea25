"""Pruning page: prune the sidebar's baseline with chosen settings and see what it measured against the
baseline; live, the cut the chosen fraction implies on the baseline's weights; every stored pruning of
this baseline as curves; per-layer sensitivity."""

from dataclasses import replace

import pandas as pd
import streamlit as st

import ui
import views
from compression import pipeline, prune
from compression.catalog import MAX_PRUNE_RATIO, PRUNE_METHODS, STRUCTURED_METHODS
from compression.recipe import PruneSpec, Recipe
from compression.store import Store

METHOD_HELP = {
    "l1-unstructured": "smallest weights of each layer → zeros (gzip shrinks; dense FLOPs and latency do not)",
    "global-unstructured": "smallest weights under one threshold across layers → zeros",
    "channel-l1": "whole filters / neurons with the smallest L1 norm, removed with their dependants",
    "channel-l2": "whole filters / neurons with the smallest L2 norm, removed with their dependants",
    "activation": "whole channels ranked by λ·weight magnitude + (1−λ)·mean activation",
}
REMOVED, ZEROED = "removed (tensors shrank)", "zeroed (still in the tensors)"  # the per-layer bars' two parts

recipe = ui.valid_recipe()
store = Store()
model = views.trained_baseline(recipe, store)  # None until the workspace's baseline is trained; read-only
st.title("Pruning")
st.caption("Remove weights (unstructured) or whole channels (structured), fine-tune on the train split, export, "
           "and measure in onnxruntime against the baseline timed in the same process.")

# Live widgets (no form): the cut below follows the slider, and a stored result shows as soon as its
# settings are chosen again. Only the button starts work.
with st.container(border=True):
    left, right = st.columns(2)
    method = left.selectbox("Method", PRUNE_METHODS, key="prune_method", **ui.PERSIST,
                            format_func=lambda m: f"{m} — {METHOD_HELP[m]}")
    ratio = left.slider("Fraction removed", 0.0, MAX_PRUNE_RATIO, 0.5, 0.05, key="prune_ratio", **ui.PERSIST)
    lam = left.slider("λ (activation only): weight magnitude vs activation", 0.0, 1.0, 0.5, 0.05, key="prune_lam",
                      disabled=method != "activation", **ui.PERSIST)
    steps = right.slider("Prune / fine-tune rounds", 1, 5, 1, key="prune_steps", **ui.PERSIST,
                         help="Iterative pruning: the removed fraction rises linearly over the rounds.")
    finetune = right.select_slider("Fine-tune epochs per round", views.EPOCH_CHOICES, PruneSpec.finetune_epochs,
                                   key="prune_finetune", **ui.PERSIST)
    kd = right.checkbox(views.PRUNE_KD_LABEL, key="prune_kd", help=views.PRUNE_KD_HELP, **ui.PERSIST)
    round_to = right.selectbox("Channel methods: round kept channels down to a multiple of", (1, 8, 16),
                               key="prune_round_to", **ui.PERSIST, disabled=method not in STRUCTURED_METHODS,
                               help="onnxruntime's convolutions are fastest on multiples of the SIMD block "
                                    "(16 on AVX-512, 8 on AVX2).")
    structured = method in STRUCTURED_METHODS
    spec = PruneSpec(method, ratio, steps, finetune, lam if method == "activation" else PruneSpec.lam,
                     round_to if structured else 1, kd)
    pruned = views.runnable(replace(recipe, prune=spec), store)  # refused before any work, as the pipeline would
    run_clicked = st.button("Prune and measure", type="primary", disabled=pruned is None)

result = views.measured(pruned, run_clicked, store, f"Pruning {method} at {ratio:.0%}…")
base = views.stored_baseline(recipe, store)

# ------------------------------------------------------------------ the result of the chosen settings
# In its own container: what follows keeps its place on the page whether or not a result shows, so a
# change of settings redraws only what changed.
with st.container():
    if result is not None:
        st.subheader(f"{spec.method} at {spec.ratio:.0%}, {spec.steps} round(s)")
        views.result_metrics(result, base)
        st.caption(views.provenance_caption(result))
        if not spec.structured:
            st.info("Unstructured zeros stay in dense tensors: onnxruntime still multiplies them, so FLOPs and "
                    "latency do not fall — only the gzip size shows the sparsity.", icon=":material/info:")
        elif result.speedup_vs_baseline is not None and result.speedup_vs_baseline < 1:
            channels = ", ".join(str(layer.shape[0]) for layer in result.layers[:-1])
            st.warning(f"Fewer FLOPs, yet slower than the baseline: the kept channel counts ({channels}) are not "
                       "multiples of the CPU's SIMD block, and onnxruntime's fast convolution layout wants them to "
                       "be (16 on AVX-512, 8 on AVX2). Try rounding kept channels down to a multiple of 16.")
        if base is not None and result.layers:
            before = {layer.name: layer.weights for layer in base.layers}
            rows = []
            for layer in result.layers:
                total = before.get(layer.name, layer.weights)
                zeroed = layer.weights - layer.nonzero
                rows += [{"layer": layer.name, "what": REMOVED, "fraction": 1 - layer.weights / total},
                         {"layer": layer.name, "what": ZEROED, "fraction": zeroed / total}]
            bars = views.grouped_figure(pd.DataFrame(rows), "layer", "fraction", "what", kind="bar",
                                        colors={REMOVED: views.COLORS["measured"], ZEROED: views.COLORS["accent"]})
            bars.update_layout(barmode="stack")
            bars.update_yaxes(range=[0, 1], title="share of the baseline's weights")
            views.chart(bars, title="Per layer: how much of the baseline's weights is gone", percent_y=True,
                        height=320)
            st.caption("Counted on the exported model: a removed channel takes its weights out of its own layer "
                       "and its input columns out of the next (the classifier keeps its outputs, one a class, and "
                       "loses inputs); zeroed weights stay in the tensors.")
    elif pruned is not None:
        st.info("Not measured with these settings yet: **Prune and measure** stores the result, and it shows "
                "here at once whenever these settings are chosen again.", icon=":material/science:")

# ------------------------------------------------------------ live: the cut on the baseline's weights
st.subheader("Where the cut falls")
if model is None:
    st.info("The live view appears once the workspace's baseline is trained: the sidebar shows its progress.")
else:
    cuts = prune.pruning_cuts(model, method, ratio, round_to if structured else 1)
    names = [c.name for c in cuts]
    layer = st.selectbox("Layer", names, key="prune_view_layer", **ui.PERSIST)
    cut = cuts[names.index(layer)]
    what = "weights" if cut.unit == "|weight|" else "channels"
    hist = views.histogram_figure(cut.counts, cut.edges, name=cut.unit, below=cut.threshold)
    hist.add_vline(x=cut.threshold, line_dash="dash", line_color=views.COLORS["threshold"],
                   annotation_text=f"cut {cut.threshold:.3g}", annotation_font_color=views.COLORS["threshold"])
    hist.update_xaxes(title=cut.unit)
    hist.update_yaxes(title=what)
    views.chart(hist, title=f"{layer}: {cut.removed:,} of {cut.total:,} {what} at or below the cut", legend=False,
                height=320)
    if method == "global-unstructured":
        how = "one threshold across all layers: layers with small weights lose more"
    elif structured:
        how = ("each output channel's weight norm; the classifier keeps its classes. torch-pruning scores whole "
               "dependency groups (a channel with the inputs it feeds)"
               + (" and activation importance also weighs activations" if method == "activation" else "")
               + ", so the exact channels can differ")
    else:
        how = "the layer's own threshold"
    st.caption(f"Computed on the stored baseline's weights (no data, nothing trained): {how}. A one-shot cut; "
               "rounds of pruning and fine-tuning move the weights, so the final cut differs.")

# ------------------------------------------------------------ every stored pruning of this baseline
variants = [(r, Recipe.from_dict(r.recipe)) for r in ui.workspace_results(recipe, store)[1]]
variants = [(r, rec.prune) for r, rec in variants if rec.stages == ("prune",)]
if variants and base is not None:
    st.subheader("Every pruning of this baseline")
    st.caption("Measured: test accuracy in onnxruntime; latency timed interleaved with the baseline, as a ratio.")
    table = pd.DataFrame([{
        "settings": f"{s.method} ({ui.prune_settings(s)})",
        "fraction removed": s.ratio, "rounds": s.steps, "fine-tune epochs": s.finetune_epochs,
        "test accuracy": r.accuracy, "latency ×": 1 / r.speedup_vs_baseline, "FLOPs ×": r.flops_ratio_vs_baseline,
        "gzip ×": r.size_gzip_ratio_vs_baseline,
    } for r, s in variants]).sort_values(["settings", "fraction removed"])
    unpruned = pd.DataFrame([{"settings": m, "fraction removed": 0.0, "test accuracy": base.accuracy}
                             for m in table["settings"].unique()])  # every curve starts at the baseline
    by_ratio = views.grouped_figure(pd.concat([unpruned, table]).sort_values(["settings", "fraction removed"]),
                                    "fraction removed", "test accuracy", "settings")
    by_latency = views.grouped_figure(table, "latency ×", "test accuracy", "settings", kind="markers",
                                      hover=("fraction removed", "rounds"))
    by_latency.add_vline(x=1, line_dash="dot", line_color=views.COLORS["baseline"])
    left, right = st.columns(2)
    for column, figure, title in ((left, by_ratio, "Accuracy vs fraction removed"),
                                  (right, by_latency, "Accuracy vs latency (ratio to baseline)")):
        views.baseline_line(figure, base.accuracy)
        figure.update_yaxes(tickformat=".1%")
        views.chart(figure, column, title=title)
    ui.show_table(table, {"test accuracy": ui.ACCURACY_COLUMN,
                          "fraction removed": st.column_config.NumberColumn(format="%.2f"),
                          "latency ×": st.column_config.NumberColumn(format="%.2f"),
                          "FLOPs ×": ui.RATIO_COLUMN, "gzip ×": ui.RATIO_COLUMN})

# ------------------------------------------------------------ sensitivity
st.subheader("Layer sensitivity")
st.caption("Each layer pruned alone at 0.1 … 0.9, no fine-tuning; accuracy measured in torch on the validation "
           "split (not the test split, not onnxruntime): flat lines are layers that tolerate pruning.")
sens_method = st.selectbox("Sensitivity method", PRUNE_METHODS, index=PRUNE_METHODS.index("channel-l2"),
                           key="sensitivity_method", **ui.PERSIST)
sensitivity = store.get("sensitivity", recipe.sensitivity_key(sens_method))
if sensitivity is None:
    if st.button("Compute sensitivity"):
        ui.run_in_status("Pruning each layer alone…",
                         lambda progress: pipeline.sensitivity_table(recipe, sens_method, store, progress),
                         key=f"sensitivity:{recipe.sensitivity_key(sens_method)}")
else:
    rows = [{"layer": layer["name"], "fraction removed": r, "validation accuracy": accuracy}
            for layer in sensitivity["layers"] for r, accuracy in zip(sensitivity["ratios"], layer["accuracy"])]
    figure = views.grouped_figure(pd.DataFrame(rows), "fraction removed", "validation accuracy", "layer")
    figure.add_hline(y=sensitivity["baseline_val_accuracy"], line_dash="dot", line_color=views.COLORS["baseline"],
                     annotation_text="unpruned", annotation_position="bottom left")
    figure.update_yaxes(tickformat=".0%")
    views.chart(figure, title=f"Sensitivity ({sens_method}, validation split, torch)")
