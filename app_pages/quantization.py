"""Quantization page: the article's affine mapping filled in with a real layer's numbers and drawn on its
weights, live as the bit width moves; a run converts the baseline to a real onnxruntime format (INT8,
FP16) or simulates k-bit weights in torch, and shows what it measured; accuracy against bit width for
post-training quantization and quantization-aware training."""

from dataclasses import replace

import streamlit as st

from compression import describe, quantize, tasks, workspace
from compression.recipe import QuantSpec, Recipe
from compression.result import LayerQuant, Result
from ui import figures, forms, live, metrics, notes, outcomes, progress, tables, text, timing
from ui import workspace as ws
from ui.forms import PERSIST, QuantChoice

INITIAL = QuantSpec("int8-static")  # a format a user can ship; simulated widths one choice away
LEAD = ("Map each float onto a grid of 2^b integers — q = clamp(round(x / scale) + zero_point, q_min, q_max), x̂ "
        "= (q − zero_point) · scale — then run the integers (INT8 in onnxruntime, measured) or simulate widths no "
        "CPU runtime runs (torch, labelled simulated).")


def measured(spec: QuantSpec, result: Result, base: Result | None) -> None:
    """The result of the chosen settings: its figures, whether INT8 ran as integers, activation ranges."""
    metrics.result_metrics(result, base)
    notes.show(notes.quantized(spec, result))
    st.caption(text.provenance_caption(result))
    if result.quant is not None and not (ranges := tables.activation_ranges(result.quant)).empty:
        with st.expander("Activation ranges: observed on calibration images vs the clip range quantization uses"):
            st.dataframe(ranges, hide_index=True, width="stretch")
            st.caption(f"{result.quant.calibration} calibration on {result.quant.calib_samples} train images (never "
                       "the test split). A clip range narrower than the observed one clips outliers to spend the "
                       "grid's resolution on the common values.")
    timing.where_the_time_goes(result)


@st.cache_data(max_entries=48, show_spinner=False)
def weight_report(home: str, baseline: str, bits: int, scheme: str, granularity: str, _recipe: Recipe
                  ) -> list[LayerQuant]:
    """quantize.weight_report of the stored baseline (cached per store, baseline and format: it redraws as the
    slider moves)."""
    return quantize.weight_report(ws.trained_baseline(_recipe), bits, scheme, granularity)


