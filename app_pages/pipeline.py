"""Pipeline: combine distillation, pruning and quantization in a chosen order on the workspace's baseline, and
see the path from the baseline to the final model stage by stage (Result.stages) on the trade-off chart."""

from dataclasses import asdict, replace
from itertools import permutations

import streamlit as st

from compression import describe, workspace
from compression.catalog import STAGES
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.result import Result
from ui import figures, forms, metrics, progress, tables, text, timing
from ui import workspace as ws
from ui.forms import PERSIST

INITIAL = {"distill": DistillSpec(), "prune": PruneSpec("channel-l2", 0.5), "quant": QuantSpec("int8-static")}
TITLES = {"distill": "Distil", "prune": "Prune", "quant": "Quantize"}
ON = {"distill": False, "prune": True, "quant": True}
LEAD = ("Combine the three families on the workspace's baseline — distil into a smaller student, prune it, "
        "quantize it — in the order you choose, and follow the model from the baseline to the final file stage by "
        "stage. Every stage's model is exported and measured; prefixes shared with earlier runs are reused.")


def stage_forms(recipe: Recipe) -> dict[str, object]:
    """One bordered column a stage: its toggle over its shared form; the specs of the stages turned on."""
    specs = {}
    for column, stage in zip(st.columns(3), STAGES):
        with column.container(border=True):
            on = st.toggle(TITLES[stage], value=ON[stage], key=f"pipe_{stage}", **PERSIST)
            if stage == "distill":
                spec = forms.distill_form("pipe", INITIAL[stage], recipe.model, disabled=not on, columns=1)
            elif stage == "prune":
                spec = forms.prune_form("pipe", INITIAL[stage], disabled=not on, columns=1)
            else:
                spec = forms.quant_form("pipe", INITIAL[stage], disabled=not on, columns=1).spec
            if on:
                specs[stage] = spec
    return specs


def path(result: Result, space: workspace.Workspace) -> None:
    """The recipe's path from the baseline through each stage, on the trade-off chart and as a table."""
    st.subheader("The path, stage by stage", anchor=False)
    metric = st.segmented_control("Cost axis", ("size", "flops"), default="size", required=True, key="pipe_metric",
                                  format_func=figures.METRIC_NAMES.get,
                                  help="Stages are not timed one by one (only the final model is), so the path is "
                                       "drawn against size or FLOPs.")
    figure = figures.tradeoff_figure(space.without(result.recipe_hash), metric, space.baseline, dim=True)
    figures.add_path(figure, result.stages, metric)
    st.plotly_chart(figure, width="stretch", key="pipe_chart")
    st.caption("The thick line is this recipe: from the baseline (★) through each stage to the final model. Faded "
               "points are the workspace's other results; ◇ marks a simulated accuracy (torch), ● a measured one "
               "(onnxruntime). Sizes are ONNX file bytes unless a stage says otherwise.")
    tables.show_table(tables.stages_table(result.stages), tables.STAGE_COLUMNS)


def page() -> None:
    recipe = ws.page_head("Pipeline", LEAD)
    specs = stage_forms(recipe)
    if not specs:
        st.info("Turn on at least one stage: the pipeline starts from the baseline shown in the sidebar.")
        st.stop()
    order = st.selectbox("Order", list(permutations(specs)), key=f"pipe_order_{'-'.join(specs)}", **PERSIST,
                         format_func=lambda o: "baseline → " + " → ".join(describe.STAGE_NAMES[s] for s in o),
                         help="Order matters: pruning a quantized model fine-tunes through the quantizer; distilling "
                              "last trains the student from an already compressed teacher.")
    built = replace(recipe, order=(*order, *(s for s in STAGES if s not in order)), **specs)
    checked = progress.runnable(built)
    result = None
    if checked is not None:
        st.markdown(f"**Recipe** — {describe.recipe(built)}")
        result = ws.store().get_result(built.hash)
    if result is None:
        if checked is not None:
            progress.unmeasured_note(built, "Run pipeline", "trains, exports and measures every stage (stages shared "
                                                            "with earlier runs come from the store), ")
        clicked = st.button("Run pipeline", type="primary", key="pipe_run", disabled=checked is None)
        result = progress.measured(checked, clicked, f"Running {describe.order(built)}…")
        if result is None:
            st.stop()
    space = workspace.load(recipe, ws.store())
    st.subheader("Final model vs the baseline", anchor=False)
    metrics.result_metrics(result, space.baseline)
    path(result, space)
    if result.distill is not None:
        st.subheader("What the teacher added", anchor=False)
        metrics.kd_gain(result.distill, result.test_images)
    if result.quant is not None:
        with st.expander("Quantization details"):
            st.json({k: v for k, v in asdict(result.quant).items() if k != "layers"}, expanded=False)
    st.caption(text.provenance_caption(result))
    timing.where_the_time_goes(result)


page()
