"""The app's figures in one look (compression.charts' palette and template, shared with the HTML report):
sizing and drawing a figure, the generic builders the pages compose (grouped series, pre-binned
histograms, bars, the baseline's line), the trade-off chart with a recipe's path on it, and a search's frontier
and hypervolume."""

import functools
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from compression import charts, classes, describe, pareto, profile
from compression.charts import PALETTE
from compression.recipe import Recipe
from compression.result import Histogram, Result, StageRecord, is_measured
from compression.store import Store
from ui import text

CHART_NOTE = ("Every point is one stored result. ● accuracy measured by running the ONNX file in onnxruntime on "
              "the test split; ◇ accuracy simulated in torch (a format no CPU runtime executes). The dashed line "
              "is the Pareto frontier: no other result is both more accurate and cheaper. Latency is the "
              "baseline's p50 divided by the speed-up timed interleaved with it in one process.")
METRIC_NAMES = {"size": "size", "latency": "latency", "flops": "FLOPs"}  # a cost axis's name on the pages


@functools.cache
def use_template() -> None:
    """Make the app's one plotly look plotly's default template, once per process. A template set on each
    figure instead costs 30-80 ms of validation per chart on every rerun; the default costs nothing."""
    import plotly.io as pio

    pio.templates.default = charts.register_template()


def warm_plotly() -> None:
    """Pay plotly's once-per-process costs before a server listens (`serve.py`): the app's template (about
    0.2-0.5 s of validation), the lazily imported validators of each trace and shape the pages draw and the
    conversion of numpy data, which a new server process would otherwise charge to the first visit of each
    page."""
    import numpy as np
    from plotly.subplots import make_subplots

    use_template()
    figure = make_subplots(rows=1, cols=2)
    zero = np.zeros(1)  # numpy data goes through narwhals, imported on its first use
    for trace in (go.Scatter(x=zero, y=zero), go.Bar(x=zero, y=zero), go.Image(z=[[[0, 0, 0]]])):
        figure.add_trace(trace, row=1, col=1)
    figure.add_vline(x=0)
    figure.add_hline(y=0)
    figure.to_json()


def style(fig: go.Figure, *, title: str | None = None, percent_y: bool = False, height: int | None = 360,
          legend: bool = True) -> go.Figure:
    """A figure's size, title and legend (below the plot, the template's); `percent_y`: a y axis of fractions in
    percent over its set range, else 0-100 % (charts.percent_axis: labels never repeat). The rest of the look
    is the app's default template."""
    use_template()
    fig.update_layout(height=height, margin=dict(l=8, r=8, t=48 if title else 16, b=8),
                      title=dict(text=title, font=dict(size=15)) if title else None, showlegend=legend)
    if percent_y:
        charts.percent_axis(fig, *(fig.layout.yaxis.range or (0.0, 1.0)))
    return fig


def chart(fig: go.Figure, container=st, key: str | None = None, **style_kwargs) -> None:
    """Style `fig` and draw it full width in `container`."""
    container.plotly_chart(style(fig, **style_kwargs), width="stretch", key=key)


def grouped_figure(table: pd.DataFrame, x: str, y: str, by: str, *, kind: str = "lines+markers",
                   hover: Sequence[str] = (), colors: dict[str, str] | None = None) -> go.Figure:
    """One trace per value of `table[by]` (in order of appearance): lines with markers, "markers" or "bar".
    What plotly express's colour grouping draws, built in milliseconds instead of ~50 ms a figure (it is
    rebuilt on every rerun)."""
    fig = go.Figure()
    extra = "".join(f"<br>{name}: %{{customdata[{i}]}}" for i, name in enumerate(hover))
    for value, rows in table.groupby(by, sort=False):
        trace = dict(x=rows[x], y=rows[y], name=str(value), customdata=rows[list(hover)].to_numpy() if hover else None,
                     hovertemplate=f"{x}: %{{x}}<br>{y}: %{{y}}{extra}<extra>{value}</extra>")
        color = (colors or {}).get(value)
        fig.add_trace(go.Bar(**trace, marker_color=color) if kind == "bar"
                      else go.Scatter(**trace, mode=kind, line_color=color, marker_color=color))
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    return fig


def bars(labels: Sequence[str], values: Sequence[float], colors: Sequence[str], text_: Sequence[str],
         position: str = "outside") -> go.Figure:
    """One bar a label, each in its colour with its value written on it."""
    return go.Figure(go.Bar(x=list(labels), y=list(values), marker_color=list(colors), text=list(text_),
                            textposition=position, insidetextanchor="end" if position == "inside" else None))


