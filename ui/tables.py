"""The app's tables: stored results as pandas DataFrames (every figure with its provenance, a recipe's path stage
by stage, two results side by side, the prunings / distillations / quantizations of one baseline, the
sensitivity curves, a search's frontier), how their columns are shown, and drawing them."""

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from compression import describe, pareto, profile, report, stats
from compression.recipe import Recipe
from compression.result import QuantReport, Result, SensitivityTable, StageRecord
from compression.stats import Paired
from ui import text
from ui.figures import explanations

if TYPE_CHECKING:  # the quantize module loads torch; this one stays light
    from compression.quantize import BitPoint
    from compression.search import Point


def percent_column(decimals: int = 2) -> st.column_config.NumberColumn:
    """A table column of fractions shown as percentages with exactly `decimals` decimals ('97.50%'); Streamlit's
    bare "percent" format drops trailing zeros (97.5% next to 97.78%) and takes the decimals from `step`."""
    return st.column_config.NumberColumn(format="percent", step=10.0 ** -(decimals + 2))


ACCURACY_COLUMN = percent_column()
RATIO_COLUMN = st.column_config.NumberColumn(format="%.3f")
COUNT_COLUMN = st.column_config.NumberColumn(format="localized")  # 53,002
POINTS_COLUMN = st.column_config.NumberColumn(format="%+.2f")
RESULT_COLUMNS = {  # how the pages show results_table's numbers
    "recipe": st.column_config.TextColumn(width="medium", help="the recipe in words (hover a cell to read it all)"),
    "test accuracy": ACCURACY_COLUMN,
    "vs baseline (pts)": POINTS_COLUMN,
    "size (KB)": st.column_config.NumberColumn(format="%.1f"),
    "gzip (KB)": st.column_config.NumberColumn(format="%.1f", help="empty: a simulated format has no file"),
    "size ×": RATIO_COLUMN, "FLOPs ×": RATIO_COLUMN,
    "latency (ms)": st.column_config.NumberColumn(format="%.4f", help="baseline p50 / speed-up; empty: not timed"),
    "speed-up ×": st.column_config.NumberColumn(format="%.2f", help="timed: the baseline's latency ÷ this one's"),
    "FLOPs predict ×": st.column_config.NumberColumn(format="%.2f", help="the speed-up the FLOPs ratio predicts; "
                                                     "far above the timed one: see Where the time goes on its page"),
    "why not faster": st.column_config.TextColumn(help="where the timed speed-up falls short of the one its FLOPs "
                                                  "predict (a sparse model's zeros counted as skipped): the likely "
                                                  "causes, measured by its profile or read from its structure"),
    "MFLOPs": st.column_config.NumberColumn(format="%.3f"),
    "zero weights": percent_column(0),
    "within noise": st.column_config.TextColumn(help="which of its deltas vs the baseline are within noise: accuracy "
                                                "(McNemar's test on paired test predictions, else the 95 % intervals), "
                                                "latency (the speed-up's 95 % interval contains 1); size and FLOPs "
                                                "are exact"),
    "hash": None,  # the store key: kept in the table (charts and tests find a result by it), not shown
}
STAGE_COLUMNS = {  # how stages_table's numbers show
    "test accuracy": ACCURACY_COLUMN, "size (KB)": RESULT_COLUMNS["size (KB)"], "MFLOPs": RESULT_COLUMNS["MFLOPs"],
    "non-zero parameters": COUNT_COLUMN,
    "seconds": st.column_config.NumberColumn(format="%.1f", help="time spent in the stage itself when it was first "
                                                                 "computed (reused prefixes cost nothing)"),
}


def show_table(table: pd.DataFrame, columns: dict) -> None:
    """`table` full width, without its index, its columns shown as `columns` (column_config; None: hidden) say.
    Percent columns are rounded to their step first: Streamlit cuts the digits beyond it (0.980556 would read
    98.05%, where the rest of the app says 98.06%)."""
    steps = {name: config["type_config"]["step"] for name, config in columns.items()
             if config and config["type_config"].get("format") == "percent" and name in table}
    shown = table.round({name: round(-math.log10(step)) for name, step in steps.items()})
    st.dataframe(shown, hide_index=True, width="stretch", column_config=columns)


def noisy_deltas(result: Result, baseline: Result | None = None) -> str:
    """Which of `result`'s deltas vs its baseline are within noise, e.g. 'accuracy, latency'; '—' for none."""
    if baseline is not None and result.recipe_hash == baseline.recipe_hash:
        return "—"
    noisy = [name for name, noise in (("accuracy", result.accuracy_noise()), ("latency", result.speedup_noise))
             if text.within_noise(noise)]
    return ", ".join(noisy) or "—"


