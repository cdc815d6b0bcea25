"""Quantization page: the article's affine mapping filled in with a real layer's numbers and drawn on its
weights, live as the bit width moves; a run converts the baseline to a real onnxruntime format (INT8,
FP16) or simulates k-bit weights in torch, and shows what it measured; accuracy against bit width for
post-training quantization and quantization-aware training."""

import itertools
import json
import math
from dataclasses import astuple, replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
import views
from compression import charts, pipeline, quantize
from compression.catalog import (CALIBRATIONS, GRANULARITIES, INT8_MODES, MAX_BITS, MIN_BITS, QAT_MODES,
                                 QUANT_MODES, QUANT_SCHEMES)
from compression.recipe import QuantSpec, Recipe
from compression.store import Store
from compression.train import Progress

MODE_HELP = {
    "fake": "simulated k-bit weights in torch (any width 2 … 16; accuracy simulated, size computed, not timed)",
    "int8-static": "onnxruntime INT8 QDQ: int8 weights, activations calibrated on train images (measured)",
    "int8-dynamic": "onnxruntime INT8 weights, activations quantized per batch at run time (measured)",
    "fp16": "onnxruntime half-precision floats (measured)",
    "fp32": "the float export unchanged: the reference (measured)",
}
QAT_CURVE_EPOCHS = 2  # QAT epochs of the accuracy-vs-bits curve when the QAT setting is 0
NOTICEABLY_SLOWER = 0.95  # a speed-up below this is called slower: within 5 % is run-to-run timing noise

recipe = ui.valid_recipe()
store = Store()
model = views.trained_baseline(recipe, store)  # None until the workspace's baseline is trained; read-only
st.title("Quantization")
st.caption("Map each float onto a grid of 2^b integers — q = clamp(round(x / scale) + zero_point, q_min, q_max), "
           "x̂ = (q − zero_point) · scale — then run the integers (INT8 in onnxruntime, measured) or simulate "
           "widths no CPU runtime runs (torch, labelled simulated).")


# ------------------------------------------------------------------------------------------- settings
with st.container(border=True):
    left, middle, right = st.columns(3)
    mode = left.selectbox("Mode", QUANT_MODES, index=QUANT_MODES.index("fake"), key="quant_mode", **ui.PERSIST,
                          format_func=lambda m: f"{m} — {MODE_HELP[m]}")
    bits = left.slider("Bit width", MIN_BITS, MAX_BITS, 8, key="quant_bits", **ui.PERSIST, disabled=mode in INT8_MODES,
                       help="fake (simulated) quantization runs at any width; INT8 modes are 8 bits by definition.")
    scheme = middle.selectbox("Scheme", QUANT_SCHEMES, key="quant_scheme", **ui.PERSIST,
                              help="asymmetric: [min, max] onto 0 … 2^b − 1 with a zero point; symmetric: "
                                   "[−max|x|, max|x|] onto ±(2^(b−1) − 1), zero point 0. For int8-static it "
                                   "applies to the activations.")
    granularity = middle.selectbox("Granularity", GRANULARITIES, key="quant_granularity", **ui.PERSIST,
                                   help="per-channel: one scale per output channel; per-tensor: one per layer.")
    activations = middle.checkbox("fake: quantize activations too", key="quant_activations", **ui.PERSIST,
                                  disabled=mode != "fake")
    calibrates = mode == "int8-static" or (mode == "fake" and activations)
    calibration = right.selectbox("Calibration (activation ranges)", CALIBRATIONS, key="quant_calibration",
                                  disabled=not calibrates, **ui.PERSIST,
                                  help="minmax keeps every observed value; percentile clips the top 0.01 %; "
                                       "entropy picks the clip with the least KL divergence.")
    calib_samples = right.number_input("Calibration samples (train split)", 1, 10_000, QuantSpec.calib_samples,
                                       step=32, key="quant_calib_samples", **ui.PERSIST, disabled=not calibrates)
    qat_epochs = right.slider("QAT epochs (0 = post-training only)", 0, 20, 0, key="quant_qat_epochs", **ui.PERSIST,
                              help=f"Fine-tune with fake quantization and a straight-through gradient before "
                                   f"export; applies to {' and '.join(QAT_MODES)}.")
    spec = QuantSpec(mode, bits if mode == "fake" else 8, scheme, granularity, calibration, int(calib_samples),
                     qat_epochs, activations)  # settings the mode does not use are normalised by QuantSpec
    quantized = views.runnable(replace(recipe, quant=spec), store)
    run_clicked = st.button("Quantize and measure", type="primary", disabled=quantized is None)

result = views.measured(quantized, run_clicked, store,
                        f"Quantizing: {ui.describe_stage(replace(recipe, quant=spec), 'quant')}…")