def class_change_figure(changes: Sequence[classes.ClassChange]) -> go.Figure:
    """Each class's accuracy change from A to B in points: red where it fell, green where it rose, grey where
    McNemar's test on the class's images calls it within noise."""
    def color(change: classes.ClassChange) -> str:
        if change.paired.within_noise:
            return PALETTE["control"]
        return PALETTE["threshold"] if change.delta < 0 else PALETTE["lime"]

    fig = bars([c.before.name for c in changes], [100 * c.delta for c in changes], [color(c) for c in changes],
               [f"{100 * c.delta:+.1f}" for c in changes])
    fig.update_layout(yaxis_title="B − A, accuracy points", showlegend=False)
    return fig


def baseline_line(fig: go.Figure, accuracy: float, text_: str = "baseline") -> None:
    """A dotted horizontal line at the baseline's accuracy."""
    fig.add_hline(y=accuracy, line_dash="dot", line_color=PALETTE["baseline"], annotation_text=text_,
                  annotation_position="bottom right", annotation_font_color=PALETTE["baseline"])


def histogram_figure(histogram: Histogram, *, name: str = "weights", color: str = PALETTE["measured"],
                     below: float | None = None) -> go.Figure:
    """Bars of a pre-binned histogram; bins whose centre is at or below `below` drawn in the cut colour. Small
    counts get whole-number ticks (plotly would tick a count of 2 at 0.5, 1, 1.5)."""
    edges = histogram.edges
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    colors = [PALETTE["threshold"] if below is not None and c <= below else color for c in centres]
    fig = go.Figure(go.Bar(x=centres, y=list(histogram.counts), width=widths, marker_color=colors,
                           marker_line_width=0, name=name, hovertemplate="%{x:.4g}: %{y}<extra></extra>"))
    if max(histogram.counts, default=0) <= 5:
        fig.update_yaxes(dtick=1)
    return fig


def cut_line(fig: go.Figure, x: float, label: str) -> None:
    """A dashed vertical line in the cut colour: a pruning threshold, a clipping bound."""
    fig.add_vline(x=x, line_dash="dash", line_color=PALETTE["threshold"], annotation_text=label,
                  annotation_font_color=PALETTE["threshold"])


# ------------------------------------------------------------------------------------- the trade-off chart

def hover_lines(result: Result, baseline: Result | None, why: profile.Diagnosis | None = None) -> str:
    """Everything about a point, for its hover box (plotly's <br> line breaks); `why`: the causes of its not
    being as fast as its work predicts (compression.profile.explain)."""
    recipe = Recipe.from_dict(result.recipe)
    stages = "<br>".join(f"  {i}. {describe.stage(recipe, s)}" for i, s in enumerate(recipe.stages, 1)) or "  none"
    return (f"<b>{result.technique}</b><br>{describe.workspace(recipe)}<br>stages:<br>"
            f"{stages}<br>accuracy {result.accuracy:.2%}{_accuracy_delta(result, baseline)} — {text.accuracy_mark(result)}"
            f"<br>size {text.fmt_bytes(result.size_bytes)} — {result.size_source}"
            f"<br>latency {text.latency_text(result, baseline)}{_predicted(result)}"
            f"<br>FLOPs {text.fmt_count(result.flops)} per sample{charts.why_hover(why)}")


def _accuracy_delta(result: Result, baseline: Result | None) -> str:
    """' (+0.25 pts)' against the baseline, ', within noise' where the noise rule says so; nothing for the
    baseline itself."""
    if baseline is None or result.recipe_hash == baseline.recipe_hash:
        return ""
    return f" ({text.points(result.accuracy - baseline.accuracy, result.accuracy_noise(baseline))})"


def _predicted(result: Result) -> str:
    """The speed-up FLOPs predict beside the timed one, for a timed compressed result."""
    if (not result.latency_measured or not result.speedup_vs_baseline or result.technique == "baseline"
            or result.predicted_speedup is None):
        return ""
    timed = text.noted(f"{result.speedup_vs_baseline:.2f}× timed", result.speedup_noise)
    return f"<br>speed-up {timed}, {result.predicted_speedup:.2f}× by FLOPs"


