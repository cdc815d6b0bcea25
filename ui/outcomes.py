"""Charts of what the technique pages measured: the share of each layer a pruning removed or zeroed, accuracy
right after each cut and after fine-tuning, accuracy against the fraction pruned and against latency, per-layer
sensitivity, a distilled student against its label-only control and teacher and both trainings epoch by epoch,
and accuracy against bit width. Each reads stored Results (through ui/tables.py's frames) and computes nothing
itself."""

import itertools
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from compression import charts
from compression.charts import PALETTE, SYMBOLS
from compression.prune import LayerRemoval
from compression.quantize import PTQ_BITS
from compression.result import DistillReport, PruneRound, Result, SensitivityTable
from ui import figures, tables, text

REMOVED, ZEROED = "removed (tensors shrank)", "zeroed (still in the tensors)"  # the per-layer bars' two parts


def removal_figure(shares: Sequence[LayerRemoval]) -> go.Figure:
    """Per layer, stacked: the share of the baseline's weights removed with whole channels, and zeroed."""
    rows = [row for s in shares for row in ({"layer": s.name, "what": REMOVED, "fraction": s.removed},
                                             {"layer": s.name, "what": ZEROED, "fraction": s.zeroed})]
    fig = figures.grouped_figure(pd.DataFrame(rows), "layer", "fraction", "what", kind="bar",
                                 colors={REMOVED: PALETTE["measured"], ZEROED: PALETTE["accent"]})
    fig.update_layout(barmode="stack")
    fig.update_yaxes(range=[0, 1], title="share of the baseline's weights")
    return fig


BEFORE_CUT, AFTER_CUT, AFTER_FINETUNE = "before the cut", "right after the cut", "after fine-tuning"


def rounds_figure(rounds: Sequence[PruneRound]) -> go.Figure:
    """A pruning's path round by round: validation accuracy before the first cut, right after each cut and after
    each fine-tuning, as one line (down at each cut, up at each fine-tuning), the axis zoomed to the values."""
    points = [("before pruning", rounds[0].before_cut, BEFORE_CUT)]
    for i, r in enumerate(rounds, 1):
        at = f"round {i} ({r.removed:.0%} removed)" if len(rounds) > 1 else f"{r.removed:.0%} removed"
        points += [(f"{at}: cut", r.after_cut, AFTER_CUT), (f"{at}: fine-tuned", r.after_finetune, AFTER_FINETUNE)]
    colors = {BEFORE_CUT: PALETTE["baseline"], AFTER_CUT: PALETTE["threshold"], AFTER_FINETUNE: PALETTE["measured"]}
    fig = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers+text",
                               text=[f"{p[1]:.1%}" for p in points], textposition="top center",
                               line=dict(color=PALETTE["control"]), customdata=[p[2] for p in points],
                               marker=dict(size=11, color=[colors[p[2]] for p in points]),
                               hovertemplate="%{x}: %{y:.2%} (%{customdata})<extra></extra>"))
    charts.accuracy_axis(fig, [p[1] for p in points])
    fig.update_yaxes(title="validation accuracy (torch)")
    return fig


def pruning_curves(table: pd.DataFrame, base: Result) -> tuple[go.Figure, go.Figure]:
    """Accuracy against the fraction removed (each curve starting at the unpruned baseline) and against the
    latency ratio to the baseline, one series a setting (tables.prunings)."""
    unpruned = pd.DataFrame([{"settings": m, "fraction removed": 0.0, "test accuracy": base.accuracy}
                             for m in table["settings"].unique()])
    by_ratio = figures.grouped_figure(pd.concat([unpruned, table]).sort_values(["settings", "fraction removed"]),
                                      "fraction removed", "test accuracy", "settings")
    by_latency = figures.grouped_figure(table, "latency ×", "test accuracy", "settings", kind="markers",
                                        hover=("fraction removed", "rounds", "within noise"))
    by_latency.add_vline(x=1, line_dash="dot", line_color=PALETTE["baseline"])
    for figure in (by_ratio, by_latency):
        figures.baseline_line(figure, base.accuracy)
        charts.accuracy_axis(figure, [base.accuracy, *table["test accuracy"]])
    return by_ratio, by_latency