def results_table(results: Sequence[Result], baseline: Result | None,
                  why: Mapping[str, profile.Diagnosis] | None = None) -> pd.DataFrame:
    """One row a result with every figure and its provenance; `why`: by recipe hash, why a result is not as fast
    as its work predicts (default: figures.explanations)."""
    why = explanations(results) if why is None else why
    rows = []
    for r in results:
        rows.append({  # the four figures first, so that they show without scrolling at 1280 px; provenance after
            "technique": r.technique, "recipe": describe.recipe(r.recipe), "test accuracy": r.accuracy,
            "vs baseline (pts)": (round(100 * (r.accuracy - baseline.accuracy), 4) or 0.0) if baseline else None,
            "size (KB)": r.size_bytes / 1024, "latency (ms)": pareto.metric_value(r, "latency", baseline),
            "MFLOPs": r.flops / 1e6, "within noise": noisy_deltas(r, baseline),
            "size ×": r.size_bytes / baseline.size_bytes if baseline else r.size_ratio_vs_baseline,
            "speed-up ×": r.speedup_vs_baseline if r.latency_measured else None,
            "FLOPs ×": r.flops / baseline.flops if baseline else r.flops_ratio_vs_baseline,
            "accuracy": text.accuracy_mark(r), "FLOPs predict ×": r.predicted_speedup,
            "why not faster": why[r.recipe_hash].short if r.recipe_hash in why else None,
            "size source": r.size_source, "gzip (KB)": None if r.file_gzip_bytes is None else r.file_gzip_bytes / 1024,
            "zero weights": r.sparsity, "workspace": describe.workspace(r.recipe), "stored": r.created_at,
            "hash": r.recipe_hash,
        })
    return pd.DataFrame(rows)


def downloads(table: pd.DataFrame, results: Sequence[Result], stem: str, title: str,
              budgets: Sequence[pareto.Budget] | None = None) -> None:
    """The results `table` as CSV and `results` as the HTML report (with `budgets` answered; built only when
    clicked: megabytes), side by side, as `stem`.csv and `stem`.html."""
    row = st.container(horizontal=True)
    row.download_button("Download table (CSV)", table.to_csv(index=False).encode(), file_name=f"{stem}.csv",
                        mime="text/csv", icon=":material/download:", on_click="ignore")
    row.download_button("Download HTML report", lambda: report.build_html(results, budgets, title=title),
                        file_name=f"{stem}.html", mime="text/html", icon=":material/description:", on_click="ignore")


def compare_rows(a: Result, b: Result, baseline: Result | None, paired: Paired | None = None) -> pd.DataFrame:
    """Two results' figures side by side, with B relative to A; accuracy and latency say where B vs A is within
    noise (`paired`: McNemar on their test predictions, else their intervals; latency where one is the other's
    baseline, whose speed-up interval was timed)."""
    def ratio(x: float | None, y: float | None) -> str:
        return f"{y / x:.2f}×" if x and y is not None else "—"

    def latency(value: float | None) -> str:
        return "not timed" if value is None else f"{value:.4f} ms"

    def gzip(r: Result) -> str:
        return "no file (simulated)" if r.file_gzip_bytes is None else text.fmt_bytes(r.file_gzip_bytes)

    lat_a, lat_b = (pareto.metric_value(r, "latency", baseline) for r in (a, b))
    accuracy_noise = (stats.accuracy_noise(paired.p_value, None, None) if paired is not None
                      else b.accuracy_noise(a))
    latency_noise = (b.speedup_noise if a.recipe_hash == b.baseline_hash else
                     a.speedup_noise if b.recipe_hash == a.baseline_hash else None)
    rows = [
        ("technique", a.technique, b.technique, ""),
        ("test accuracy", text.accuracy_with_interval(a), text.accuracy_with_interval(b),
         text.points(b.accuracy - a.accuracy, accuracy_noise)),
        ("accuracy is", text.accuracy_mark(a), text.accuracy_mark(b), ""),
        ("size", text.fmt_bytes(a.size_bytes), text.fmt_bytes(b.size_bytes), ratio(a.size_bytes, b.size_bytes)),
        ("size is", a.size_source, b.size_source, ""),
        ("gzip size", gzip(a), gzip(b), ratio(a.file_gzip_bytes, b.file_gzip_bytes)),
        ("latency p50 (normalised)", latency(lat_a), latency(lat_b), text.noted(ratio(lat_a, lat_b), latency_noise)),
        ("FLOPs / sample", text.fmt_count(a.flops), text.fmt_count(b.flops), ratio(a.flops, b.flops)),
        ("non-zero parameters", f"{a.params_nonzero:,}", f"{b.params_nonzero:,}",
         ratio(a.params_nonzero, b.params_nonzero)),
        ("stages", describe.recipe(a.recipe), describe.recipe(b.recipe), ""),
        ("stored", a.created_at, b.created_at, ""),
    ]
    return pd.DataFrame(rows, columns=["", "A", "B", "B vs A"])


def stages_table(stages: Sequence[StageRecord]) -> pd.DataFrame:
    """A recipe's StageRecords, the baseline first."""
    return pd.DataFrame([{
        "stage": describe.STAGE_NAMES.get(s.stage, s.stage), "test accuracy": s.accuracy,
        "accuracy": text.accuracy_mark(s), "size (KB)": s.size_bytes / 1024, "size is": s.size_source,
        "non-zero parameters": s.params_nonzero, "MFLOPs": s.flops / 1e6, "seconds": s.seconds,
        "training": s.stopped_text or "",
    } for s in stages])


