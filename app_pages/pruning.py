"""Pruning page: prune the sidebar's baseline with chosen settings and see what it measured against the
baseline; live, the cut the chosen fraction implies on the baseline's weights; every stored pruning of
this baseline as curves; per-layer sensitivity."""

from dataclasses import replace

import streamlit as st

from compression import pipeline, prune, tasks
from compression.catalog import PRUNE_METHODS
from compression.recipe import PruneSpec, Recipe
from compression.result import Result
from ui import figures, forms, live, metrics, notes, outcomes, progress, tables, text, timing
from ui import workspace as ws
from ui.forms import PERSIST

INITIAL = PruneSpec(PRUNE_METHODS.names[0], 0.5)
LEAD = ("Remove weights (unstructured) or whole channels (structured), fine-tune on the train split, export, and "
        "measure in onnxruntime against the baseline timed in the same process.")


def measured(spec: PruneSpec, result: Result, base: Result | None) -> None:
    """The result of the chosen settings against the baseline, and where its weights went."""
    st.subheader(f"{spec.method} at {spec.ratio:.0%}, {spec.steps} round(s)")
    metrics.result_metrics(result, base)
    st.caption(text.provenance_caption(result))
    notes.show(notes.pruned(spec, result))
    cut_and_recovery(result)
    if base is not None and result.layers:
        figures.chart(outcomes.removal_figure(prune.layer_removal(base, result)), percent_y=True, height=320,
                      title="Per layer: how much of the baseline's weights is gone")
        st.caption("Counted on the exported model: a removed channel takes its weights out of its own layer "
                   "and its input columns out of the next (the classifier keeps its outputs, one a class, and "
                   "loses inputs); zeroed weights stay in the tensors.")
    timing.where_the_time_goes(result)


def cut_and_recovery(result: Result) -> None:
    """The core lesson: accuracy right after each cut, beside accuracy after fine-tuning."""
    st.markdown("**Right after the cut, and after fine-tuning**")
    rounds = next((record.rounds for record in result.stages if record.stage == "prune"), [])
    if not rounds:
        st.caption("Accuracy right after the cut was not recorded for this result (computed before it was).")
        return
    last = rounds[-1]
    cols = st.columns(3)
    cols[0].metric("Before pruning", f"{rounds[0].before_cut:.2%}", help="validation split, torch")
    cols[1].metric("Right after the cut", f"{last.after_cut:.2%}", text.points(last.after_cut - last.before_cut),
                   help="validation split, torch: the last round's cut, before its fine-tuning")
    cols[2].metric("After fine-tuning", f"{last.after_finetune:.2%}",
                   text.points(last.after_finetune - last.after_cut), help="validation split, torch")
    figures.chart(outcomes.rounds_figure(rounds), height=320, legend=False,
                  title="Validation accuracy before each cut, right after it and after fine-tuning")
    st.caption("Computed in torch on the validation split during the run (not onnxruntime, not the test split): "
               "each fall (red) is what a cut costs, each rise (blue) what fine-tuning on the train split gives back. "
               "The measured test accuracy is above.")


def where_the_cut_falls(recipe: Recipe, spec: PruneSpec) -> None:
    """Live: the one-shot cut the chosen fraction implies on the stored baseline's weights."""
    st.subheader("Where the cut falls")
    if ws.without_torch_form(recipe, "The live cut"):
        return
    model = ws.trained_baseline(recipe)  # read-only: shared across sessions
    if model is None:
        st.info("The live view appears once the workspace's baseline is trained: the sidebar shows its progress.")
        return
    cuts = prune.pruning_cuts(model, spec.method, spec.ratio, spec.round_to)
    names = [c.name for c in cuts]
    layer = st.selectbox("Layer", names, key="prune_view_layer", **PERSIST)
    cut = cuts[names.index(layer)]
    figures.chart(live.cut_figure(cut), legend=False, height=320,
                  title=f"{layer}: {cut.removed:,} of {cut.total:,} {cut.what} at or below the cut")
    st.caption(f"Computed on the stored baseline's weights (no data, nothing trained): {live.how_cut(spec.method)}. "
               "A one-shot cut; rounds of pruning and fine-tuning move the weights, so the final cut differs.")
    fmap = prune.filter_map(model, spec.method, spec.ratio, layer, spec.round_to)
    what = "filters" if fmap.unit == "filter" else "weights (one row an output)"
    figures.chart(live.filter_map_figure(fmap), legend=False, height=260 if fmap.unit == "filter" else 360,
                  title=f"{layer}: its {what}, the {fmap.removed_count:,} the cut removes in red")
    st.caption("Each cell is one of the layer's " + ("output filters (numbered left to right, row by row), shaded by "
               "its weight norm" if fmap.unit == "filter" else "weights, shaded by its magnitude")
               + ": the same scores and count as the histogram above.")


def every_pruning(results: list[Result], base: Result) -> None:
    """Every stored single-stage pruning of this baseline, as curves and a table."""
    st.subheader("Every pruning of this baseline")
    st.caption("Measured: test accuracy in onnxruntime; latency timed interleaved with the baseline, as a ratio.")
    table = tables.prunings(results)
    left, right = st.columns(2)
    for column, figure, title in zip((left, right), outcomes.pruning_curves(table, base),
                                     ("Accuracy vs fraction removed", "Accuracy vs latency (ratio to baseline)")):
        figures.chart(figure, column, title=title)
    tables.show_table(table, tables.PRUNING_COLUMNS)


def sensitivity(recipe: Recipe) -> None:
    """Per-layer sensitivity: stored, or a button that computes it."""
    st.subheader("Layer sensitivity")
    if ws.without_torch_form(recipe, "Per-layer sensitivity"):
        return
    st.caption("Each layer pruned alone at 0.1 … 0.9, no fine-tuning; accuracy measured in torch on the validation "
               "split (not the test split, not onnxruntime): flat lines are layers that tolerate pruning.")
    method = st.selectbox("Sensitivity method", PRUNE_METHODS.names, index=PRUNE_METHODS.index("channel-l2"),
                          key="sensitivity_method", **PERSIST)
    table = pipeline.stored_sensitivity(recipe, method, ws.store())
    if table is not None:
        figures.chart(outcomes.sensitivity_figure(table), title=f"Sensitivity ({method}, validation split, torch)")
    elif st.button("Compute sensitivity"):
        progress.run_in_status("Pruning each layer alone…", tasks.sensitivity, recipe, method, str(ws.store().root),
                               key=f"sensitivity:{recipe.sensitivity_key(method)}")


def page() -> None:
    recipe = ws.page_head("Pruning", LEAD)
    # Live widgets (no form): the cut follows the slider, and a stored result shows as soon as its settings are
    # chosen again. Only the button starts work.
    box = st.container(border=True)
    with box:
        spec = forms.prune_form("prune", INITIAL)
    run = progress.experiment(box, replace(recipe, prune=spec), "Prune and measure",
                              f"Pruning {spec.method} at {spec.ratio:.0%}…")
    # In its own container: what follows keeps its place whether or not a result shows, so a change of
    # settings redraws only what changed.
    with st.container():
        if run.result is not None:
            measured(spec, run.result, run.space.baseline)
        run.note_not_measured()
    where_the_cut_falls(recipe, spec)
    if (prunings := run.space.single_stage("prune")) and run.space.baseline is not None:
        every_pruning(prunings, run.space.baseline)
    sensitivity(recipe)


page()
