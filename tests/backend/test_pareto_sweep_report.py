"""Pareto selection and budget questions on hand-built results; grids and their one-line errors; a real sweep
on digits (its recipes jobs of the store's queue) one of whose jobs' processes is killed twice, then resumed;
the report and the pareto CLI over what it stored."""

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import pytest

from compression import charts, describe, pareto, report
from compression.errors import CompressionError
from compression.pareto import Budget
from compression.recipe import PruneSpec, QuantSpec, Recipe
from compression.result import Latency, Result
from compression.stats import Interval
from compression.store import Store
from compression.sweep import Grid, SweepProgress
from tests.backend.running_jobs import kill_a_job

ROOT = Path(__file__).resolve().parents[2]
BASE = Recipe(epochs=3)


def latency(p50: float) -> Latency:
    return Latency(p50=p50, p90=p50, batch=32, threads=1, runs=100)


def point(accuracy: float, size: int, flops: int = 1000, speedup: float | None = 1.0, ratio: float | None = 0.5,
          quant: str | None = None, timed_baseline: float = 2.0) -> Result:
    """A hand-built result of BASE pruned at `ratio` (None: the baseline itself); speedup None: not timed."""
    recipe = Recipe(epochs=BASE.epochs, prune=PruneSpec("l1-unstructured", ratio) if ratio is not None else None,
                    quant=QuantSpec(quant) if quant else None)
    timed = speedup is not None
    return Result(
        recipe=recipe.to_dict(), recipe_hash=recipe.hash, dataset="digits", model="cnn", accuracy=accuracy,
        accuracy_source="onnxruntime" if timed else "torch-simulated", baseline_accuracy=0.95, params_total=100,
        params_nonzero=50, sparsity=0.5, size_bytes=size, size_gzip_bytes=size // 2, flops=flops,
        latency_ms=latency(timed_baseline / speedup) if timed else None, latency_ms_single=None,
        latency_measured=timed, speedup_vs_baseline=speedup, size_ratio_vs_baseline=1.0, stage_seconds={},
        created_at="2025-01-01T00:00:00+00:00", baseline_latency_ms=latency(timed_baseline) if timed else None,
        technique=recipe.technique)


BASELINE = point(0.95, 10_000, flops=8000, ratio=None)


def hashes(results) -> list[str]:
    return [r.recipe_hash for r in results]


# ------------------------------------------------------------------------------------------------ pareto

def test_single_point_is_its_own_frontier():
    only = point(0.9, 5000)
    assert pareto.frontier([only], "size") == [only]
    assert pareto.frontier([], "size") == []


def test_frontier_drops_dominated_points_and_sorts_by_cost():
    a, b, c = point(0.80, 1000, ratio=0.9), point(0.90, 3000, ratio=0.7), point(0.85, 4000, ratio=0.6)
    d = point(0.93, 6000, ratio=0.3)
    assert hashes(pareto.frontier([d, c, b, a], "size")) == hashes([a, b, d])
    assert hashes(pareto.frontier([d, c, b, a], "size", BASELINE)) == hashes([a, b, d, BASELINE])


def test_ties_keep_one_point_deterministically():
    cheaper_same_accuracy = point(0.9, 1000, ratio=0.8)
    costlier_same_accuracy = point(0.9, 2000, ratio=0.7)
    same_cost_less_accurate = point(0.85, 1000, ratio=0.6)
    assert hashes(pareto.frontier([costlier_same_accuracy, same_cost_less_accurate, cheaper_same_accuracy],
                                  "size")) == [cheaper_same_accuracy.recipe_hash]
    twin_a, twin_b = point(0.9, 1000, ratio=0.4), point(0.9, 1000, ratio=0.2)
    expected = min(twin_a.recipe_hash, twin_b.recipe_hash)
    assert hashes(pareto.frontier([twin_a, twin_b], "size")) == [expected]
    assert hashes(pareto.frontier([twin_b, twin_a, twin_b], "size")) == [expected]  # order and repeats don't matter
    fewer_stages, more_stages = point(0.9, 1000, ratio=0.4), point(0.9, 1000, ratio=0.4, quant="fp16")
    assert pareto.frontier([more_stages, fewer_stages], "size") == [fewer_stages]