base = views.stored_baseline(recipe, store)

# ------------------------------------------------------------------ the result of the chosen settings
if result is not None:
    st.subheader(ui.describe_stage(quantized, "quant").capitalize())
    views.result_metrics(result, base)
    report = result.quant or {}
    if mode in INT8_MODES and report:
        integer = ", ".join(f"{op} × {n}" for op, n in report.get("integer_ops", {}).items()) or "none"
        floating = ", ".join(f"{op} × {n}" for op, n in report.get("float_compute_ops", {}).items())
        if report.get("runs_integer"):
            st.success(f"Ran as integer arithmetic: the graph onnxruntime executes has integer compute ops "
                       f"({integer}) and no float Conv / MatMul / Gemm left.", icon=":material/check_circle:")
        else:
            st.warning(f"Not all integer: float compute ops remain in the graph onnxruntime executes ({floating}); "
                       f"integer ops: {integer}. Those layers run in float, with quantize / dequantize around them.",
                       icon=":material/warning:")
    if result.speedup_vs_baseline is not None and mode != "fp32":
        speed = result.speedup_vs_baseline
        if mode == "fp16" and speed < NOTICEABLY_SLOWER:
            st.info(f"FP16 ran {1 / speed:.2f}× slower than FP32 on this CPU (measured, not a glitch): x86 CPUs "
                    "have little native FP16 arithmetic, so onnxruntime converts between FP16 and FP32 around most "
                    "operations. FP16 halves the file here, not the CPU latency.", icon=":material/info:")
        elif mode in INT8_MODES and speed < NOTICEABLY_SLOWER:
            st.info(f"INT8 ran {1 / speed:.2f}× slower than FP32 here (measured): on a model this small the "
                    "quantize / dequantize at the edges and the int8 re-layout can cost more than the integer "
                    "arithmetic saves. Larger inputs and models gain more.", icon=":material/info:")
    st.caption(views.provenance_caption(result))
    acts = [{"layer": e["name"], **e["activation"]} for e in report.get("layers", []) if e.get("activation")]
    if acts:
        with st.expander("Activation ranges: observed on calibration images vs the clip range quantization uses"):
            st.dataframe(pd.DataFrame(acts), hide_index=True, width="stretch")
            st.caption(f"{report.get('calibration')} calibration on {report.get('calib_samples')} train images "
                       "(never the test split). A clip range narrower than the observed one clips outliers to "
                       "spend the grid's resolution on the common values.")
elif quantized is not None:
    st.info("Not measured with these settings yet: **Quantize and measure** stores the result, and it shows here "
            "at once whenever these settings are chosen again.", icon=":material/science:")

# ------------------------------------------------------------------ live: the mapping on real weights
# INT8 modes store symmetric int8 weights; the float formats have no grid, so the chosen width is a what-if
w_bits, w_scheme, w_gran = astuple(quantize.weight_format(spec) or quantize.Format(bits, scheme, granularity))
st.subheader(f"The mapping at {w_bits} bits, {w_scheme}, {w_gran}")


@st.cache_data(max_entries=48, show_spinner=False)
def live_report(root: str, recipe_json: str, bits: int, scheme: str, granularity: str) -> list[dict]:
    """quantize.weight_report of the stored baseline (cached per format: it redraws as the slider moves)."""
    trained = views.trained_baseline(Recipe.from_dict(json.loads(recipe_json)), Store(root))
    return quantize.weight_report(trained, bits, scheme, granularity)


if model is None:
    st.info("The live view appears once the workspace's baseline is trained: the sidebar shows its progress.")