def mapping(recipe: Recipe, choice: QuantChoice) -> None:
    """Live: the affine mapping of a layer's weights at the chosen format, its grid, and per-layer SQNR."""
    fmt = quantize.weight_format(choice.spec) or quantize.weight_format(choice.simulated)
    st.subheader(f"The mapping at {fmt.bits} bits, {fmt.scheme}, {fmt.granularity}")
    if ws.without_torch_form(recipe, "The live weight mapping"):
        return
    model = ws.trained_baseline(recipe)  # read-only: shared across sessions
    if model is None:
        st.info("The live view appears once the workspace's baseline is trained: the sidebar shows its progress.")
        return
    if (note := notes.weight_format(choice.spec, fmt)) is not None:
        st.caption(note)
    layers = weight_report(str(ws.store().root), recipe.baseline().hash, fmt.bits, fmt.scheme, fmt.granularity, recipe)
    names = [layer.name for layer in layers]
    left, right = st.columns([2, 1])
    name = left.selectbox("Layer", names, index=names.index(quantize.teaching_layer(layers)), key="quant_view_layer",
                          **PERSIST)
    layer = layers[names.index(name)]
    channel = None
    if fmt.granularity == "per-channel":
        channel = right.number_input(f"Output channel (0 … {layer.shape[0] - 1})", 0, layer.shape[0] - 1, 0,
                                     key="quant_view_channel", **PERSIST)
    else:
        right.caption(f"{name}: {layer.kind} {tuple(layer.shape)}, one scale for all its weights.")
    where = f"channel {channel} of {name}" if channel is not None else name
    view = quantize.grid_view(model, name, fmt, channel)
    formulas, how = live.affine_formulas(view)
    for formula in formulas:
        st.latex(formula)
    st.caption(f"{where}: real weights from {view.x_min:.4f} to {view.x_max:.4f}; scale and zero point from "
               f"compression.quantize.affine_params; {how}.")
    grid, grid_note = live.grid_figure(view)
    figures.chart(grid, title=f"{where}: weights, the grid and the clipping range", height=340)
    st.caption(f"{grid_note}; {live.clip_note(view)}.")
    through = quantize.weight_mapping(model, name, fmt, channel)
    st.markdown(f"**A few of {where}'s weights through the quantizer** (x → q → x̂, from the smallest to the largest)")
    st.dataframe(live.mapping_table(through), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.5f")
                                for c in ("x (float)", "x̂ = (q − zero_point) · scale", "error x̂ − x")})
    st.caption("Computed by compression.quantize.quantize_weights, the quantizer the simulated formats and QAT use, "
               "on the stored baseline's weights.")
    figures.chart(live.overlay_figure(through), height=320,
                  title=f"{where}: the original weights and the dequantized ones, on the same bins")
    st.caption(f"Every weight of {where} before (x) and after (x̂): the grid gathers them onto its {view.levels:,} "
               "levels; the gap between the two shapes is the quantization error.")
    figures.chart(live.sqnr_figure(layers), legend=False, height=300,
                  title=f"Per-layer SQNR of the weights at {fmt.bits} bits ({fmt.scheme}, {fmt.granularity})")
    st.caption("Signal-to-quantization-noise ratio 10·log10(Σw² / Σ(w − ŵ)²), computed on the stored baseline's "
               "weights: each bit adds about 6 dB; a layer far below the others is where accuracy goes first.")


def bit_width(recipe: Recipe, space: workspace.Workspace, simulated: QuantSpec) -> None:
    """Accuracy against bit width: the stored points of this curve, and a button that measures the rest."""
    st.subheader("Accuracy against bit width")
    if ws.without_torch_form(recipe, "The bit-width curve (simulated widths and QAT)"):
        return
    points = tables.bit_points(quantize.bit_width_points(space.results, simulated))
    if not points.empty:
        figures.chart(outcomes.bit_width_figure(points, space.baseline), height=380)
        st.caption(notes.bit_width(points, simulated))
    stored = {r.recipe_hash for r in space.results}
    missing = [c for c in quantize.bit_width_curve(recipe, simulated) if c.hash not in stored]
    if not missing:
        return
    qat = simulated.qat_epochs or quantize.QAT_CURVE_EPOCHS
    if not simulated.qat_epochs:
        st.caption(f"The QAT curve uses {quantize.QAT_CURVE_EPOCHS} epochs while the QAT setting is 0.")
    label = (f"Measure the curve: {len(missing)} point{'s' if len(missing) > 1 else ''} to compute (PTQ and QAT "
             f"{qat} epochs at {', '.join(map(str, quantize.PTQ_BITS))} bits)")
    if st.button(label, key="quant_curve"):
        progress.run_in_status("Measuring accuracy against bit width…", tasks.run_recipes, missing, "quant",
                               str(ws.store().root), key="quant-curve:" + "-".join(sorted(c.hash for c in missing)))


def page() -> None:
    recipe = ws.page_head("Quantization", LEAD)
    box = st.container(border=True)
    with box:
        choice = forms.quant_form("quant", INITIAL, what_if=True)
    quantized = replace(recipe, quant=choice.spec)
    stage = describe.stage(quantized, "quant")
    run = progress.experiment(box, quantized, "Quantize and measure", f"Quantizing: {stage}…")
    if run.result is not None:
        st.subheader(stage.capitalize())
        measured(choice.spec, run.result, run.space.baseline)
    run.note_not_measured()
    mapping(recipe, choice)
    bit_width(recipe, run.space, choice.simulated)


page()
