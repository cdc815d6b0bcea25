"""Live views for teaching: what a setting does, drawn on the stored baseline as its slider moves — the cut a
prune ratio implies on the weights, the affine mapping of a layer's weights onto a bit width's grid with its
formula filled in, a few of its weights through it (x → q → x̂) and all of them before and after, the per-layer
SQNR, and the teacher's softened outputs at a temperature. The numbers come from compression/
(prune.pruning_cuts, quantize.grid_view, weight_mapping and weight_report, distill.soft_targets)."""

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compression import data
from compression.catalog import PRUNE_METHODS
from compression.charts import PALETTE
from compression.distill import SoftTargets
from compression.prune import FilterMap, LayerCut
from compression.quantize import GridView, WeightMapping
from compression.result import LayerQuant
from ui import figures


def cut_figure(cut: LayerCut) -> go.Figure:
    """A layer's importance scores binned, the bins at or below the cut in red, the threshold marked."""
    fig = figures.histogram_figure(cut.histogram, name=cut.unit, below=cut.threshold)
    figures.cut_line(fig, cut.threshold, f"cut {cut.threshold:.3g}")
    fig.update_xaxes(title=cut.unit)
    fig.update_yaxes(title=cut.what)
    return fig


def filter_map_figure(fmap: FilterMap) -> go.Figure:
    """The layer unit by unit: each filter (or weight) a cell shaded by its importance score, the units the cut
    removes in red."""
    fig = go.Figure(go.Heatmap(z=fmap.scores, colorscale="Blues", colorbar=dict(title="score", thickness=12),
                               hovertemplate=f"{fmap.unit} %{{customdata}}: score %{{z:.3g}}<extra></extra>",
                               customdata=_unit_numbers(fmap), xgap=1 if fmap.unit == "filter" else 0,
                               ygap=1 if fmap.unit == "filter" else 0))
    gone = [[1 if flag else None for flag in row] for row in fmap.removed]
    fig.add_trace(go.Heatmap(z=gone, colorscale=[[0, PALETTE["threshold"]], [1, PALETTE["threshold"]]],
                             showscale=False, hoverinfo="skip", xgap=1 if fmap.unit == "filter" else 0,
                             ygap=1 if fmap.unit == "filter" else 0, name="removed"))
    fig.update_yaxes(autorange="reversed", title="output" if fmap.unit == "weight" else None,
                     showticklabels=fmap.unit == "weight")
    fig.update_xaxes(title="input × kernel position" if fmap.unit == "weight" else None,
                     showticklabels=fmap.unit == "weight")
    if fmap.unit == "filter":
        fig.update_yaxes(scaleanchor="x")
    return fig


def _unit_numbers(fmap: FilterMap) -> list[list[int]]:
    """The number of the filter (or output, for weights) under each cell, for the hover box."""
    width = len(fmap.scores[0])
    if fmap.unit == "filter":
        return [[r * width + c for c in range(width)] for r in range(len(fmap.scores))]
    return [[r] * width for r in range(len(fmap.scores))]


def how_cut(method: str) -> str:
    """How `method` decides what goes, in words, for the caption under the cut."""
    technique = PRUNE_METHODS[method]
    if technique.structured:
        return ("each output channel's weight norm; the classifier keeps its classes. torch-pruning scores whole "
                "dependency groups (a channel with the inputs it feeds)"
                + (" and activation importance also weighs activations" if technique.uses_lambda else "")
                + ", so the exact channels can differ")
    if technique.scope == "global":
        return "one threshold across all layers: layers with small weights lose more"
    return "the layer's own threshold"


