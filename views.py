"""Page helpers for showing a Result against a reference (usually its baseline): metric deltas, each
marked measured / counted / computed / simulated; the provenance caption; one calm plotly style; and
cheap, read-only views of the stored baseline network for live widgets.

Nothing here trains, prunes, quantizes or times anything: numbers come from compression/ (a Result, or
the stored baseline weights). Pages and the Trade-offs page may import any public name."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from torch import nn

import ui
from compression import charts, pipeline
from compression.charts import is_measured
from compression.errors import CompressionError
from compression.recipe import DistillSpec, Latency, Recipe, Result
from compression.store import Store

# ------------------------------------------------------------------------------------- shared settings

EPOCH_CHOICES = (0, 1, 2, 3, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560)  # the lengths an epochs slider offers:
# single steps where a few epochs matter, then doublings up to the longest fine-tuning cross-validated
PRUNE_KD_LABEL = "Fine-tune on the baseline's outputs (KD)"
PRUNE_KD_HELP = (f"Fine-tuning after each cut learns from the unpruned baseline's softened outputs as well as the "
                 f"labels (the distillation loss at T {DistillSpec.temperature:g}, α {DistillSpec.alpha:g}). It "
                 f"needs long fine-tuning: on digits it hurt at 10 epochs, and the distilled, pruned student kept "
                 f"gaining up to 2560 epochs, no further at 5120 (cross-validated).")

# ---------------------------------------------------------------------------------------------- style

ui.use_plotly_template()

COLORS = {
    "baseline": "#64748b",    # slate
    "measured": "#2563eb",    # the theme's blue
    "simulated": "#d97706",   # amber: never mistaken for a measurement
    "control": "#94a3b8",     # light slate
    "accent": "#0d9488",      # teal
    "threshold": "#dc2626",   # red: a cut, a clipping range
    "grid": "#7c3aed",        # violet: a quantization grid
}
SYMBOLS = {"measured": "circle", "simulated": charts.SIMULATED_SYMBOL}


def style(fig: go.Figure, *, title: str | None = None, percent_y: bool = False, height: int | None = 360,
          legend: bool = True) -> go.Figure:
    """A figure's size, title and legend; the rest of the look is the app's default template
    (`ui.use_plotly_template`)."""
    fig.update_layout(height=height, margin=dict(l=8, r=8, t=48 if title else 16, b=8),
                      title=dict(text=title, font=dict(size=15)) if title else None, showlegend=legend)
    if percent_y:
        fig.update_yaxes(tickformat=".0%")
    return fig


def chart(fig: go.Figure, container=st, **style_kwargs) -> None:
    """Style `fig` and draw it full width in `container`."""
    container.plotly_chart(style(fig, **style_kwargs), width="stretch")


def grouped_figure(table: pd.DataFrame, x: str, y: str, by: str, *, kind: str = "lines+markers",
                   hover: Sequence[str] = (), colors: dict[str, str] | None = None) -> go.Figure:
    """One trace per value of `table[by]` (in order of appearance): lines with markers, "markers" or "bar".
    What plotly express's colour grouping draws, built in milliseconds instead of ~50 ms a figure (it is
    rebuilt on every rerun)."""
    fig = go.Figure()
    extra = "".join(f"<br>{name}: %{{customdata[{i}]}}" for i, name in enumerate(hover))
    for value, rows in table.groupby(by, sort=False):
        style = dict(x=rows[x], y=rows[y], name=str(value),
                     customdata=rows[list(hover)].to_numpy() if hover else None,
                     hovertemplate=f"{x}: %{{x}}<br>{y}: %{{y}}{extra}<extra>{value}</extra>")
        color = (colors or {}).get(value)
        fig.add_trace(go.Bar(**style, marker_color=color) if kind == "bar"
                      else go.Scatter(**style, mode=kind, line_color=color, marker_color=color))
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    return fig


def baseline_line(fig: go.Figure, accuracy: float, text: str = "baseline") -> None:
    """A dotted horizontal line at the baseline's accuracy."""
    fig.add_hline(y=accuracy, line_dash="dot", line_color=COLORS["baseline"], annotation_text=text,
                  annotation_position="bottom right", annotation_font_color=COLORS["baseline"])