def sensitivity_figure(table: SensitivityTable) -> go.Figure:
    """Validation accuracy with each layer alone pruned, against the fraction removed; the unpruned level."""
    fig = figures.grouped_figure(tables.sensitivity(table), "fraction removed", "validation accuracy", "layer")
    fig.add_hline(y=table.baseline_val_accuracy, line_dash="dot", line_color=PALETTE["baseline"],
                  annotation_text="unpruned", annotation_position="bottom left")
    values = [table.baseline_val_accuracy, *(a for layer in table.layers for a in layer.accuracy)]
    charts.percent_axis(fig, max(min(values) - 0.02, 0.0), min(max(values) + 0.02, 1.0),
                        title="validation accuracy")  # the whole range: a layer's collapse is the lesson here
    return fig


def distillation_figures(report: DistillReport) -> tuple[go.Figure, go.Figure]:
    """The teacher, the KD student and the label-only control: their test accuracy, and their parameters."""
    colors = (PALETTE["baseline"], PALETTE["measured"], PALETTE["control"])
    accuracy = (report.teacher_accuracy, report.student_accuracy, report.control_accuracy)
    bars = figures.bars(("teacher (baseline)", "student with KD", "student, labels only"), accuracy, colors,
                        [f"{a:.2%}" for a in accuracy], position="inside")
    charts.percent_axis(bars, max(0.0, min(accuracy) - 0.1), 1.0)
    params = (report.teacher_params, report.student_params)
    sizes = figures.bars(("teacher", "student (KD and control)"), params, colors[:2], [text.fmt_count(p) for p in params])
    sizes.update_yaxes(title="parameters")
    return bars, sizes


def curve_figures(report: DistillReport) -> tuple[go.Figure, go.Figure]:
    """The KD student's and the control's training, epoch by epoch: the loss each was trained on, and train
    accuracy (each the running mean over the epoch)."""
    loss, accuracy = go.Figure(), go.Figure()
    for name, curve, color in (("KD student", report.student_curve, PALETTE["grid"]),
                               ("label-only control", report.control_curve, PALETTE["control"])):
        loss.add_trace(go.Scatter(x=curve.epochs, y=curve.loss, name=name, mode="lines", line_color=color,
                                  hovertemplate="epoch %{x}: %{y:.4f}<extra>" + name + "</extra>"))
        accuracy.add_trace(go.Scatter(x=curve.epochs, y=curve.accuracy, name=name, mode="lines", line_color=color,
                                      hovertemplate="epoch %{x}: %{y:.2%}<extra>" + name + "</extra>"))
    loss.update_yaxes(title="training loss", type="log")
    accuracy.update_yaxes(title="train accuracy", tickformat=".0%")
    for fig in (loss, accuracy):
        fig.update_xaxes(title="epoch")
    return loss, accuracy


def bit_width_figure(points: pd.DataFrame, base: Result | None) -> go.Figure:
    """Accuracy against bit width (tables.bit_points): simulated series as amber open diamonds joined by lines
    (QAT dashed), measured formats as filled markers in their own colours; the FP32 baseline's line."""
    fig = go.Figure()
    measured_colors = itertools.cycle(PALETTE[c] for c in ("measured", "accent", "grid", "baseline"))
    for series, rows in points.groupby("series", sort=True):
        simulated = (rows["source"] == "simulated").all()
        color = PALETTE["simulated"] if simulated else next(measured_colors)
        fig.add_trace(go.Scatter(
            x=rows["bits"], y=rows["test accuracy"], name=series, mode="lines+markers" if simulated else "markers",
            line=dict(dash="dash" if "QAT" in series else "solid", color=color),
            marker=dict(size=10 if simulated else 13, symbol=SYMBOLS["simulated" if simulated else "measured"],
                        color=color),
            customdata=rows[["settings", "source"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>%{y:.2%} (%{customdata[1]})<extra></extra>"))
    if base is not None:
        figures.baseline_line(fig, base.accuracy, "FP32 baseline")
    fig.update_xaxes(title="bits", tickvals=list(PTQ_BITS), range=[1.5, 16.5])
    charts.accuracy_axis(fig, [*points["test accuracy"], *([base.accuracy] if base is not None else [])])
    return fig