def test_latency_is_normalised_to_the_stored_baseline_and_simulated_results_have_none():
    fast = point(0.9, 1000, speedup=2.0, timed_baseline=3.0)  # its own process timed the baseline at 3 ms
    simulated = point(0.94, 500, speedup=None, ratio=0.1, quant="fake")
    assert pareto.metric_value(fast, "latency", BASELINE) == pytest.approx(1.0)
    assert pareto.metric_value(fast, "latency") == pytest.approx(1.5)
    assert pareto.metric_value(simulated, "latency", BASELINE) is None
    assert pareto.metric_value(simulated, "size") == 500 and pareto.metric_value(simulated, "flops") == 1000
    assert pareto.frontier([fast, simulated], "latency", BASELINE) == [fast, BASELINE]
    with pytest.raises(CompressionError, match="unknown metric 'energy'"):
        pareto.metric_value(fast, "energy")


def test_budget_questions():
    small, medium = point(0.80, 1000, 500, speedup=4.0, ratio=0.9), point(0.94, 4000, 2000, speedup=1.5, ratio=0.5)
    results = [small, medium]
    assert pareto.most_accurate_under(results, "size", 4000, BASELINE) is medium  # the limit is inclusive
    assert pareto.most_accurate_under(results, "size", 3999, BASELINE) is small
    assert pareto.most_accurate_under(results, "size", 999, BASELINE) is None
    assert pareto.most_accurate_under(results, "latency", 1.0, BASELINE) is small
    assert pareto.smallest_within(results, BASELINE, 1.0) is medium  # 0.94 is exactly 1 point below
    assert pareto.smallest_within(results, BASELINE, 0.5) is BASELINE
    assert pareto.smallest_within(results, BASELINE, 20.0, "flops") is small
    assert Budget("under", "size", 2048).question == "most accurate under 2 KB"
    assert Budget("within", "latency", 1).question == "fastest within 1 point of the baseline"
    assert Budget("within", "size", 0.5).answer(results, BASELINE) is BASELINE
    with pytest.raises(CompressionError, match="must not be negative"):
        Budget("under", "size", -1)


def test_simulated_results_answer_and_join_the_frontier_only_when_asked():
    shipped = point(0.90, 3000, ratio=0.7)
    simulated = point(0.96, 500, speedup=None, ratio=0.1, quant="fake")  # more accurate and smaller: but torch only
    results = [shipped, simulated]
    assert pareto.deployable(results) == [shipped]
    assert simulated not in pareto.frontier(results, "size", BASELINE)
    assert pareto.frontier(results, "size", BASELINE, simulated=True) == [simulated]
    assert Budget("under", "size", 5000).answer(results, BASELINE) is shipped
    assert Budget("under", "size", 5000).answer(results, BASELINE, simulated=True) is simulated
    assert Budget("within", "size", 1.0).answer(results, BASELINE) is BASELINE


