"""Pipeline: combine distillation, pruning and quantization in a chosen order on the workspace's baseline, and
see the path from the baseline to the final model stage by stage (Result.stages) on the trade-off chart."""

from dataclasses import replace
from itertools import permutations

import streamlit as st

import ui
import views
from compression.catalog import (CALIBRATIONS, GRANULARITIES, MAX_BITS, MAX_PRUNE_RATIO, MAX_TEMPERATURE, MAX_WIDTH,
                                 MIN_BITS, MIN_TEMPERATURE, MIN_WIDTH, PRUNE_METHODS, QAT_MODES, QUANT_MODES,
                                 STAGES, STRUCTURED_METHODS, WIDTH_MODELS)
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, QuantSpec

QUANT_HELP = {"fp32": "float ONNX, no quantization", "fp16": "half-precision weights (onnxruntime)",
              "int8-static": "int8 weights and activations, calibrated (onnxruntime QDQ)",
              "int8-dynamic": "int8 weights, activations quantized on the fly (onnxruntime)",
              "fake": "k-bit, simulated in torch (no runtime executes it)"}

recipe = ui.valid_recipe()
store = ui.Store()
st.title("Pipeline")
st.caption("Combine the three families on the workspace's baseline — distil into a smaller student, prune it, "
           "quantize it — in the order you choose, and follow the model from the baseline to the final file stage "
           "by stage. Every stage's model is exported and measured; prefixes shared with earlier runs are reused.")

distill_col, prune_col, quant_col = st.columns(3)
with distill_col.container(border=True):
    use_distill = st.toggle("Distil", value=False, key="pipe_distill", **ui.PERSIST)
    widths = [w / 8 for w in range(int(MIN_WIDTH * 8), int(MAX_WIDTH * 8) + 1)]
    width = st.select_slider("Student width (× the teacher's channels)", widths, value=DistillSpec.width,
                             key="pipe_width", disabled=not use_distill or recipe.model not in WIDTH_MODELS,
                             format_func=lambda w: f"{w:g}", **ui.PERSIST)
    temperature = st.slider("Temperature T", MIN_TEMPERATURE, MAX_TEMPERATURE, DistillSpec.temperature, 0.5,
                            key="pipe_temperature", disabled=not use_distill, **ui.PERSIST)
    alpha = st.slider("α (weight of the teacher's soft targets)", 0.0, 1.0, DistillSpec.alpha, 0.05, key="pipe_alpha",
                      disabled=not use_distill, **ui.PERSIST)
    distill_epochs = st.select_slider("Student epochs", views.EPOCH_CHOICES[1:], DistillSpec.epochs,
                                      key="pipe_distill_epochs", disabled=not use_distill, **ui.PERSIST)
with prune_col.container(border=True):
    use_prune = st.toggle("Prune", value=True, key="pipe_prune", **ui.PERSIST)
    method = st.selectbox("Method", PRUNE_METHODS, index=PRUNE_METHODS.index("channel-l2"), key="pipe_method",
                          disabled=not use_prune, **ui.PERSIST)
    ratio = st.slider("Fraction removed", 0.0, MAX_PRUNE_RATIO, 0.5, 0.05, key="pipe_ratio", disabled=not use_prune,
                      **ui.PERSIST)
    finetune = st.select_slider("Fine-tune epochs per round", views.EPOCH_CHOICES, PruneSpec.finetune_epochs,
                                key="pipe_finetune", disabled=not use_prune, **ui.PERSIST)
    prune_kd = st.checkbox(views.PRUNE_KD_LABEL, key="pipe_prune_kd", help=views.PRUNE_KD_HELP,
                           disabled=not use_prune, **ui.PERSIST)
    steps = st.slider("Prune / fine-tune rounds", 1, 5, 1, key="pipe_steps", disabled=not use_prune, **ui.PERSIST)
    round_to = st.selectbox("Channel methods: round kept channels to a multiple of", (1, 8, 16), key="pipe_round_to",
                            disabled=not use_prune or method not in STRUCTURED_METHODS, **ui.PERSIST)
with quant_col.container(border=True):
    use_quant = st.toggle("Quantize", value=True, key="pipe_quant", **ui.PERSIST)
    mode = st.selectbox("Format", QUANT_MODES, index=QUANT_MODES.index("int8-static"), key="pipe_mode",
                        disabled=not use_quant, format_func=lambda m: f"{m} — {QUANT_HELP[m]}", **ui.PERSIST)
    bits = st.slider("Bits (simulated k-bit only)", MIN_BITS, MAX_BITS, 4, key="pipe_bits",
                     disabled=not use_quant or mode != "fake", **ui.PERSIST)
    granularity = st.selectbox("Weight granularity", GRANULARITIES, key="pipe_granularity",
                               disabled=not use_quant or mode not in ("int8-static", "fake"), **ui.PERSIST)
    calibration = st.selectbox("Calibration (int8 static)", CALIBRATIONS, key="pipe_calibration",
                               disabled=not use_quant or mode != "int8-static", **ui.PERSIST)
    qat = st.slider("Quantization-aware fine-tuning epochs", 0, 10, 0, key="pipe_qat",
                    disabled=not use_quant or mode not in QAT_MODES, **ui.PERSIST)

