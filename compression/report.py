"""A self-contained HTML report of measured results for a stakeholder review: per workspace (data set, model,
training and timing setup) the baseline, interactive Pareto charts of accuracy against size, latency and
FLOPs, the budget answers, every result with its recipe, where the time goes in each profiled result (its
compute layers beside the baseline's and the causes that apply), and the provenance of the numbers.

The file works offline: plotly.js is embedded once (in the first chart), nothing is fetched. Import-light
(plotly, no torch), so the CLI writes a report from the store at once.

    build_html(results, budgets=None, title="Compression report", generated=None, profiles=None) -> str
    write(path, results, budgets=None, title="Compression report", profiles=None) -> Path
"""

import html
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from compression import charts, describe, pareto, profile
from compression.charts import Highlight
from compression.pareto import METRICS, UNITS, Budget
from compression.recipe import Recipe
from compression.result import Provenance, Result, is_measured
from compression.stats import noted

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1e293b; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 2px solid #e2e8f0; padding-bottom: .3rem; margin-top: 2.5rem; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid #e2e8f0; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f8fafc; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.frontier td:first-child { border-left: 3px solid #2563eb; } .muted { color: #64748b; }
"""


NOISE_RULE = ("A delta reads “within noise” where it may be chance: an accuracy delta when McNemar's exact test on "
              "the two models' paired test predictions gives p ≥ 0.05 (without stored predictions: when their 95 % "
              "Wilson intervals overlap), a latency when the 95 % interval of its speed-up, from the rounds it was "
              "timed interleaved with the baseline, contains 1. Sizes and FLOPs are exact.")


def _shown(metric: str, value: float | None) -> str:
    """A metric value in its display unit, e.g. '12.3 KB'; a dash for none."""
    if value is None:
        return "—"
    unit, scale, _ = UNITS[metric]
    return f"{value / scale:,.3f} {unit}" if metric == "latency" else f"{value / scale:,.1f} {unit}"


def _accuracy_delta(result: Result, baseline: Result | None) -> str:
    """'+0.25 pts' against the baseline, ', within noise' after it where the noise rule says so; '—' without
    a baseline."""
    if baseline is None:
        return "—"
    if result.recipe_hash == baseline.recipe_hash:
        return "baseline"
    return noted(f"{100 * (result.accuracy - baseline.accuracy):+.2f} pts", result.accuracy_noise(baseline))


def _latency(result: Result, baseline: Result | None) -> str:
    """The latency normalised to the baseline, ', within noise' where its speed-up's interval contains 1."""
    if not result.latency_measured:
        return "not timed (simulated)"
    return noted(_shown("latency", pareto.metric_value(result, "latency", baseline)), result.speedup_noise)


def _hover(result: Result, baseline: Result | None, why: profile.Diagnosis | None = None) -> str:
    values = "<br>".join(f"{m}: " + (_latency(result, baseline) if m == "latency" else
                                     _shown(m, pareto.metric_value(result, m, baseline))) for m in METRICS)
    delta = "" if baseline is None or result.recipe_hash == baseline.recipe_hash else \
        f", {_accuracy_delta(result, baseline)}"
    return (f"<b>{html.escape(describe.recipe(result.recipe))}</b><br>accuracy {result.accuracy:.2%} "
            f"({result.accuracy_source}{delta})<br>{values}{charts.why_hover(why)}<br>{result.recipe_hash}")


