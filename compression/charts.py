"""The charts' look, one for the app and the offline report: the palette, the plotly template, and the
trade-off chart — accuracy against a cost (size, latency or FLOPs) on a log axis, a trace per technique in
its fixed colour, simulated accuracies as open diamonds, the Pareto frontier as a dashed staircase, the
baseline as a star, chosen results ringed and numbered. Import-light (plotly, no torch)."""

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio

from compression import pareto
from compression.profile import Diagnosis
from compression.result import Result, is_measured

PALETTE = {  # every colour a chart uses, by what it means (the theme's own are in .streamlit/config.toml)
    "measured": "#2563eb",   # the theme's blue
    "accent": "#0d9488",     # teal
    "simulated": "#d97706",  # amber: never mistaken for a measurement
    "grid": "#7c3aed",       # violet: a quantization grid
    "pink": "#db2777",
    "baseline": "#64748b",   # slate
    "lime": "#65a30d",
    "cyan": "#0891b2",
    "orange": "#c2410c",
    "ochre": "#a16207",
    "control": "#94a3b8",    # light slate
    "threshold": "#dc2626",  # red: a cut, a clipping range, a ring, the path of a pipeline
    "ink": "#0f172a",
    "star": "#334155",
    "gridline": "#eef2f7",
}
COLORWAY = [PALETTE[c] for c in ("measured", "accent", "simulated", "grid", "pink", "baseline", "lime", "cyan")]
TECHNIQUE_COLORS = {"baseline": PALETTE["star"], "prune": PALETTE["measured"], "quant": PALETTE["accent"],
                    "distill": PALETTE["grid"]}
# combinations by the set of their stages (two orders of the same stages share a colour; hover tells the order)
COMBINATION_COLORS = {frozenset({"prune", "quant"}): PALETTE["pink"], frozenset({"distill", "prune"}): PALETTE["lime"],
                      frozenset({"distill", "quant"}): PALETTE["orange"],
                      frozenset({"distill", "prune", "quant"}): PALETTE["cyan"]}
SIMULATED_SYMBOL = "diamond-open"
SYMBOLS = {"measured": "circle", "simulated": SIMULATED_SYMBOL}
TEMPLATE = "compression-explorer"
LEGEND_BELOW = dict(orientation="h", yref="container", y=0, yanchor="bottom", xanchor="left", x=0)


@functools.cache
def register_template() -> str:
    """Register the one plotly look (plotly_white, the calm colorway, a quiet grid, the legend in a row at the
    bottom of the figure, below the axis titles, so it never covers a title at any width: plotly pushes the
    plot up to make room) as TEMPLATE, once per process, and return its name."""
    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.update(
        colorway=COLORWAY, font=dict(size=13), hoverlabel=dict(font_size=12, align="left"), bargap=0.15,
        legend=LEGEND_BELOW,
        xaxis=dict(showgrid=False, zeroline=False), yaxis=dict(gridcolor=PALETTE["gridline"], zeroline=False))
    pio.templates[TEMPLATE] = template
    return TEMPLATE


def technique_color(technique: str) -> str:
    """A fixed colour for a technique (stable across pages, sessions and reports)."""
    if technique in TECHNIQUE_COLORS:
        return TECHNIQUE_COLORS[technique]
    return COMBINATION_COLORS.get(frozenset(technique.split("+")), PALETTE["ochre"])


@dataclass(frozen=True)
class Highlight:
    """A result to ring on the chart, with a short mark beside the ring, e.g. the number of a budget question it
    answers, the question written out beside the chart (whole questions collide when answers lie close)."""

    result: Result
    label: str


def axis_scale(metric: str) -> tuple[float, str]:
    """(divisor from the metric's own unit to the axis unit, axis title)."""
    _, scale, title = pareto.UNITS[metric]
    return scale, title


def why_hover(why: Diagnosis | None) -> str:
    """A point's hover lines saying why it is not as fast as its work predicts (compression.profile.explain),
    each cause in a few words, and where they come from; nothing for a result that needs no cause."""
    if why is None:
        return ""
    return f"<br>why not faster ({why.label}):" + "".join(f"<br>  · {phrase}" for phrase in why.phrases)