# ----------------------------------------------------------------------------------------- provenance


def source_label(result: Result) -> str:
    """'measured' or 'simulated', for legends and tables."""
    return "measured" if is_measured(result) else "simulated"


def accuracy_note(result: Result) -> str:
    if is_measured(result):
        return "measured · onnxruntime, test split"
    return f"simulated · {result.accuracy_source}, test split"


def size_note(result: Result) -> str:
    if result.size_source == "onnx file":
        return "measured · ONNX file bytes"
    return "computed · " + result.size_source.removeprefix("computed: ").removeprefix("computed")


def latency_note(result: Result) -> str:
    if not result.latency_measured or result.latency_ms is None:
        return "not timed · no runtime executes a simulated format"
    lat = result.latency_ms
    return f"measured · onnxruntime, batch {lat.batch}, {lat.threads} thread(s)"


def cpu_flags(result: Result) -> str:
    return ", ".join(f for f, on in result.provenance.get("cpu_flags", {}).items() if on) or "none"


def provenance_caption(result: Result) -> str:
    """One paragraph saying how each number of `result` was obtained (markdown)."""
    parts = []
    if is_measured(result):
        parts.append("**Accuracy** measured: the exported ONNX file run in onnxruntime on the test split.")
    else:
        parts.append(f"**Accuracy** simulated ({result.accuracy_source}): no CPU runtime executes this format, so "
                     "the test split is scored in torch with fake quantization.")
    if result.size_source == "onnx file":
        parts.append("**Size**: bytes of the ONNX file, and of its gzip (level 9), where zeros show.")
    else:
        parts.append(f"**Size** computed, not a file: {result.size_source.removeprefix('computed: ')}.")
    parts.append("**FLOPs** counted per sample on the exported model (a masked weight still costs a FLOP).")
    if result.latency_measured and result.latency_ms is not None:
        lat = result.latency_ms
        runtime = result.provenance.get("runtime", "onnxruntime")
        parts.append(f"**Latency** measured in {runtime}: batch {lat.batch}, {lat.threads} intra-op thread(s), "
                     f"p50 of {lat.runs} runs, timed interleaved with the baseline in the same process; "
                     f"CPU flags {cpu_flags(result)}.")
    else:
        parts.append("**Latency** not timed: a simulated format has no runtime to time.")
    parts.append(f"{'Measured' if is_measured(result) else 'Computed'} {ui.fmt_time(result.created_at)} and stored "
                 f"as `{result.recipe_hash}`: these settings chosen again show it without recomputing.")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------- metrics

@dataclass(frozen=True)
class MetricFigure:
    """One number of a Result as a page shows it: label, value, change vs the reference, how it was obtained
    (`kind`: measured / counted / computed / simulated / not timed) and a tooltip."""

    label: str
    value: str
    delta: str | None
    delta_color: str
    kind: str
    note: str
    help: str


def _change(value: float, reference: float) -> str:
    """A signed relative change, e.g. '-75%' (st.metric colours by the leading sign; no change reads '±0%',
    which `_color` greys). Short, so that six in a row are not cut off."""
    if reference == 0:
        return "n/a"
    percent = round(100 * (value / reference - 1))
    return f"{percent:+d}%" if percent else "±0%"


def _points(value: float, reference: float) -> str:
    """An accuracy change in percentage points, e.g. '+0.25 pts'."""
    points = round(100 * (value - reference), 2)
    return f"{points:+.2f} pts" if points else "±0.00 pts"


def _color(delta: str, color: str) -> str:
    """`color`, or 'off' (grey) for no change."""
    return "off" if delta.startswith("±") or delta == "n/a" else color


def _latency_vs(result: Result, reference: Result | None) -> tuple[Latency | None, float | None, bool]:
    """(reference latency, result p50 / reference p50, timed in the same process)."""
    if not result.latency_measured or result.latency_ms is None:
        return None, None, False
    own_baseline = reference is None or reference.recipe_hash == Recipe.from_dict(result.recipe).baseline().hash
    if own_baseline and result.speedup_vs_baseline:
        return result.baseline_latency_ms, 1 / result.speedup_vs_baseline, True
    if reference is not None and reference.latency_ms is not None:
        return reference.latency_ms, result.latency_ms.p50 / reference.latency_ms.p50, False
    return None, None, False