def pareto_figure(results: Sequence[Result], metric: str, baseline: Result | None = None,
                  answers: Sequence[tuple[Budget, Result | None]] = (),
                  why: Mapping[str, profile.Diagnosis] | None = None) -> go.Figure:
    """The trade-off chart of `metric` (compression.charts) with the `answers` to this metric's budget
    questions ringed and numbered as in the answers table (from 1), titled, in the app's template; `why`: by
    recipe hash, why a result is not as fast as its work predicts (compression.profile.explain), on its hover."""
    why = why or {}
    fig = charts.pareto_figure(results, metric, baseline,
                               hover=lambda r: _hover(r, baseline, why.get(r.recipe_hash)),
                               highlights=[Highlight(r, str(n)) for n, (b, r) in enumerate(answers, 1)
                                           if r is not None and b.metric == metric])
    fig.update_layout(template=charts.register_template(), title=f"Accuracy vs {metric}")
    return fig


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Collection[int] = (),
           row_classes: Sequence[str] | None = None) -> str:
    """An HTML table; cells are escaped, `numeric` columns right-aligned."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td{' class=num' if j in numeric else ''}>{html.escape(str(c))}</td>"
                        for j, c in enumerate(row))
        css = f" class={row_classes[i]}" if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Charts:
    """Renders figures as HTML fragments, embedding plotly.js in the first one only."""

    def __init__(self) -> None:
        self.embedded = False

    def html(self, fig: go.Figure) -> str:
        fragment = fig.to_html(full_html=False, include_plotlyjs=not self.embedded,
                               config={"displaylogo": False})
        self.embedded = True
        return fragment


def _baseline_html(baseline: Result) -> str:
    r = Recipe.from_dict(baseline.recipe)
    rows = [["recipe", f"{r.dataset} / {r.model}, seed {r.seed}, {r.epochs} epochs"
                       + (", pretrained" if r.pretrained else "")],
            ["test accuracy", f"{baseline.accuracy:.2%} ({baseline.accuracy_source})"],
            ["ONNX size", f"{_shown('size', baseline.size_bytes)} (gzip {_shown('size', baseline.size_gzip_bytes)})"],
            ["latency p50", f"{_shown('latency', pareto.metric_value(baseline, 'latency', baseline))} at batch "
                            f"{r.batch}, {r.threads} thread(s)"],
            ["FLOPs per sample", _shown("flops", baseline.flops)],
            ["parameters", f"{baseline.params_total:,}"],
            ["recipe hash", baseline.recipe_hash]]
    return _table(["baseline", ""], rows)


def _answers_html(answers: Sequence[tuple[Budget, Result | None]], baseline: Result) -> str:
    rows = [[n, b.question, describe.recipe(r.recipe), f"{r.accuracy:.2%}",
             _shown(b.metric, pareto.metric_value(r, b.metric, baseline)), r.recipe_hash] if r is not None
            else [n, b.question, "nothing fits", "—", "—", ""] for n, (b, r) in enumerate(answers, 1)]
    return _table(["ring", "question", "answer", "accuracy", "its cost", "recipe hash"], rows, numeric={3, 4})


def _results_html(results: Sequence[Result], baseline: Result | None,
                  why: Mapping[str, profile.Diagnosis]) -> str:
    """Every result, most accurate first, with why it is not as fast as its work predicts (`why`, by recipe
    hash); rows on some frontier are marked."""
    on_frontier = {m: {r.recipe_hash for r in pareto.frontier(results, m, baseline)} for m in METRICS}
    ordered = sorted(results, key=lambda r: (-r.accuracy, r.size_bytes, r.recipe_hash))
    rows, classes = [], []
    for r in ordered:
        marks = [m for m in METRICS if r.recipe_hash in on_frontier[m]]
        rows.append([describe.recipe(r.recipe), f"{r.accuracy:.2%}", _accuracy_delta(r, baseline), r.accuracy_source,
                     _shown("size", r.size_bytes), _shown("size", r.file_gzip_bytes),
                     _latency(r, baseline), _shown("flops", r.flops), f"{r.sparsity:.0%}",
                     ", ".join(marks) or "—", why[r.recipe_hash].short if r.recipe_hash in why else "—",
                     r.created_at, r.recipe_hash])
        classes.append("frontier" if marks else "")
    header = ["recipe", "accuracy", "Δ vs baseline", "accuracy measured in", "size", "gzip", "latency p50", "FLOPs",
              "zeros", "on frontier of", "why not faster", "measured at", "hash"]
    return _table(header, rows, numeric={1, 2, 4, 5, 6, 7, 8}, row_classes=classes)


def _runtimes(results: Sequence[Result]) -> str:
    """The runtimes the results were measured in, e.g. 'onnxruntime' or 'openvino'."""
    return " / ".join(sorted({r.provenance.runtime.split()[0] for r in results if r.provenance})) or "onnxruntime"


def _provenance_html(results: Sequence[Result]) -> str:
    """Where and how the numbers were measured: each distinct setup, and how many figures are simulated."""
    setups = {repr(r.provenance): r.provenance for r in results if r.provenance}
    simulated = sum(not is_measured(r) for r in results)
    untimed = sum(not r.latency_measured for r in results)
    dates = sorted(r.created_at for r in results)
    runtime = _runtimes(results)
    parts = [f"<p>{len(results) - simulated} of {len(results)} accuracies measured by running the ONNX file in "
             f"{runtime} on the test split, {simulated} simulated in torch (formats no CPU runtime executes); "
             f"{len(results) - untimed} latencies timed in {runtime}, {untimed} not timed. Measured between "
             f"{dates[0]} and {dates[-1]} (UTC). Latency is the baseline's p50 divided by each result's speed-up, "
             "timed interleaved with the baseline in one process.</p>"]
    for _, p in sorted(setups.items()):
        parts.append(_table(["measurement setup", ""], _setup_rows(p)))
    return "".join(parts)


def _setup_rows(p: Provenance) -> list[list[str]]:
    flags = "none of avx2 / avx512 / vnni" if p.flags_on == "none" else p.flags_on
    return [["runtime", p.runtime], ["threads / batch", f"{p.threads} / {p.batch}"],
            ["CPU", f"{p.cpu}, {p.cpu_count or '—'} cores, flags: {flags}"], ["python", p.python],
            *[[name, version] for name, version in p.versions.items()]]


def _profile_html(result: Result, report: dict) -> str:
    """A profiled result: its compute layers beside the baseline's, and the causes that apply."""
    rows = [[layer["label"], f"{layer['op']} ({layer['kernel']})", f"{layer['us']:.1f}",
             f"{layer['baseline_op']} ({layer['baseline_kernel']})" if layer["baseline_op"] else "—",
             f"{layer['baseline_us']:.1f}" if layer["baseline_us"] else "—",
             f"{layer['ratio']:.2f}" if layer["ratio"] else "—", "slower" if layer["slower"] else ""]
            for layer in report["layers"]]
    mine, base = report["result"], report["baseline"]
    findings = "".join(f"<li>{html.escape(f['text'])}</li>" for f in report["findings"])
    return (f"<h4>{html.escape(describe.recipe(result.recipe))} ({result.recipe_hash})</h4>"
            f"<p class=muted>{mine['run_us']:.0f} µs a run against the baseline's {base['run_us']:.0f} µs; median of "
            f"{mine['runs']} profiled runs, batch {mine['batch']}, {mine['threads']} thread(s), on "
            f"{html.escape(report['measured_on'])}.</p>"
            + _table(["layer", "op (kernel)", "µs", "baseline op (kernel)", "baseline µs", "×", ""], rows,
                     numeric={2, 4, 5})
            + (f"<ul>{findings}</ul>" if findings else ""))