def test_the_trade_off_chart_draws_each_result_once_the_frontier_the_baseline_and_the_rings():
    a, b, c = point(0.80, 1000, ratio=0.9), point(0.90, 3000, ratio=0.7), point(0.85, 4000, ratio=0.6)
    simulated = point(0.94, 500, speedup=None, ratio=0.1, quant="fake")
    results = [BASELINE, a, b, c, simulated]
    ring = [charts.Highlight(b, "1"), charts.Highlight(b, "3")]  # questions 1 and 3 answered by one result
    fig = charts.pareto_figure(results, "size", BASELINE, hover=lambda r: f"hover {r.recipe_hash}", highlights=ring)
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"prune", "prune+quant", "Pareto frontier", "baseline", "answer"}
    assert list(traces["prune"].y) == [0.80, 0.90, 0.85]  # the baseline is drawn once, as the star
    assert list(traces["prune"].x) == [1000 / 1024, 3000 / 1024, 4000 / 1024]  # KB on the axis
    assert traces["prune"].marker.symbol == ("circle",) * 3
    assert traces["prune+quant"].marker.symbol == (charts.SIMULATED_SYMBOL,)
    assert list(traces["Pareto frontier"].y) == [r.accuracy for r in pareto.frontier(results, "size", BASELINE)]
    assert traces["Pareto frontier"].line.shape == "hv"
    assert traces["answer"].text == ("1, 3",)  # one ring, both numbers
    assert traces["prune"].customdata[1][0] == b.recipe_hash and traces["prune"].customdata[1][1] == (
        f"hover {b.recipe_hash}")
    assert fig.layout.xaxis.type == "log"
    latency = charts.pareto_figure(results, "latency", BASELINE, hover=str, frontier=False)
    assert {t.name for t in latency.data} == {"prune", "baseline"}  # the simulated result has no latency


def test_chart_axes_stay_readable_for_a_narrow_latency_span_and_a_lone_accuracy():
    assert charts.log_ticks([1000, 200_000]) == [1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000]
    narrow = charts.log_ticks([0.15, 0.31])  # ms: under a decade, where 1-2-5 leaves one tick inside
    assert sum(0.15 <= t <= 0.31 for t in narrow) >= 3 and narrow == sorted(narrow)
    lone = charts.pareto_figure([BASELINE], "size", BASELINE, hover=str)
    low, high = lone.layout.yaxis.range  # plotly would stretch a lone value over 0-150 %
    assert low == pytest.approx(BASELINE.accuracy - 0.005) and high == pytest.approx(BASELINE.accuracy + 0.005)
    assert lone.layout.yaxis.ticktext == ("94.6%", "94.8%", "95.0%", "95.2%", "95.4%")  # 0.2 points apart
    spread = charts.pareto_figure([BASELINE, point(0.5, 1000)], "size", BASELINE, hover=str)
    assert spread.layout.yaxis.range[0] < 0.5 and "below the axis" not in {t.name for t in spread.data}


def test_accuracy_axes_zoom_to_the_data_with_unique_ticks_and_the_legend_below_the_plot():
    close = [point(a, 1000 + i) for i, a in enumerate((0.9801, 0.9803, 0.9806, 0.9811))]  # 98.0 % four times
    collapsed = point(0.2, 500)  # one model that collapsed
    fig = charts.pareto_figure([BASELINE, *close, collapsed], "size", BASELINE, hover=str)
    fig.update_layout(template=charts.register_template())
    low, high = fig.layout.yaxis.range
    assert 0.93 < low < BASELINE.accuracy and 0.9811 < high < 0.99  # zoomed to the cluster, not 20-100 %
    labels = fig.layout.yaxis.ticktext
    assert len(labels) >= 3 and len(set(labels)) == len(labels)  # never '98.0%, 98.0%, 98.0%'
    assert all(low <= t <= high for t in fig.layout.yaxis.tickvals)
    [below] = [t for t in fig.data if t.name == "below the axis"]  # the outlier marked on the axis' edge
    assert below.x == (500 / 1024,) and below.y == (low,) and below.customdata[0][1] == 0.2
    legend = fig.layout.template.layout.legend  # every chart's: a row under the axis titles
    assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom")
    for span in ((0.5, 1.0), (0.97, 0.9712), (0.0, 1.0)):
        axis = go.Figure()
        charts.percent_axis(axis, *span)
        ticks = axis.layout.yaxis.ticktext
        assert len(set(ticks)) == len(ticks) >= 2 and all(t <= 1 for t in axis.layout.yaxis.tickvals)