else:
    if mode in INT8_MODES:
        st.caption(f"{mode} stores weights as symmetric int8, {granularity} (the runtime's fast kernels need that); "
                   f"the scheme setting ({scheme}) applies to its activations.")
    elif mode in ("fp16", "fp32"):
        st.caption(f"{mode} is a float format with no affine grid: shown is what {w_bits}-bit {w_scheme} "
                   "quantization would do to these weights.")
    layers = live_report(str(store.root), json.dumps(recipe.baseline().to_dict(), sort_keys=True),
                         w_bits, w_scheme, w_gran)
    names = [entry["name"] for entry in layers]
    left, right = st.columns([2, 1])
    name = left.selectbox("Layer", names, key="quant_view_layer", **ui.PERSIST)
    entry = layers[names.index(name)]
    weights = model.get_submodule(name).weight.detach()
    if w_gran == "per-channel":
        channel = right.number_input(f"Output channel (0 … {entry['shape'][0] - 1})", 0, entry["shape"][0] - 1, 0,
                                     key="quant_view_channel", **ui.PERSIST)
        values = weights[channel].flatten()
        where = f"channel {channel} of {name}"
    else:
        right.caption(f"{name}: {entry['kind']} {tuple(entry['shape'])}, one scale for all its weights.")
        values = weights.flatten()
        where = name
    x_min, x_max = float(values.min()), float(values.max())
    params = quantize.affine_params(x_min, x_max, w_bits, w_scheme)
    s, z, qmin, qmax = params.scale, params.zero_point, params.qmin, params.qmax
    if w_scheme == "asymmetric":
        lo, hi = min(x_min, 0.0), max(x_max, 0.0)
        st.latex(rf"\text{{scale}} = \frac{{x_{{max}} - x_{{min}}}}{{q_{{max}} - q_{{min}}}}"
                 rf" = \frac{{{hi:.4f} - ({lo:.4f})}}{{{qmax} - {qmin}}} = {s:.6f}")
        st.latex(rf"\text{{zero\_point}} = \operatorname{{round}}\!\left(q_{{min}} - \frac{{x_{{min}}}}"
                 rf"{{\text{{scale}}}}\right) = \operatorname{{round}}\!\left({qmin} - \frac{{{lo:.4f}}}{{{s:.6f}}}"
                 rf"\right) = {z}")
        note = "the range is widened to hold 0 exactly, so that zero weights (and padding) stay exact"
    else:
        peak = max(abs(x_min), abs(x_max))
        st.latex(rf"\text{{scale}} = \frac{{2 \max(|x_{{min}}|, |x_{{max}}|)}}{{q_{{max}} - q_{{min}}}}"
                 rf" = \frac{{2 \cdot {peak:.4f}}}{{{qmax} - ({qmin})}} = {s:.6f}, \qquad \text{{zero\_point}} = 0")
        note = "symmetric: the grid is centred on 0 and one code (−2^(b−1)) is left unused"
    st.latex(rf"q = \operatorname{{clamp}}\!\left(\operatorname{{round}}\!\left(\frac{{x}}{{{s:.6f}}}\right)"
             rf" + {z},\ {qmin},\ {qmax}\right), \qquad \hat x = (q - {z}) \cdot {s:.6f}")
    st.caption(f"{where}: real weights from {x_min:.4f} to {x_max:.4f}; scale and zero point from "
               f"compression.quantize.affine_params; {note}.")

    # weight histogram with the grid and the clipping range
    if w_gran == "per-channel":
        counts, edges = np.histogram(values.double().numpy(), bins=int(min(60, max(10, values.numel() // 4))))
        counts, edges = counts.tolist(), edges.tolist()
    else:
        counts, edges = entry["histogram"]["counts"], entry["histogram"]["edges"]
    clip_lo, clip_hi = (qmin - z) * s, (qmax - z) * s
    hist = views.histogram_figure(counts, edges, name="weights")
    levels = qmax - qmin + 1
    if levels <= 64:
        grid = [(q - z) * s for q in range(qmin, qmax + 1)]
        hist.add_trace(go.Scatter(x=grid, y=[0] * len(grid), mode="markers", name=f"grid ({levels} levels)",
                                  marker=dict(symbol="line-ns-open", size=14, color=views.COLORS["grid"],
                                              line=dict(width=1.5)),
                                  hovertemplate="level %{x:.4g}<extra></extra>"))
        grid_note = f"violet ticks: the {levels} values a weight can take"
    else:
        grid_note = f"{levels:,} levels, {s:.2e} apart: too dense to draw"
    for edge, label in ((clip_lo, "clip min"), (clip_hi, "clip max")):
        hist.add_vline(x=edge, line_dash="dash", line_color=views.COLORS["threshold"], annotation_text=label,
                       annotation_font_color=views.COLORS["threshold"])
    hist.update_xaxes(title="weight value")
    hist.update_yaxes(title="weights")
    views.chart(hist, title=f"{where}: weights, the grid and the clipping range", height=340)
    st.caption(f"{grid_note}; red: the clipping range [{clip_lo:.4f}, {clip_hi:.4f}] — weights are ranged by min "
               "/ max, so none clip (the largest may round to the top level); activations are ranged by calibration "
               "and can clip (table above, after a run).")

    # per-layer SQNR
    sqnr = pd.DataFrame([{"layer": e["name"], "SQNR (dB)": e["sqnr_db"] if math.isfinite(e["sqnr_db"]) else None}
                         for e in layers])
    bars = go.Figure(go.Bar(x=sqnr["layer"], y=sqnr["SQNR (dB)"], marker_color=views.COLORS["accent"],
                            text=[f"{v:.1f}" if v is not None else "exact" for v in sqnr["SQNR (dB)"]],
                            textposition="outside", hovertemplate="%{x}: %{y:.1f} dB<extra></extra>"))
    bars.update_yaxes(title="dB")
    views.chart(bars, title=f"Per-layer SQNR of the weights at {w_bits} bits ({w_scheme}, {w_gran})", legend=False,
                height=300)
    st.caption("Signal-to-quantization-noise ratio 10·log10(Σw² / Σ(w − ŵ)²), computed on the stored baseline's "
               "weights: each bit adds about 6 dB; a layer far below the others is where accuracy goes first.")

# ------------------------------------------------------------------ accuracy against bit width
st.subheader("Accuracy against bit width")
curve_qat = qat_epochs or QAT_CURVE_EPOCHS
curve = [replace(recipe, quant=QuantSpec("fake", b, scheme, granularity, calibration, int(calib_samples), e,
                                         activations))
         for e in (0, curve_qat) for b in quantize.PTQ_BITS]
same = {k: getattr(curve[0].quant, k) for k in ("scheme", "granularity", "calibration", "calib_samples",
                                                "activations")}
stored = {}
for r in ui.workspace_results(recipe, store)[1]:
    rec = Recipe.from_dict(r.recipe)
    if rec.stages == ("quant",):
        stored[rec.hash] = (r, rec.quant)
rows = []
for r, q in stored.values():
    if q.mode == "fake" and all(getattr(q, k) == v for k, v in same.items()):
        series = "PTQ (simulated)" if not q.qat_epochs else f"QAT {q.qat_epochs} epochs (simulated)"
    elif q.mode in ("int8-static", "int8-dynamic", "fp16"):
        series = f"{q.mode}{f' QAT {q.qat_epochs}' if q.qat_epochs else ''} (measured)"
    else:
        continue
    rows.append({"series": series, "bits": q.bits if q.mode != "fp16" else 16, "test accuracy": r.accuracy,
                 "source": views.source_label(r), "settings": ui.describe_stage(Recipe.from_dict(r.recipe), "quant")})
missing = [c for c in curve if c.hash not in stored]
if rows:
    table = pd.DataFrame(rows).sort_values(["series", "bits"])
    fig = go.Figure()
    measured_colors = itertools.cycle(views.COLORS[c] for c in ("measured", "accent", "grid", "baseline"))
    for series, points in table.groupby("series", sort=True):
        simulated = (points["source"] == "simulated").all()
        color = views.COLORS["simulated"] if simulated else next(measured_colors)
        fig.add_trace(go.Scatter(
            x=points["bits"], y=points["test accuracy"], name=series, mode="lines+markers" if simulated else "markers",
            line=dict(dash="dash" if "QAT" in series else "solid", color=color),
            marker=dict(size=10 if simulated else 13, symbol=views.SYMBOLS["simulated" if simulated else "measured"],
                        color=color),
            customdata=points[["settings", "source"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>%{y:.2%} (%{customdata[1]})<extra></extra>"))
    if base is not None:
        views.baseline_line(fig, base.accuracy, "FP32 baseline")
    fig.update_xaxes(title="bits", tickvals=list(quantize.PTQ_BITS), range=[1.5, 16.5])
    charts.accuracy_axis(fig, [*table["test accuracy"], *([base.accuracy] if base is not None else [])])
    views.chart(fig, height=380)
    simulated_note = (f"Simulated curves ({scheme}, {granularity}{', activations too' if activations else ''}), "
                      "amber: accuracy in torch with fake-quantized weights, open diamonds; QAT dashed. QAT trains "
                      "for extra epochs, so on a briefly trained baseline it can beat the baseline itself: read it "
                      "against the PTQ curve. " if (table["source"] == "simulated").any() else "")
    st.caption(f"{simulated_note}Filled markers: real formats run in onnxruntime, measured. Each point is a stored "
               "result; none is recomputed.")
if missing:
    label = (f"Measure the curve: {len(missing)} point{'s' if len(missing) > 1 else ''} to compute (PTQ and QAT "
             f"{curve_qat} epochs at {', '.join(map(str, quantize.PTQ_BITS))} bits)")
    if not qat_epochs:
        st.caption(f"The QAT curve uses {QAT_CURVE_EPOCHS} epochs while the QAT setting is 0.")
    if st.button(label, key="quant_curve"):
        def measure_curve(progress) -> None:
            for i, point in enumerate(missing, 1):
                progress(Progress("curve", f"point {i}/{len(missing)}: "
                                           f"{ui.describe_stage(point, 'quant')}"))
                pipeline.run(point, store, progress)
        ui.run_in_status("Measuring accuracy against bit width…", measure_curve,
                         key="quant-curve:" + "-".join(sorted(c.hash for c in missing)))