enabled = [s for s, on in zip(STAGES, (use_distill, use_prune, use_quant)) if on]
if not enabled:
    st.info("Turn on at least one stage: the pipeline starts from the baseline shown in the sidebar.")
    st.stop()
orders = list(permutations(enabled))
order = st.selectbox("Order", orders, key=f"pipe_order_{'-'.join(enabled)}", **ui.PERSIST,
                     format_func=lambda o: "baseline → " + " → ".join(ui.STAGE_NAMES[s] for s in o),
                     help="Order matters: pruning a quantized model fine-tunes through the quantizer; distilling "
                          "last trains the student from an already compressed teacher.")

quant = None
if use_quant:
    fake, static = mode == "fake", mode == "int8-static"
    quant = QuantSpec(mode, bits=bits if fake else QuantSpec.bits,
                      granularity=granularity if (fake or static) else QuantSpec.granularity,
                      calibration=calibration if static else QuantSpec.calibration,
                      qat_epochs=qat if mode in QAT_MODES else 0)
pipeline_recipe = replace(
    recipe, order=(*order, *(s for s in STAGES if s not in order)),
    distill=DistillSpec(width if recipe.model in WIDTH_MODELS else 1.0, temperature, alpha, distill_epochs)
    if use_distill else None,
    prune=PruneSpec(method, ratio, steps, finetune, round_to=round_to if method in STRUCTURED_METHODS else 1,
                    kd=prune_kd)
    if use_prune else None,
    quant=quant)
try:
    pipeline_recipe.validate()
except CompressionError as exc:
    st.error(str(exc))
    st.stop()

st.markdown(f"**Recipe** `{pipeline_recipe.hash}` — {ui.describe(pipeline_recipe)}")
result = store.get_result(pipeline_recipe.hash)
if result is None:
    st.info("Not measured yet. Running it trains, exports and measures every stage (stages shared with earlier "
            "runs come from the store); the result is stored, so these settings show at once next time.",
            icon=":material/play_circle:")
    if st.button("Run pipeline", type="primary", key="pipe_run"):
        def work(progress):
            from compression import pipeline  # torch loads in the job's thread
            return pipeline.run(pipeline_recipe, store, progress)
        ui.run_in_status(f"Running {' → '.join(ui.STAGE_NAMES[s] for s in pipeline_recipe.stages)}…", work,
                         key=pipeline_recipe.hash)
    st.stop()


base = store.get_result(recipe.hash)
st.subheader("Final model vs the baseline", anchor=False)
views.result_metrics(result, base)

st.subheader("The path, stage by stage", anchor=False)
metric = st.segmented_control("Cost axis", ("size", "flops"), default="size", required=True, key="pipe_metric",
                              format_func=ui.METRIC_NAMES.get,
                              help="Stages are not timed one by one (only the final model is), so the path is "
                                   "drawn against size or FLOPs.")
_, others = ui.workspace_results(recipe, store)
figure = ui.tradeoff_figure([r for r in others if r.recipe_hash != result.recipe_hash], metric, base, dim=True)
ui.add_path(figure, result.stages, metric)
st.plotly_chart(figure, width="stretch", key="pipe_chart")
st.caption("The thick line is this recipe: from the baseline (★) through each stage to the final model. Faded "
           "points are the workspace's other results; ◇ marks a simulated accuracy (torch), ● a measured one "
           "(onnxruntime). Sizes are ONNX file bytes unless a stage says otherwise.")
ui.show_table(ui.stages_table(result.stages), {
    "test accuracy": ui.ACCURACY_COLUMN, "size (KB)": ui.RESULT_COLUMNS["size (KB)"],
    "MFLOPs": ui.RESULT_COLUMNS["MFLOPs"], "non-zero parameters": ui.COUNT_COLUMN,
    "seconds": st.column_config.NumberColumn(format="%.1f", help="time spent in the stage itself when it was "
                                                                   "first computed (reused prefixes cost nothing)"),
})
if result.distill:
    d = result.distill
    st.subheader("What the teacher added", anchor=False)
    cols = st.columns(4)
    cols[0].metric("Teacher", f"{d['teacher_accuracy']:.2%}", help=f"{d.get('teacher_params', 0):,} parameters")
    cols[1].metric("KD student", f"{d['student_accuracy']:.2%}", help=f"{d.get('student_params', 0):,} parameters")
    cols[2].metric("Label-only control", f"{d['control_accuracy']:.2%}", help="same student, init, epochs and seed, "
                   "trained on the labels alone")
    cols[3].metric("KD gain", f"{100 * d['kd_gain']:+.2f} pts", help="KD student − control, deployed the same way")
if result.quant:
    with st.expander("Quantization details"):
        st.json({k: v for k, v in result.quant.items() if k != "layers"}, expanded=False)
st.caption(views.provenance_caption(result))