def tradeoff_figure(results: Sequence[Result], metric: str, baseline: Result | None = None,
                    why: Mapping[str, profile.Diagnosis] | None = None, **options) -> go.Figure:
    """compression.charts.pareto_figure in the app's look, each point's hover box listing its whole recipe and
    why it is not as fast as its work predicts (`why`, by recipe hash; default: `explanations`); `options`:
    highlights, frontier, dim, height, simulated."""
    use_template()
    why = explanations(results) if why is None else why
    return charts.pareto_figure(results, metric, baseline,
                                hover=lambda r: hover_lines(r, baseline, why.get(r.recipe_hash)), **options)


def explanations(results: Sequence[Result]) -> dict[str, profile.Diagnosis]:
    """Why each of `results` is not as fast as its work predicts, where it is not, by recipe hash: measured
    where the server's store holds its profile, else from the model's structure (compression.profile)."""
    return profile.explain_all(results, profile.stored_all(Store()))


def unplotted_note(results: Sequence[Result], metric: str, baseline: Result | None = None) -> str | None:
    """A caption naming results a metric's chart leaves out (latency of simulated formats), or None."""
    missing = [r for r in results if pareto.metric_value(r, metric, baseline) is None]
    if not missing:
        return None
    return (f"{len(missing)} result(s) in a simulated format have no measured latency (no runtime executes "
            "them) and are not drawn on the latency chart; switch to size or FLOPs to see them.")


def chart_notes(results: Sequence[Result], metric: str, baseline: Result | None, *extra: str) -> str:
    """The caption under a trade-off chart: how to read it, what it leaves out, and `extra` notes."""
    notes = [CHART_NOTE, unplotted_note(results, metric, baseline), *extra]
    return " ".join(n for n in notes if n)


def add_path(fig: go.Figure, stages: Sequence[StageRecord], metric: str) -> None:
    """Draw a recipe's path (its StageRecords: the baseline, then each stage) on a trade-off figure: a thick line
    with an arrowhead at each stage, labelled by stage; simulated accuracies as open diamonds."""
    scale, title = charts.axis_scale(metric)
    xs = [(s.size_bytes if metric == "size" else s.flops) / scale for s in stages]
    symbols = ["star" if i == 0 else ("arrow" if is_measured(s) else charts.SIMULATED_SYMBOL)
               for i, s in enumerate(stages)]
    names = [describe.STAGE_NAMES.get(s.stage, s.stage) for s in stages]
    hover = [f"<b>{name}</b><br>accuracy {s.accuracy:.2%} — {text.accuracy_mark(s)}"
             f"<br>size {text.fmt_bytes(s.size_bytes)} — {s.size_source}<br>FLOPs {text.fmt_count(s.flops)}"
             f"<br>non-zero parameters {s.params_nonzero:,}" for name, s in zip(names, stages)]
    red = PALETTE["threshold"]
    fig.add_trace(go.Scatter(
        x=xs, y=[s.accuracy for s in stages], mode="lines+markers+text", name="this pipeline", text=names,
        textposition="top center", line=dict(color=red, width=3),
        marker=dict(symbol=symbols, size=[18] + [16] * (len(stages) - 1), angleref="previous", color=red,
                    line=dict(width=2, color=red)),
        customdata=hover, hovertemplate="%{customdata}<extra></extra>"))
    charts.style_axes(fig, title)


# ------------------------------------------------------------------------------------------------- a search

def search_figure(front: Sequence[tuple[int, Result]], results: Sequence[Result], metric: str,
                  baseline: Result | None) -> go.Figure:
    """A search's frontier on the trade-off chart: the workspace's stored `results` faded, the frontier's
    results ringed and marked by trial number, the baseline's star; y is test accuracy (the search steered
    by validation accuracy, so the rings need not form a staircase here)."""
    highlights = [charts.Highlight(result, f"#{trial}") for trial, result in front]
    fig = tradeoff_figure(results, metric, baseline, highlights=highlights, frontier=False, dim=True)
    return fig.update_traces(name="search frontier", selector=dict(name="answer"))  # the rings' own name


def hypervolume_figure(history: Sequence[float]) -> go.Figure:
    """The hypervolume of the search's front after each finished trial (it never falls)."""
    fig = go.Figure(go.Scatter(x=list(range(1, len(history) + 1)), y=list(history), mode="lines+markers",
                               name="hypervolume", line_shape="hv", line_color=PALETTE["measured"],
                               hovertemplate="after %{x} trial(s): %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title="finished trials", rangemode="tozero")
    fig.update_yaxes(title="hypervolume", rangemode="tozero")
    return fig