def _ratio(label: str, ratio: float, kind: str, note: str, help_: str) -> MetricFigure:
    """A figure shown as a ratio to the reference ('0.49×') with its relative change as the delta (smaller is
    better: a fall is green)."""
    delta = _change(ratio, 1.0)
    return MetricFigure(label, f"{ratio:.2f}×", delta, _color(delta, "inverse"), kind, note, help_)


def metric_figures(result: Result, reference: Result | None = None, versus: str = "baseline") -> list[MetricFigure]:
    """Accuracy, size, gzip size, FLOPs, latency and zero weights of `result` against `reference` (its
    baseline when None: the ratios the pipeline measured), `versus` naming it in the tooltips. Ratios are the
    values ('0.49×'); relative changes are the deltas."""
    ref_acc = reference.accuracy if reference is not None else result.baseline_accuracy
    acc_kind = "measured" if is_measured(result) else "simulated"
    acc_delta = _points(result.accuracy, ref_acc)
    figures = [MetricFigure(
        "Test accuracy", f"{result.accuracy:.2%}", acc_delta, _color(acc_delta, "normal"), acc_kind,
        accuracy_note(result), f"{acc_kind} in {result.accuracy_source} on the test split; {versus} {ref_acc:.2%}")]

    size_ratio = result.size_bytes / reference.size_bytes if reference else result.size_ratio_vs_baseline
    figures.append(_ratio(
        "Size", size_ratio, "measured" if result.size_source == "onnx file" else "computed", size_note(result),
        f"{ui.fmt_bytes(result.size_bytes)} ({result.size_source})"
        + (f" vs {ui.fmt_bytes(reference.size_bytes)}" if reference else "")))

    if (gzip := result.file_gzip_bytes) is not None:
        gzip_ratio = gzip / reference.size_gzip_bytes if reference else result.size_gzip_ratio_vs_baseline
        figures.append(_ratio("gzip size", gzip_ratio, "measured", "measured · gzip -9 of the file",
                              f"{ui.fmt_bytes(gzip)}: where unstructured zeros show"))
    else:
        figures.append(MetricFigure("gzip size", "—", None, "off", "computed", "no file to compress",
                                    "a simulated format exists only as a torch model: there is no file to gzip"))

    flops_ratio = result.flops / reference.flops if reference else result.flops_ratio_vs_baseline
    figures.append(_ratio("FLOPs", flops_ratio, "counted", "counted · exported model",
                          f"{ui.fmt_count(result.flops)} per sample; masked zeros still count"))

    ref_latency, latency_ratio, same_process = _latency_vs(result, reference)
    if latency_ratio is None:
        figures.append(MetricFigure("Latency p50", "—", None, "off", "not timed", latency_note(result),
                                    "no runtime executes a simulated format, so nothing was timed"))
    else:
        lat = result.latency_ms
        how = "timed interleaved in the same process" if same_process else "timed in different processes"
        figures.append(_ratio("Latency p50", latency_ratio, "measured", latency_note(result),
                              f"{lat.p50:.3f} ms (p90 {lat.p90:.3f}, {lat.runs} runs)"
                              + (f" vs {versus} {ref_latency.p50:.3f} ms" if ref_latency else "") + f"; {how}"))

    figures.append(MetricFigure(
        "Zero weights", f"{result.sparsity:.0%}", None, "off", "counted", "counted · parameters",
        f"{result.params_nonzero:,} of {result.params_total:,} parameters are non-zero"))
    return figures


def result_metrics(result: Result, reference: Result | None = None, container=st,
                   versus: str = "baseline") -> list[MetricFigure]:
    """Draw `metric_figures` as a row of st.metric in `container` under a line naming the reference, each
    with its provenance mark under it (for side by side, call it once a column-container)."""
    figures = metric_figures(result, reference, versus)
    container.caption(f"Against the {versus}: sizes, FLOPs and latency as ratios (×); under each figure its change, "
                      "green where better.")
    for column, fig in zip(container.columns(len(figures)), figures):
        column.metric(fig.label, fig.value, fig.delta, delta_color=fig.delta_color, help=fig.help,
                      delta_arrow="off" if fig.delta_color == "off" else "auto")
        column.caption(fig.note)
    return figures