def affine_formulas(view: GridView) -> tuple[list[str], str]:
    """The article's scale / zero-point formulas filled in with `view`'s numbers (LaTeX), and a note on how the
    range was chosen."""
    p = view.params
    s, z, qmin, qmax = p.scale, p.zero_point, p.qmin, p.qmax
    if view.fmt.scheme == "asymmetric":
        lines = [rf"\text{{scale}} = \frac{{x_{{max}} - x_{{min}}}}{{q_{{max}} - q_{{min}}}}"
                 rf" = \frac{{{view.hi:.4f} - ({view.lo:.4f})}}{{{qmax} - {qmin}}} = {s:.6f}",
                 rf"\text{{zero\_point}} = \operatorname{{round}}\!\left(q_{{min}} - \frac{{x_{{min}}}}"
                 rf"{{\text{{scale}}}}\right) = \operatorname{{round}}\!\left({qmin} - \frac{{{view.lo:.4f}}}{{{s:.6f}}}"
                 rf"\right) = {z}"]
        note = "the range is widened to hold 0 exactly, so that zero weights (and padding) stay exact"
    else:
        lines = [rf"\text{{scale}} = \frac{{2 \max(|x_{{min}}|, |x_{{max}}|)}}{{q_{{max}} - q_{{min}}}}"
                 rf" = \frac{{2 \cdot {view.hi:.4f}}}{{{qmax} - ({qmin})}} = {s:.6f}, \qquad \text{{zero\_point}} = 0"]
        note = "symmetric: the grid is centred on 0 and one code (−2^(b−1)) is left unused"
    lines.append(rf"q = \operatorname{{clamp}}\!\left(\operatorname{{round}}\!\left(\frac{{x}}{{{s:.6f}}}\right)"
                 rf" + {z},\ {qmin},\ {qmax}\right), \qquad \hat x = (q - {z}) \cdot {s:.6f}")
    return lines, note


def grid_figure(view: GridView) -> tuple[go.Figure, str]:
    """The weights' histogram with the grid's levels (when few enough to draw) and the clipping range; and a
    note on the grid for the caption."""
    fig = figures.histogram_figure(view.histogram, name="weights")
    if view.grid is not None:
        fig.add_trace(go.Scatter(x=view.grid, y=[0] * len(view.grid), mode="markers", name=f"grid ({view.levels} levels)",
                                 marker=dict(symbol="line-ns-open", size=14, color=PALETTE["grid"], line=dict(width=1.5)),
                                 hovertemplate="level %{x:.4g}<extra></extra>"))
        note = f"violet ticks: the {view.levels} values a weight can take"
    else:
        note = f"{view.levels:,} levels, {view.params.scale:.2e} apart: too dense to draw"
    figures.cut_line(fig, view.clip_min, "clip min")
    figures.cut_line(fig, view.clip_max, "clip max")
    fig.update_xaxes(title="weight value")
    fig.update_yaxes(title="weights")
    return fig, note


def clip_note(view: GridView) -> str:
    """What the clipping range does to these weights, in words, from the counts the backend took: true at every
    bit width (the rounded zero point can leave the end levels inside the weights' range)."""
    where = f"red: the clipping range [{view.clip_min:.4f}, {view.clip_max:.4f}], the grid's end levels"
    if view.outside == 0:
        return (f"{where}; weights are ranged by min / max, so every weight lies inside it and none clips; "
                "activations are ranged by calibration and can clip (table above, after a run)")
    many = view.outside > 1
    return (f"{where}; {view.outside:,} weight{'s lie' if many else ' lies'} beyond it, by at most "
            f"{view.outside_by:.2g} (the zero point is rounded to a whole code, which shifts the grid by up to half "
            f"a step of {view.params.scale:.2g}): {'they map' if many else 'it maps'} to the nearer end level, an "
            "error no larger than rounding's elsewhere")


def mapping_table(mapping: WeightMapping) -> pd.DataFrame:
    """The x → q → x̂ rows as a table: position, float value, integer code, dequantized value, error."""
    return pd.DataFrame({"weight": [str(list(r.position)) for r in mapping.rows],
                         "x (float)": [r.x for r in mapping.rows],
                         "q (integer code)": [r.q for r in mapping.rows],
                         "x̂ = (q − zero_point) · scale": [r.x_hat for r in mapping.rows],
                         "error x̂ − x": [r.error for r in mapping.rows]})