def pareto_figure(results: Sequence[Result], metric: str, baseline: Result | None = None, *,
                  hover: Callable[[Result], str], highlights: Iterable[Highlight] = (), frontier: bool = True,
                  dim: bool = False, height: int = 460, simulated: bool = False) -> go.Figure:
    """Accuracy against `metric` for `results`, each point's hover box `hover(result)` (its recipe hash in
    customdata[0], for selections); `dim` fades the points (when something else is drawn on top); the frontier
    joins deployable results (simulated ones too with `simulated`). Results without a value (the latency of a
    simulated format) are left out."""
    scale, title = axis_scale(metric)
    fig = go.Figure()
    points = [(r, v / scale) for r in results if (v := pareto.metric_value(r, metric, baseline)) is not None
              and (baseline is None or r.recipe_hash != baseline.recipe_hash)]
    for technique in sorted({r.technique for r, _ in points}):
        mine = [(r, x) for r, x in points if r.technique == technique]
        color = technique_color(technique)
        fig.add_trace(go.Scatter(
            x=[x for _, x in mine], y=[r.accuracy for r, _ in mine], mode="markers", name=technique,
            marker=dict(color=color, size=11, opacity=0.45 if dim else 0.9, line=dict(width=1.5, color=color),
                        symbol=["circle" if is_measured(r) else SIMULATED_SYMBOL for r, _ in mine]),
            customdata=[[r.recipe_hash, hover(r)] for r, _ in mine], hovertemplate="%{customdata[1]}<extra></extra>"))
    front = pareto.frontier(results, metric, baseline, simulated) if frontier else []  # only results with a value
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=[pareto.metric_value(r, metric, baseline) / scale for r in front],
                                 y=[r.accuracy for r in front], mode="lines",
                                 name="Pareto frontier", hoverinfo="skip",
                                 line=dict(color=PALETTE["baseline"], dash="dash", width=1.5, shape="hv")))
    if baseline is not None and (value := pareto.metric_value(baseline, metric, baseline)) is not None:
        fig.add_trace(go.Scatter(x=[value / scale], y=[baseline.accuracy], mode="markers+text", name="baseline",
                                 text=["baseline"], textposition="top center",
                                 marker=dict(symbol="star", size=18, color=TECHNIQUE_COLORS["baseline"]),
                                 customdata=[[baseline.recipe_hash, hover(baseline)]],
                                 hovertemplate="%{customdata[1]}<extra></extra>"))
        fig.add_hline(y=baseline.accuracy, line_dash="dot", line_color=PALETTE["control"])
    rings: dict[str, tuple[Result, float, list[str]]] = {}  # one ring a result, marked with all it answers
    for h in highlights:
        if (value := pareto.metric_value(h.result, metric, baseline)) is not None:
            rings.setdefault(h.result.recipe_hash, (h.result, value / scale, []))[2].append(h.label)
    if rings:
        fig.add_trace(go.Scatter(
            x=[x for _, x, _ in rings.values()], y=[r.accuracy for r, _, _ in rings.values()],
            mode="markers+text", name="answer", text=[", ".join(labels) for _, _, labels in rings.values()],
            textposition="middle right", textfont=dict(color=PALETTE["threshold"], size=14, weight="bold"),
            marker=dict(symbol="circle-open", size=26, color=PALETTE["threshold"], line=dict(width=3)),
            customdata=[[r.recipe_hash, hover(r)] for r, _, _ in rings.values()],
            hovertemplate="%{customdata[1]}<extra></extra>"))
    style_axes(fig, title)
    fig.update_layout(height=height)
    return fig


def log_ticks(values: Sequence[float]) -> list[float]:
    """Ticks covering `values` on a log axis: 1-2-5, or a finer 1-1.5-2-3-4-5-7 where the data span less than
    a decade and 1-2-5 would leave fewer than three ticks among them."""
    positive = [v for v in values if v and v > 0]
    if not positive:
        return []
    low, high = min(positive) / 1.5, max(positive) * 1.5
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 7)):
        ticks = [float(f"{m * 10.0 ** e:.3g}") for e in range(math.floor(math.log10(low)) - 1,
                                                          math.ceil(math.log10(high)) + 1) for m in mantissas]
        ticks = [t for t in ticks if low <= t <= high]
        if sum(min(positive) <= t <= max(positive) for t in ticks) >= 3 or min(positive) == max(positive):
            break
    return ticks