def prunings(results: Sequence[Result]) -> pd.DataFrame:
    """Single-stage prunings, one row each, sorted by their settings then the fraction removed; 'settings' is
    everything but the fraction, so that each of its values is one curve."""
    rows = []
    for r in results:
        spec = Recipe.from_dict(r.recipe).prune
        rows.append({"settings": f"{spec.method} ({describe.prune_settings(spec)})", "fraction removed": spec.ratio,
                     "rounds": spec.steps, "fine-tune epochs": spec.finetune_epochs, "test accuracy": r.accuracy,
                     "latency ×": 1 / r.speedup_vs_baseline, "FLOPs ×": r.flops_ratio_vs_baseline,
                     "gzip ×": r.size_gzip_ratio_vs_baseline, "within noise": noisy_deltas(r)})
    return pd.DataFrame(rows).sort_values(["settings", "fraction removed"])


PRUNING_COLUMNS = {"test accuracy": ACCURACY_COLUMN, "fraction removed": st.column_config.NumberColumn(format="%.2f"),
                   "latency ×": st.column_config.NumberColumn(format="%.2f"), "FLOPs ×": RATIO_COLUMN,
                   "gzip ×": RATIO_COLUMN}


def distillations(results: Sequence[Result]) -> pd.DataFrame:
    """Single-stage distillations, one row each: the student's settings, its accuracy with KD and without."""
    rows = [{"student": d.student, "width": d.width, "T": d.temperature, "α": d.alpha, "epochs": d.epochs,
             "KD student": d.student_accuracy, "labels only": d.control_accuracy, "KD gain (pts)": 100 * d.kd_gain,
             "params": d.student_params, "accuracy": text.accuracy_kind(r),
             "within noise": "KD gain" if text.within_noise(d.kd_noise(r.test_images)) else "—"}
            for r in results if (d := r.distill) is not None]
    return pd.DataFrame(rows).sort_values(["student", "width", "T", "α", "epochs"]) if rows else pd.DataFrame()


DISTILLATION_COLUMNS = {"KD student": ACCURACY_COLUMN, "labels only": ACCURACY_COLUMN,
                        "KD gain (pts)": POINTS_COLUMN, "params": COUNT_COLUMN}


def activation_ranges(report: QuantReport) -> pd.DataFrame:
    """Each quantized layer input's observed range beside the clip range, scale and zero point quantization
    used (empty where activations are not quantized)."""
    return pd.DataFrame([{"layer": layer.name, **vars(layer.activation)} for layer in report.layers
                         if layer.activation is not None])


def sensitivity(table: SensitivityTable) -> pd.DataFrame:
    """One row a layer and ratio: the validation accuracy with that layer alone pruned."""
    return pd.DataFrame([{"layer": layer.name, "fraction removed": r, "validation accuracy": accuracy}
                         for layer in table.layers for r, accuracy in zip(table.ratios, layer.accuracy)])


def bit_points(points: Sequence["BitPoint"]) -> pd.DataFrame:
    """The accuracy-against-bit-width points, by series then bits, with each point's settings in words."""
    rows = [{"series": p.series, "bits": p.bits, "test accuracy": p.result.accuracy,
             "source": text.accuracy_kind(p.result),
             "settings": describe.stage(Recipe.from_dict(p.result.recipe), "quant")} for p in points]
    return pd.DataFrame(rows).sort_values(["series", "bits"]) if rows else pd.DataFrame()


FRONTIER_COLUMNS = {  # how frontier_table's numbers show
    "validation accuracy": ACCURACY_COLUMN, "test accuracy": ACCURACY_COLUMN,
    "size (KB)": RESULT_COLUMNS["size (KB)"], "latency (ms)": RESULT_COLUMNS["latency (ms)"],
    "MFLOPs": RESULT_COLUMNS["MFLOPs"],
    "hash": None,  # the store key: kept in the table (a point's result), not shown (the recipe column says it)
}


def frontier_table(points: Sequence["Point"], results: dict[int, Result]) -> pd.DataFrame:
    """A search's frontier, one row a trial: its recipe, the validation accuracy that steered the search, then
    its stored result's test accuracy (with its provenance) and costs (`results`: by trial number)."""
    return pd.DataFrame([{
        "trial": p.trial, "technique": p.result["technique"], "recipe": describe.recipe(p.result["recipe"]),
        "validation accuracy": p.values[0], "test accuracy": p.result["accuracy"],
        "accuracy": text.accuracy_mark(results[p.trial]), "size (KB)": p.result["size_bytes"] / 1024,
        "latency (ms)": p.result["latency_ms"], "MFLOPs": p.result["flops"] / 1e6, "hash": p.result["recipe_hash"],
    } for p in points])