def test_report_numbers_each_ring_as_its_row_in_the_answers_table():
    a, b = point(0.90, 3000, ratio=0.7), point(0.80, 1000, ratio=0.9)
    budgets = [Budget("under", "size", 2048), Budget("under", "size", 500), Budget("within", "size", 6)]
    results = [BASELINE, a, b]
    page = report.build_html(results, budgets)
    assert "<th>ring</th><th>question</th>" in page
    assert "<td>1</td><td>most accurate under 2 KB</td>" in page and "<td>2</td><td>most accurate under 0.48" in page
    chart = report.pareto_figure(results, "size", BASELINE, [(q, q.answer(results, BASELINE)) for q in budgets])
    [answer] = [t for t in chart.data if t.name == "answer"]
    assert sorted(answer.text) == ["1", "3"]  # question 2 has no answer: no ring, and no renumbering


def test_groups_by_baseline_recipe():
    other_seed = Recipe(epochs=BASE.epochs, seed=1, prune=PruneSpec("l1-unstructured", 0.5))
    stranger = point(0.9, 1000)
    stranger.recipe, stranger.recipe_hash = other_seed.to_dict(), other_seed.hash
    mine = point(0.9, 1000)
    grouped = pareto.groups([BASELINE, stranger, mine])
    assert grouped == {BASE.hash: [BASELINE, mine], other_seed.baseline().hash: [stranger]}
    assert pareto.baseline_of(grouped[BASE.hash]) is BASELINE and pareto.baseline_of([mine]) is None


# ------------------------------------------------------------------------------------------------- grids

GRID_24 = {"base": {"dataset": "digits", "model": "cnn", "epochs": 3, "prune": {"finetune_epochs": 1}},
           "grid": {"prune.method": ["channel-l2", "l1-unstructured"], "prune.ratio": [0.3, 0.5, 0.7, 0.9],
                    "quant.mode": [None, "int8-static", "fp16"]}}


def test_grid_crosses_its_axes_into_valid_unique_recipes():
    recipes = Grid.from_dict(GRID_24).recipes()
    assert len(recipes) == 24 == len({r.hash for r in recipes})
    assert {r.technique for r in recipes} == {"prune", "prune+quant"}
    assert all(r.prune.finetune_epochs == 1 and r.epochs == 3 for r in recipes)
    # null removes a stage; equal points collapse; whole stage objects; command-line base over the document's
    grid = {"base": {"epochs": 5}, "grid": {"prune.method": [None, "channel-l2"], "prune.ratio": [0.3, 0.5],
                                            "quant": [None, {"mode": "fake", "bits": 4}]}}
    recipes = Grid.from_dict(grid, base={"epochs": 3}).recipes()
    assert [r.technique for r in recipes] == ["baseline", "quant", "prune", "prune+quant", "prune", "prune+quant"]
    assert recipes[0] == BASE and recipes[1].quant == QuantSpec("fake", bits=4)


@pytest.mark.parametrize("grid, message", [
    ({"grid": {"prune.rato": [0.5]}}, "unknown grid field 'prune.rato'"),
    ({"grid": {"colour": [1]}}, "unknown grid field 'colour'"),
    ({"grid": {"prune.ratio": 0.5}}, "grid field 'prune.ratio' needs a non-empty list"),
    ({"grid": {"prune.method": ["channel-l2"], "prune.ratio": ["half"]}}, "grid field 'prune.ratio' must be a number"),
    ({"grid": {"prune.method": ["channel-l2"], "prune.ratio": [0.99]}}, "prune ratio must be within 0 … 0.95"),
    ({"grid": {"prune.ratio": [0.5]}}, "the prune stage needs 'prune.method'"),
    ({"grid": {"distill.temperature": [40]}}, "distill temperature must be within 1 … 20"),
    ({"grids": {}}, "a grid is an object"),
])
def test_bad_grids_are_one_line_errors_naming_the_field(grid, message):
    with pytest.raises(CompressionError, match=message):
        Grid.from_dict(grid).recipes()