OUTLIER_FENCE = 3.0  # an accuracy more than this many interquartile ranges below the lower quartile is off-axis
MIN_SPREAD = 0.02    # the interquartile range the fence assumes at least (2 points): a tight cluster keeps its
                     # neighbours 6 points below on the axis


def nice_step(span: float, ticks: int = 6) -> float:
    """A 1-2-5 step giving about `ticks` ticks over `span`."""
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def percent_axis(fig: go.Figure, low: float, high: float, axis: str = "y", title: str | None = None) -> None:
    """A fraction axis over [low, high] shown in percent: ticks at a 1-2-5 step, each label with just the decimals
    that step needs ('98.5%', '99%'), so no two labels read alike; none above 100 %."""
    span = max(high - low, 1e-4)
    step = nice_step(span)
    decimals = max(0, -math.floor(math.log10(100 * step) + 1e-9))
    first = math.ceil(low / step - 1e-9)
    ticks = [round(k * step, 10) for k in range(first, math.floor(high / step + 1e-9) + 1) if k * step <= 1 + 1e-9]
    update = dict(range=[low, high], tickvals=ticks, ticktext=[f"{100 * t:.{decimals}f}%" for t in ticks])
    if title is not None:
        update["title"] = title
    if axis == "x":
        fig.update_xaxes(**update)
    else:
        fig.update_yaxes(**update)


def accuracy_range(values: Sequence[float]) -> tuple[float, float]:
    """The y range an accuracy chart zooms to: the values within OUTLIER_FENCE interquartile ranges (at least
    MIN_SPREAD) below the lower quartile (Tukey's "far out" fence), padded, and at least a point wide; a model
    far below the rest (one that collapsed) is left off the axis rather than stretching it to 20 %."""
    values = sorted(values)
    if not values:
        return 0.0, 1.0
    q1, q3 = values[len(values) // 4], values[(3 * len(values)) // 4]
    fence = q1 - OUTLIER_FENCE * max(q3 - q1, MIN_SPREAD)
    kept = [v for v in values if v >= fence]
    low, high = kept[0], kept[-1]
    pad = max(0.08 * (high - low), 0.005)
    return max(low - pad, 0.0), min(high + pad, 1.0 + pad / 2)


def accuracy_axis(fig: go.Figure, values: Sequence[float], title: str = "test accuracy") -> None:
    """The accuracy y axis for `values` (accuracy_range: zoomed to the data, ticks from percent_axis); points of
    the figure's scatter traces below the axis are drawn as ▼ on its bottom edge, their accuracy in the hover."""
    low, high = accuracy_range(values)
    below = [(x, y) for trace in fig.data if isinstance(trace, go.Scatter) and trace.x is not None
             and trace.y is not None for x, y in zip(trace.x, trace.y) if y is not None and y < low]
    if below:
        fig.add_trace(go.Scatter(
            x=[x for x, _ in below], y=[low] * len(below), mode="markers", name="below the axis",
            marker=dict(symbol="triangle-down", size=12, color=PALETTE["threshold"]), cliponaxis=False,
            customdata=[[None, y] for _, y in below],  # [0]: no recipe hash, so a click selects nothing
            hovertemplate="accuracy %{customdata[1]:.2%} (below the axis)<extra></extra>"))
    percent_axis(fig, low, high, title=title)
    fig.update_yaxes(gridcolor=PALETTE["gridline"])


def style_axes(fig: go.Figure, x_title: str) -> None:
    """Log x axis with readable ticks for the data drawn, accuracy y axis fitted to it, one calm layout."""
    xs = [x for trace in fig.data for x in (trace.x or []) if x is not None]
    ys = [y for trace in fig.data for y in (trace.y or []) if y is not None]
    ticks = log_ticks(xs)
    fig.update_xaxes(type="log", title=x_title + " — log scale", tickvals=ticks or None,
                     ticktext=[f"{t:g}" for t in ticks] or None, showgrid=True, gridcolor=PALETTE["gridline"])
    accuracy_axis(fig, ys)
    fig.update_layout(margin=dict(l=8, r=8, t=40, b=8))