def overlay_figure(mapping: WeightMapping) -> go.Figure:
    """The float weights' histogram with the dequantized weights' on the same bins: where the grid moves them."""
    fig = figures.histogram_figure(mapping.original, name="original x")
    edges = mapping.dequantized.edges
    fig.add_trace(go.Bar(x=[(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])], y=mapping.dequantized.counts,
                         width=[b - a for a, b in zip(edges[:-1], edges[1:])], name="dequantized x̂",
                         marker_color=PALETTE["grid"], opacity=0.6, marker_line_width=0,
                         hovertemplate="%{x:.4g}: %{y}<extra>x̂</extra>"))
    fig.update_layout(barmode="overlay")
    fig.data[0].showlegend = True
    fig.update_xaxes(title="weight value")
    fig.update_yaxes(title="weights")
    return fig


def sqnr_figure(layers: Sequence[LayerQuant]) -> go.Figure:
    """Each layer's signal-to-quantization-noise ratio in dB ('exact' where the weights are unchanged)."""
    finite = [layer.sqnr_db if layer.sqnr_db != float("inf") else None for layer in layers]
    fig = go.Figure(go.Bar(x=[layer.name for layer in layers], y=finite, marker_color=PALETTE["accent"],
                           text=[f"{v:.1f}" if v is not None else "exact" for v in finite], textposition="outside",
                           hovertemplate="%{x}: %{y:.1f} dB<extra></extra>"))
    fig.update_yaxes(title="dB")
    return fig


def soft_targets_figure(samples: data.SampleImages, soft: SoftTargets, student: SoftTargets | None = None
                        ) -> go.Figure:
    """One column a sample image: the image, titled with its label (and, in red, the teacher's answer where the
    teacher is wrong), and under it the teacher's probabilities at T (bars), the KD student's at T beside them
    (when given) and the teacher's at T = 1 (dark ticks), over every class name."""
    names, count = [str(n) for n in samples.classes], len(samples.labels)
    label = f"T = {soft.temperature:g}"
    titles = [f"label {name}" + (f" · <span style='color:{PALETTE['threshold']}'>teacher: {names[top]} ✗</span>"
                                 if wrong else "")
              for name, wrong, top in zip(samples.names, soft.wrong(samples.labels), soft.at_one.argmax(1).tolist())]
    fig = make_subplots(rows=2, cols=count, row_heights=[0.45, 0.55], vertical_spacing=0.08, subplot_titles=titles)
    students = student.probabilities.numpy() if student is not None else [None] * count
    for col, (pixels, p, p1, s) in enumerate(zip(samples.pixels, soft.probabilities.numpy(), soft.at_one.numpy(),
                                                 students), 1):
        fig.add_trace(go.Image(z=data.screen_image(pixels), hoverinfo="skip"), 1, col)
        fig.add_trace(go.Bar(x=names, y=p, marker_color=PALETTE["measured"], name=f"teacher, {label}",
                             showlegend=col == 1, hovertemplate="%{x}: %{y:.3f}<extra>teacher " + label + "</extra>"),
                      2, col)
        if s is not None:
            fig.add_trace(go.Bar(x=names, y=s, marker_color=PALETTE["grid"], name=f"KD student, {label}",
                                 showlegend=col == 1,
                                 hovertemplate="%{x}: %{y:.3f}<extra>student " + label + "</extra>"), 2, col)
        fig.add_trace(go.Scatter(x=names, y=p1, mode="markers", name="teacher, T = 1", showlegend=col == 1,
                                 marker=dict(symbol="line-ew-open", size=16, color=PALETTE["ink"], line=dict(width=2)),
                                 hovertemplate="%{x}: %{y:.3f}<extra>teacher T = 1</extra>"), 2, col)
        fig.update_xaxes(visible=False, row=1, col=col)
        fig.update_yaxes(visible=False, scaleanchor=f"x{col}" if col > 1 else "x", row=1, col=col)
        fig.update_yaxes(range=[0, 1], showticklabels=col == 1, title="probability" if col == 1 else None, row=2, col=col)
        fig.update_xaxes(tickmode="array", tickvals=names, ticktext=names, tickfont=dict(size=9),
                         tickangle=0 if len(names) <= 10 else -90, row=2, col=col)  # every class, none skipped
    figures.style(fig, height=480)
    fig.update_layout(barmode="group", bargap=0.15, margin=dict(t=40))  # room for the subplot titles
    return fig