def cli(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMPRESSION_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "compression", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_bad_grid_on_the_cli_exits_2_with_one_line_and_starts_nothing(home):
    done = cli("sweep", "--grid", json.dumps({"grid": {"quant.mode": ["int8-static"], "quant.bit": [4]}}), home=home)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: unknown grid field 'quant.bit': quant fields are mode, bits, scheme, granularity, " \
                          "calibration, calib_samples, qat_epochs, activations, layout, max_drop, qat_patience\n"
    assert Store(home).list("result") == [] and Store(home).list("checkpoint") == []


def test_progress_line():
    event = SweepProgress(done=7, total=24, from_store=1, seconds_left=52.4)
    assert event.line == "[sweep] 7/24 done, 1 from store, ~52 s left"


# ------------------------------------------------------------------------- a real sweep, killed and resumed

SMALL_GRID = {"base": {"epochs": 3, "prune": {"method": "channel-l2", "finetune_epochs": 1}},
              "grid": {"prune.ratio": [0.3, 0.5], "quant.mode": [None, "int8-dynamic"]}}


def sweep_killing_a_job_twice(home: Path) -> tuple[int, list[dict], str, str]:
    """Start the CLI sweep of SMALL_GRID, SIGKILL a running job's process once the first result lands, and
    again once it runs a second time; the exit code, the result lines printed, stderr and the key killed."""
    env = {**os.environ, "COMPRESSION_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "compression", "sweep", "--workers", "2",
                             "--grid", json.dumps(SMALL_GRID)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    key, pid = kill_a_job(home)
    kill_a_job(home, key, not_pid=pid)
    rest, errors = proc.communicate(timeout=600)
    return proc.returncode, [json.loads(line) for line in (first + rest).splitlines()], errors, key


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A sweep one of whose jobs' processes was killed twice, the same sweep again, and a third time (all
    stored)."""
    home = tmp_path_factory.mktemp("sweep-home")
    killed = sweep_killing_a_job_twice(home)
    stored_after_kill = {p["recipe_hash"] for p in Store(home).list("result")}
    again = cli("sweep", "--grid", json.dumps(SMALL_GRID), home=home)
    started = time.perf_counter()
    third = cli("sweep", "--grid", json.dumps(SMALL_GRID), home=home)
    return {"home": home, "killed": killed, "stored_after_kill": stored_after_kill, "again": again,
            "third": third, "third_seconds": time.perf_counter() - started}


def lines(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow
def test_a_recipe_whose_process_dies_twice_fails_alone_and_the_rerun_finishes_it(resumed):
    code, printed, errors, killed = resumed["killed"]
    assert code == 1 and "Traceback" not in errors
    assert errors.splitlines()[-1] == ("error: 1 recipe(s) failed, the others are stored; run the same sweep again "
                                       "to finish the rest; first: The job's process ended without a result twice "
                                       "(exit code -9, SIGKILL)")
    assert len(printed) == 3 and killed not in {p["recipe_hash"] for p in printed}  # the others finished
    kept = resumed["stored_after_kill"]
    assert {p["recipe_hash"] for p in printed} <= kept and killed not in kept  # every result printed was stored

    again = resumed["again"]
    assert again.returncode == 0, again.stderr
    results = lines(again)
    assert len(results) == 4 == len({r["recipe_hash"] for r in results})
    assert {r["recipe_hash"] for r in results if r["from_store"]} == kept - {BASE.hash}
    assert "[sweep] 4/4 done" in again.stderr
    stored = [p["recipe_hash"] for p in Store(resumed["home"]).list("result")]
    assert sorted(stored) == sorted({*stored}) and len(stored) == 5  # the 4 recipes and their baseline, once each
    assert all(r["accuracy_source"] == "onnxruntime" and r["latency_measured"] for r in results)


@pytest.mark.slow
def test_a_stored_sweep_is_served_at_once(resumed):
    third = resumed["third"]
    assert third.returncode == 0 and all(r["from_store"] for r in lines(third))
    assert "4/4 done, 4 from store" in third.stderr and "to compute" not in third.stderr
    assert resumed["third_seconds"] < 5


class _Page(HTMLParser):
    """Collects the text of table cells and the script tags of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.scripts: list[dict] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self._in_cell = tag == "td"
        if tag == "script":
            self.scripts.append(dict(attrs))

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


@pytest.mark.slow
def test_report_is_one_offline_file_with_every_result(resumed, tmp_path):
    out = tmp_path / "report.html"
    done = cli("report", "--out", str(out), "--max-kb", "100", home=resumed["home"])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["results"] == 5 and summary["workspaces"][0]["baseline"] == BASE.hash
    text = out.read_text()
    page = _Page()
    page.feed(text)
    results = Store(resumed["home"]).results()
    assert {r.recipe_hash for r in results} <= set(page.cells)
    assert all(describe.recipe(r.recipe) in page.cells for r in results)
    assert not [s for s in page.scripts if "src" in s]  # nothing fetched: plotly.js is inline
    assert text.count("Plotly.newPlot(") == 3  # size, latency and FLOPs
    assert text.count("window.PlotlyConfig") == 1  # plotly.js embedded once, not per chart
    assert "most accurate under 100 KB" in page.cells
    assert "avx512_vnni" in text or "avx2" in text or "none of avx2" in text  # CPU flags in the provenance


@pytest.mark.slow
def test_pareto_cli_answers_budgets_from_the_store(resumed):
    done = cli("pareto", "--epochs", "3", "--within-points", "2", "--max-ms", "1000", "--json", home=resumed["home"])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    results = Store(resumed["home"]).results()
    baseline = pareto.baseline_of(results)
    for metric in pareto.METRICS:
        assert [p["recipe_hash"] for p in answer["frontiers"][metric]] == \
            hashes(pareto.frontier(results, metric, baseline))
    most_accurate = max(results, key=lambda r: (r.accuracy, -pareto.metric_value(r, "latency", baseline)))
    assert answer["answers"][0]["question"] == "most accurate under 1000 ms"
    assert answer["answers"][0]["answer"]["recipe_hash"] == most_accurate.recipe_hash
    assert [a["question"] for a in answer["answers"][1:]] == [
        "smallest within 2 points of the baseline", "fastest within 2 points of the baseline",
        "fewest FLOPs within 2 points of the baseline"]


def test_report_says_within_noise_only_where_the_noise_rule_does():
    noise = replace(point(0.951, 3000, speedup=1.01), accuracy_p_value=0.6, speedup_interval=Interval(0.98, 1.04))
    clear = replace(point(0.80, 1000, speedup=2.0, ratio=0.9), accuracy_p_value=1e-6,
                    speedup_interval=Interval(1.8, 2.2))
    rows = {h: row for row in re.findall(r"<tr[^>]*>(.*?)</tr>", report._results_html([BASELINE, noise, clear],
                                                                                        BASELINE, {}))
            for h in (noise.recipe_hash, clear.recipe_hash, BASELINE.recipe_hash) if f">{h}<" in row}
    assert rows[noise.recipe_hash].count(", within noise") == 2  # +0.10 pts and its latency
    assert "+0.10 pts, within noise" in rows[noise.recipe_hash]
    assert "within noise" not in rows[clear.recipe_hash] and "-15.00 pts" in rows[clear.recipe_hash]
    assert "<td class=num>baseline</td>" in rows[BASELINE.recipe_hash]  # no delta of its own
    hover = report._hover(noise, BASELINE)
    assert "+0.10 pts, within noise" in hover and "ms, within noise" in hover
    assert "within noise" not in report._hover(clear, BASELINE)
    assert report.NOISE_RULE in report.build_html([BASELINE, noise, clear])