def comparison_table(results: Sequence[Result], reference: Result | None = None) -> pd.DataFrame:
    """One row a result, side by side: technique, accuracy and its provenance, size, ratios vs the reference."""
    rows = []
    for r in results:
        _, latency_ratio, _ = _latency_vs(r, reference)
        ref_size = reference.size_bytes if reference else r.size_bytes / r.size_ratio_vs_baseline
        ref_flops = reference.flops if reference else r.flops / r.flops_ratio_vs_baseline
        rows.append({
            "technique": r.technique, "recipe": r.recipe_hash, "test accuracy": r.accuracy,
            "accuracy": source_label(r), "size": ui.fmt_bytes(r.size_bytes), "size ×": r.size_bytes / ref_size,
            "size source": r.size_source, "FLOPs ×": r.flops / ref_flops, "latency ×": latency_ratio,
            "latency": "measured" if latency_ratio is not None else "not timed",
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- the stored baseline, read-only

def stored_baseline(recipe: Recipe, store: Store) -> Result | None:
    """The measured baseline Result of `recipe` (same data, model, training, timing), if stored."""
    return store.get_result(recipe.baseline().hash)


def runnable(recipe: Recipe, store: Store) -> Recipe | None:
    """`recipe` if it can run, else None after its one-line error on the page: validated, and, once the
    workspace's baseline is trained (its data on disk), checked against the model as the pipeline would."""
    try:
        recipe.validate()
        if has_trained_weights(recipe, store):
            pipeline.check_feasible(recipe, pipeline.load_splits(recipe.dataset, recipe.seed))
    except CompressionError as exc:
        st.error(str(exc))
        return None
    return recipe


def measured(recipe: Recipe | None, clicked: bool, store: Store, label: str) -> Result | None:
    """The stored Result of `recipe` (None if it cannot run or is not measured yet), after running it in a
    background job with progress when its Run button was `clicked` (a stored recipe is never recomputed)."""
    if recipe is None:
        return None
    if clicked:
        ui.run_in_status(label, lambda progress: pipeline.run(recipe, store, progress), key=recipe.hash)
    return store.get_result(recipe.hash)


def has_trained_weights(recipe: Recipe, store: Store) -> bool:
    """Whether the baseline's trained weights are in the store (so live views need no training)."""
    stored = store.get("weights", recipe.training_key)
    return bool(stored) and (store.root / stored["artifacts"][pipeline.WEIGHTS]).exists()


@st.cache_resource(max_entries=4, show_spinner=False)
def _cached_baseline(root: str, training_key: str, recipe_json: str) -> nn.Module:
    recipe = Recipe.from_dict(json.loads(recipe_json))
    splits = pipeline.load_splits(recipe.dataset, recipe.seed)
    return pipeline.baseline_model(Store(root), recipe, splits)


def trained_baseline(recipe: Recipe, store: Store) -> nn.Module | None:
    """The trained baseline network of `recipe` from the store (never trains: None if not there yet).
    Cached and shared across sessions: read it, or `copy.deepcopy` it before changing anything."""
    if not has_trained_weights(recipe, store):
        return None
    base = recipe.baseline()
    return _cached_baseline(str(store.root), base.training_key, json.dumps(base.to_dict(), sort_keys=True))


def histogram_figure(counts: Sequence[int], edges: Sequence[float], *, name: str = "weights",
                     color: str = COLORS["measured"], below: float | None = None) -> go.Figure:
    """Bars of a pre-binned histogram; bins whose centre is at or below `below` drawn in the cut colour. Small
    counts get whole-number ticks (plotly would tick a count of 2 at 0.5, 1, 1.5)."""
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    colors = [COLORS["threshold"] if below is not None and c <= below else color for c in centres]
    fig = go.Figure(go.Bar(x=centres, y=list(counts), width=widths, marker_color=colors, marker_line_width=0,
                           name=name, hovertemplate="%{x:.4g}: %{y}<extra></extra>"))
    if max(counts, default=0) <= 5:
        fig.update_yaxes(dtick=1)
    return fig