def _group_html(results: Sequence[Result], budgets: Sequence[Budget] | None, charts: _Charts,
                profiles: Mapping[str, dict]) -> str:
    """One workspace's section: baseline, charts, budget answers, results, profiles, provenance."""
    baseline = pareto.baseline_of(results)
    first = Recipe.from_dict(results[0].recipe)
    parts = [f"<h2>{html.escape(first.dataset)} / {html.escape(first.model)}</h2>"]
    answers: list[tuple[Budget, Result | None]] = []
    if baseline is not None:
        parts.append(_baseline_html(baseline))
        asked = budgets if budgets is not None else pareto.default_budgets(baseline)
        answers = [(b, b.answer(results, baseline)) for b in asked]
    else:
        parts.append("<p class=muted>The baseline of these results is not among them: no budget answers.</p>")
    why = profile.explain_all(results, profiles)
    figures = [pareto_figure(results, m, baseline, answers, why) for m in METRICS]
    parts.append(f"<h3>Pareto frontiers</h3><p class=muted>● accuracy measured in {_runtimes(results)}, ◇ simulated "
                 "in torch; the dashed staircase joins the deployable results (measured in a runtime) no other beats "
                 "on both accuracy and cost; a red ring answers the budget question of its number (table below), "
                 "among deployable results only.</p>")
    parts.append("".join(charts.html(f) for f in figures))
    if answers:
        parts.append("<h3>Budget answers</h3>" + _answers_html(answers, baseline))
    parts.append(f"<h3>Results ({len(results)})</h3><p class=muted>{NOISE_RULE}</p>"
                 + _results_html(results, baseline, why))
    profiled = [r for r in results if r.recipe_hash in profiles]
    if profiled:
        parts.append("<h3>Where the time goes</h3><p class=muted>onnxruntime's per-node profile of each profiled "
                     "result beside its baseline's, run interleaved; the compute layers compared in order.</p>"
                     + "".join(_profile_html(r, profiles[r.recipe_hash]) for r in profiled))
    parts.append("<h3>Provenance</h3>" + _provenance_html(results))
    return "<section>" + "".join(parts) + "</section>"


def build_html(results: Sequence[Result], budgets: Sequence[Budget] | None = None,
               title: str = "Compression report", generated: datetime | None = None,
               profiles: Mapping[str, dict] | None = None) -> str:
    """The report of `results` (any mix of workspaces: one section each, by baseline recipe) as one
    self-contained HTML document. `budgets` are asked of every workspace (their values in the metric's own
    unit); None asks pareto.default_budgets of each baseline. `profiles`: stored profiles by recipe hash
    (compression/profile.py)."""
    generated = generated or datetime.now(timezone.utc)
    grouped = pareto.groups(results)
    charts = _Charts()
    sections = "".join(_group_html(group, budgets, charts, profiles or {}) for group in grouped.values())
    intro = (f"<p class=muted>Generated {generated.isoformat(timespec='seconds')} · {len(results)} result(s) in "
             f"{len(grouped)} workspace(s) · Compression Explorer, plotly {metadata.version('plotly')}</p>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{intro}"
            f"{sections or '<p>No results.</p>'}</body></html>")


def write(path: Path, results: Sequence[Result], budgets: Sequence[Budget] | None = None,
          title: str = "Compression report", profiles: Mapping[str, dict] | None = None) -> Path:
    """Write the report of `results` to `path` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(build_html(results, budgets, title, profiles=profiles), encoding="utf-8")
    return path
