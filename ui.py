"""Streamlit helpers shared by the pages: the Workspace sidebar (data set, model, seed, epochs and the
baseline's card), long work in background jobs with progress, number and recipe formatting, and the
trade-off chart. No computation here: everything measured comes from compression/.

Import-light on purpose (no torch): the sidebar and the store-only pages render without loading the
deep-learning stack; the work a job runs imports it in the job's thread.

Long work runs in a background thread (a job), never in the script thread itself: a rerun (a widget
changed, another page opened, the browser reloaded) interrupts the script, not the work, so the result
is still measured and stored. Jobs run one at a time per server process (torch's random generator is
process-wide: two trainings at once would not repeat), in the order they were asked for; a job for a
key that is already running is joined, not started twice."""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from compression import charts, pareto, settings
from compression.catalog import DATASETS, IMAGEFOLDER, MODELS
from compression.errors import CompressionError
from compression.recipe import PruneSpec, Recipe, Result, StageRecord
from compression.store import Store

PERSIST = {"persist_state": "session"}  # a page's settings survive a visit to another page
ProgressFn = Callable[[Any], None]  # compression.train's, without importing torch here
IMAGEFOLDER_CHOICE = "image folder…"
ROOT = Path(__file__).resolve().parent
log = logging.getLogger("compression.ui")


# ------------------------------------------------------------------------------------------ sidebar

def sidebar() -> None:
    """The Workspace every page reads: data set (or an image folder), model, seed, baseline epochs, and the
    baseline's card. A workspace whose baseline is not stored starts training it at once (in the background,
    with a progress bar on the card); a stored one shows instantly."""
    st.html(ROOT / "assets" / "style.css")
    with st.sidebar:
        st.header("Workspace")
        choice = st.selectbox("Data set", (*DATASETS, IMAGEFOLDER_CHOICE), key="dataset_choice",
                              help="digits ships with scikit-learn and works offline; the others download once.")
        if choice == IMAGEFOLDER_CHOICE:
            st.text_input("Folder of class sub-folders", key="imagefolder_path", placeholder="/data/my-images",
                          **PERSIST)
        st.selectbox("Model", MODELS, key="model", help="The base model every technique compresses.")
        left, right = st.columns(2)
        left.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="seed",
                          help="Fixes the data split, the initial weights and the training order.")
        right.number_input("Baseline epochs", min_value=1, max_value=200, value=Recipe.epochs, step=1, key="epochs")
        baseline_card()


def baseline_recipe() -> Recipe:
    """The baseline Recipe the sidebar describes."""
    choice = st.session_state.get("dataset_choice", DATASETS[0])
    dataset = IMAGEFOLDER + st.session_state.get("imagefolder_path", "") if choice == IMAGEFOLDER_CHOICE else choice
    return Recipe(dataset=dataset, model=st.session_state.get("model", MODELS[0]),
                  seed=int(st.session_state.get("seed", 0)), epochs=int(st.session_state.get("epochs", Recipe.epochs)))


def valid_recipe() -> Recipe:
    """The sidebar's baseline Recipe, or a one-line error and a stopped page if it cannot run (bad settings,
    or its baseline could not be trained: e.g. a data set that is not on disk and cannot download)."""
    recipe = baseline_recipe()
    try:
        recipe.validate()
    except CompressionError as exc:
        st.error(str(exc))
        st.stop()
    job = find_job(_baseline_key(recipe))
    if job is not None and job.error and not _store().get("result", recipe.hash):
        st.error(job.error)
        st.stop()
    return recipe


def workspace_label(recipe: Recipe | dict) -> str:
    """'digits / cnn · seed 0 · 20 epochs' (and the timing setup when it is not the default)."""
    r = Recipe.from_dict(recipe) if isinstance(recipe, dict) else recipe
    label = f"{r.dataset} / {r.model} · seed {r.seed} · {r.epochs} epochs"
    if (r.threads, r.batch) != (Recipe.threads, Recipe.batch):
        label += f" · {r.threads} thread(s), batch {r.batch}"
    return label


def _store() -> Store:
    return Store()


def _baseline_key(recipe: Recipe) -> str:
    return recipe.baseline().hash


def _train_baseline(recipe: Recipe) -> Job:
    store = _store()

    def work(progress: ProgressFn) -> Result:
        from compression import pipeline  # torch loads in the job's thread, not in the page's
        return pipeline.run(recipe, store, progress)
    return start_job(_baseline_key(recipe), f"Training the {workspace_label(recipe)} baseline", work)


def baseline_card() -> None:
    """The workspace baseline's card: its measured figures, its training progress, or why it cannot train."""
    recipe = baseline_recipe()
    try:
        recipe.validate()
    except CompressionError as exc:
        st.error(str(exc))
        return
    result = _store().get_result(recipe.hash)
    with st.container(border=True, key="baseline_card"):
        st.markdown("**Baseline**")
        if result is not None:
            _card_figures(result)
            return
        job = find_job(_baseline_key(recipe))
        if job is not None and job.error:
            st.error(job.error)
            if st.button("Try again", key="baseline_retry"):
                _train_baseline(recipe)
                st.rerun()
            return
        if job is None or job.done.is_set():
            job = _train_baseline(recipe)
        st.fragment(_training_progress, run_every=1.0)(job)


def _card_figures(result: Result) -> None:
    left, right = st.columns(2)
    left.metric("Accuracy", f"{result.accuracy:.2%}", help=f"test split, measured in {result.accuracy_source}")
    gzip = "no file to gzip" if result.file_gzip_bytes is None else f"gzip {fmt_bytes(result.file_gzip_bytes)}"
    right.metric("Size", fmt_bytes(result.size_bytes), help=f"{result.size_source}; {gzip}")
    left, right = st.columns(2)
    if result.latency_ms is not None:
        lat = result.latency_ms
        left.metric("Latency", f"{lat.p50:.3f} ms", help=f"onnxruntime p50 at batch {lat.batch}, {lat.threads} "
                    f"thread(s), {lat.runs} runs (p90 {lat.p90:.3f} ms)")
    right.metric("FLOPs", fmt_count(result.flops), help="per sample, counted on the exported model")
    timing = f" · p50 at batch {lat.batch}, {lat.threads} thread(s)" if (lat := result.latency_ms) else ""
    st.caption(f"Measured in {result.accuracy_source} on the test split{timing} · details on the Overview")


def _training_progress(job: Job) -> None:
    """Polled every second while the baseline trains; redraws the whole app once it is stored."""
    if job.done.is_set():
        st.rerun()
    st.progress(job.fraction, text=job.status_text())
    st.caption(f"Training and measuring once; stored for every later visit. {job.elapsed():.0f} s so far.")


# ------------------------------------------------------------------------------------- background jobs

@dataclass
class Job:
    """One piece of long work in a background thread, with what a page needs to show its progress."""

    key: str
    label: str
    work: Callable[[ProgressFn], Any] | None
    done: threading.Event = field(default_factory=threading.Event)
    messages: list[str] = field(default_factory=list)
    fraction: float = 0.0
    step: str = ""
    state: str = "queued"
    error: str | None = None           # a CompressionError's one-line message
    crash: BaseException | None = None  # anything else (a bug): re-raised in the page that follows the job
    created: float = field(default_factory=time.monotonic)

    def progress(self, event: Any) -> None:
        """The ProgressFn the work reports to (a compression.train.Progress event)."""
        if event.message:
            self.messages.append(f"**{event.stage}** — {event.message}")
            self.step = f"{event.stage}: {event.message}"
        else:
            self.fraction = min(max(event.fraction, 0.0), 1.0)
            loss = f" · loss {event.loss:.3f}" if event.loss is not None else ""
            accuracy = f" · train accuracy {event.accuracy:.1%}" if event.accuracy is not None else ""
            self.step = f"{event.stage}: epoch {event.epoch}/{event.epochs}{loss}{accuracy}"

    def status_text(self) -> str:
        if self.state == "queued":
            return "queued: waiting for another experiment on this server to finish"
        return self.step or "starting…"

    def elapsed(self) -> float:
        return time.monotonic() - self.created

    def run(self) -> None:
        try:
            with _COMPUTE:
                self.state = "running"
                from compression.train import use_free_cores  # torch: imported in the job's thread
                log.info("job %s: %d torch thread(s), one a free core", self.key, use_free_cores())
                self.work(self.progress)
            self.state = "done"
        except CompressionError as exc:
            self.error, self.state = str(exc), "failed"
        except BaseException as exc:  # noqa: BLE001 - shown by the page that follows the job
            self.crash, self.error, self.state = exc, f"{type(exc).__name__}: {exc}", "failed"
            log.error("job %s failed:\n%s", self.key, traceback.format_exc())
        finally:
            self.work = None
            self.done.set()


_JOBS: dict[str, Job] = {}
_JOBS_LOCK = threading.Lock()
_COMPUTE = threading.Lock()  # one experiment at a time in this server process
_KEEP_FINISHED = 200


def _scoped(key: str) -> str:
    """`key` within the store this process writes to now ($COMPRESSION_HOME): a recipe's job in one store is
    not another store's (one process serves one store, but a test run moves through several)."""
    return f"{settings.home()}|{key}"


def find_job(key: str) -> Job | None:
    """The latest job started under `key` for the current store in this server process (running or finished),
    if any."""
    with _JOBS_LOCK:
        return _JOBS.get(_scoped(key))


def start_job(key: str, label: str, work: Callable[[ProgressFn], Any]) -> Job:
    """Run `work(progress)` in a background thread under `key`; a job of that key still running is returned
    instead of starting a second one."""
    with _JOBS_LOCK:
        job = _JOBS.get(_scoped(key))
        if job is not None and not job.done.is_set():
            return job
        job = _JOBS[_scoped(key)] = Job(key, label, work)
        finished = [k for k, j in _JOBS.items() if j.done.is_set()]
        for old in finished[:max(0, len(finished) - _KEEP_FINISHED)]:
            del _JOBS[old]
    threading.Thread(target=job.run, name=f"job {key}", daemon=True).start()
    return job


def follow(job: Job, status) -> None:
    """Show `job`'s progress inside `status` until it finishes. Polls and redraws the bar a few times a second:
    each redraw is also where Streamlit stops this script if a rerun was asked for — the job goes on."""
    bar = st.progress(job.fraction, text=job.status_text())
    shown = 0
    while True:
        finished = job.done.wait(0.25)
        for message in job.messages[shown:]:
            status.write(message)
        shown = len(job.messages)
        bar.progress(job.fraction, text=job.status_text())
        if finished:
            return


@dataclass(frozen=True)
class PendingWork:
    """Work of this session that a rerun left running: its label, and the page that started it (and shows
    its result)."""

    label: str
    page: str


_SHOWN_PAGE = "_shown_page"  # session state: the url path of the page this session draws


def _pending() -> dict[str, PendingWork]:
    return st.session_state.setdefault("_pending_jobs", {})


def run_in_status(label: str, work: Callable[[ProgressFn], Any], key: str | None = None) -> None:
    """Run `work(progress)` as a background job and show its progress inside an st.status; on bad input show
    the one-line error and stop, on success rerun so the page redraws from the store.

    Give `key` = the recipe's hash: a recipe already in the store is then served at once (no job, no queue
    behind other sessions' work, no rerun: this returns and the page draws it from the store), and a second
    click, or a second session asking for the same recipe while it runs, joins the running job instead of
    computing it twice. If the page is left or rerun meanwhile, the job still finishes and stores its result;
    `pending_jobs()` shows it until then. The workspace's baseline, if it is still training, is waited for
    first (it is the first thing any work would need)."""
    if key is not None and _store().get_result(key) is not None:
        return  # stored: nothing to run; the page goes on and draws it from the store in this same run
    key = key or f"run:{uuid.uuid4().hex}"
    with st.status(label, expanded=True) as status:
        base = find_job(_baseline_key(baseline_recipe()))
        if base is not None and not base.done.is_set() and base.key != key:
            status.write("**baseline** — waiting for the workspace's baseline to finish training")
            follow(base, status)
        job = start_job(key, label, work)
        _pending()[key] = PendingWork(label, st.session_state.get(_SHOWN_PAGE, ""))
        follow(job, status)
        _pending().pop(key, None)
        if job.crash is not None:
            status.update(label="Failed", state="error", expanded=True)
            raise job.crash
        if job.error:
            status.update(label="Could not finish", state="error", expanded=True)
            st.error(job.error)
            st.stop()
        status.update(label="Measured and stored", state="complete", expanded=False)
    st.rerun()


def pending_jobs(page: str) -> None:
    """Work this session started that a rerun left running: its progress at the top of every page (polled),
    and its errors, shown once. `page` is the url path of the page this run draws."""
    st.session_state[_SHOWN_PAGE] = page
    jobs = [(key, find_job(key)) for key in list(_pending())]
    for key, job in jobs:
        if job is None or job.done.is_set():
            work = _pending().pop(key)
            if job is not None and job.error:
                st.error(f"{work.label}: {job.error}")
    if any(job is not None and not job.done.is_set() for _, job in jobs):
        st.fragment(_pending_progress, run_every=1.0)()


def _pending_progress() -> None:
    """Polled: a bar per running job. Once work of the page shown is done, the app redraws (its result
    appears); work of another page just leaves (its error, if any, shows here): a redraw of the whole app
    there would change nothing, and would race a sidebar link clicked at that moment."""
    jobs = [(work, job) for key, work in list(_pending().items()) if (job := find_job(key)) is not None]
    if any(job.done.is_set() and work.page == st.session_state.get(_SHOWN_PAGE) for work, job in jobs):
        st.rerun()
    for work, job in jobs:
        if not job.done.is_set():
            st.progress(job.fraction, text=f"Still running — {work.label}: {job.status_text()}")
        elif job.error:
            st.error(f"{work.label}: {job.error}")


# --------------------------------------------------------------------------------------- formatting

def fmt_bytes(n: float) -> str:
    """Bytes as B / KB / MB / GB (powers of 1024)."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def fmt_count(n: float) -> str:
    """A count with a k / M / G suffix."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f}"


def fmt_time(iso: str) -> str:
    """A stored result's UTC timestamp to the minute, '2026-11-22 20:20 UTC'. Never HH:MM:SS in markdown:
    Streamlit reads ':20:' as an emoji shortcode and loads its emoji table (259 KB of JavaScript) for the
    page."""
    return f"{iso[:10]} {iso[11:16]} UTC" if len(iso) >= 16 else iso


def screen_image(pixels):
    """An image of a data set, (channels, height, width) in 0 … 1, as the pages draw it: RGB uint8, channels last;
    a one-channel image (digits, MNIST, Fashion-MNIST: ink is 1) as dark ink on white."""
    import numpy as np

    pixels = np.clip(pixels, 0, 1)
    if pixels.shape[0] == 1:
        pixels = np.repeat(1 - pixels, 3, axis=0)
    return np.round(pixels.transpose(1, 2, 0) * 255).astype(np.uint8)


STAGE_NAMES = {"baseline": "baseline", "distill": "distil", "prune": "prune", "quant": "quantize"}


def prune_settings(p: PruneSpec) -> str:
    """A pruning's settings besides its method and ratio, e.g. '2 rounds, 10 ft epochs with KD'."""
    extra = [f"{p.steps} rounds"] if p.steps > 1 else []
    extra.append(f"{p.finetune_epochs} ft epochs" + (" with KD" if p.kd else ""))
    if p.method == "activation":
        extra.append(f"λ {p.lam:g}")
    if p.round_to > 1:
        extra.append(f"round to {p.round_to}")
    return ", ".join(extra)


def describe_stage(recipe: Recipe, stage: str) -> str:
    """One stage of a recipe in words, e.g. 'prune channel-l2 50% (10 ft epochs)'."""
    if stage == "distill":
        d = recipe.distill
        student = d.student or recipe.model
        width = f" ×{d.width:g}" if d.width != 1.0 else ""
        return f"distil into {student}{width} (T {d.temperature:g}, α {d.alpha:g}, {d.epochs} epochs)"
    if stage == "prune":
        p = recipe.prune
        return f"prune {p.method} {p.ratio:.0%} ({prune_settings(p)})"
    q = recipe.quant
    if q.mode == "fake":
        what = f"{q.bits}-bit simulated, {q.scheme}, {q.granularity}" + (", activations too" if q.activations else "")
    elif q.mode == "int8-static":
        what = f"int8 static, {q.granularity}, {q.calibration} on {q.calib_samples} images"
    else:
        what = q.mode
    qat = f", QAT {q.qat_epochs} epochs" if q.qat_epochs else ""
    return f"quantize {what}{qat}"


def describe(recipe: Recipe | dict) -> str:
    """A recipe's stages in words, in their order ('baseline' for none)."""
    r = Recipe.from_dict(recipe) if isinstance(recipe, dict) else recipe
    return " → ".join(describe_stage(r, s) for s in r.stages) or "baseline (uncompressed)"


def accuracy_mark(result: Result | StageRecord) -> str:
    """'measured (onnxruntime)' or 'simulated (…)' for a result or one stage of its path."""
    return "measured (onnxruntime)" if charts.is_measured(result) else f"simulated ({result.accuracy_source})"


# ---------------------------------------------------------------------------------------- trade-offs

def points(value: float) -> str:
    """An accuracy difference (a fraction) in signed percentage points, never '-0.00'."""
    return f"{round(100 * value, 2) or 0.0:+.2f} pts"


def latency_text(result: Result, baseline: Result | None) -> str:
    value = pareto.metric_value(result, "latency", baseline)
    if value is None:
        return "not timed (simulated format)"
    return f"{value:.3f} ms (×{1 / result.speedup_vs_baseline:.2f})"


def hover_lines(result: Result, baseline: Result | None) -> str:
    """Everything about a point, for its hover box (plotly's <br> line breaks)."""
    recipe = Recipe.from_dict(result.recipe)
    stages = "<br>".join(f"  {i}. {describe_stage(recipe, s)}" for i, s in enumerate(recipe.stages, 1)) or "  none"
    return (f"<b>{result.technique}</b> · {result.recipe_hash}<br>{workspace_label(recipe)}<br>stages:<br>{stages}"
            f"<br>accuracy {result.accuracy:.2%} — {accuracy_mark(result)}"
            f"<br>size {fmt_bytes(result.size_bytes)} — {result.size_source}"
            f"<br>latency {latency_text(result, baseline)}<br>FLOPs {fmt_count(result.flops)} per sample")


COLORWAY = ["#2563eb", "#0d9488", "#d97706", "#7c3aed", "#db2777", "#64748b", "#65a30d", "#0891b2"]


@functools.cache
def use_plotly_template() -> None:
    """Make the app's one plotly look (plotly_white, the calm colorway, legend above the plot, a quiet grid)
    plotly's default template, once per process. A template set on each figure instead costs 30-80 ms of
    validation per chart on every rerun; the default costs nothing."""
    import plotly.graph_objects as go
    import plotly.io as pio

    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.update(
        colorway=COLORWAY, font=dict(size=13), hoverlabel=dict(font_size=12, align="left"), bargap=0.15,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        xaxis=dict(showgrid=False, zeroline=False), yaxis=dict(gridcolor=charts.GRID_COLOR, zeroline=False))
    pio.templates["compression-explorer"] = template
    pio.templates.default = "compression-explorer"


def warm_plotly() -> None:
    """Pay plotly's once-per-process costs before a server listens (`serve.py`): the app's template (about
    0.2-0.5 s of validation), the lazily imported validators of each trace and shape the pages draw and the
    conversion of numpy data, which a new server process would otherwise charge to the first visit of each
    page."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    use_plotly_template()
    figure = make_subplots(rows=1, cols=2)
    zero = np.zeros(1)  # numpy data goes through narwhals, imported on its first use
    for trace in (go.Scatter(x=zero, y=zero), go.Bar(x=zero, y=zero), go.Image(z=[[[0, 0, 0]]])):
        figure.add_trace(trace, row=1, col=1)
    figure.add_vline(x=0)
    figure.add_hline(y=0)
    figure.to_json()


def tradeoff_figure(results: Sequence[Result], metric: str, baseline: Result | None = None, **options):
    """compression.charts.pareto_figure in the app's look, each point's hover box listing its whole recipe
    (`options`: highlights, frontier, dim, height)."""
    use_plotly_template()
    return charts.pareto_figure(results, metric, baseline, hover=lambda r: hover_lines(r, baseline), **options)


def unplotted_note(results: Sequence[Result], metric: str, baseline: Result | None = None) -> str | None:
    """A caption naming results a metric's chart leaves out (latency of simulated formats), or None."""
    missing = [r for r in results if pareto.metric_value(r, metric, baseline) is None]
    if not missing:
        return None
    return (f"{len(missing)} result(s) in a simulated format have no measured latency (no runtime executes "
            "them) and are not drawn on the latency chart; switch to size or FLOPs to see them.")


CHART_NOTE = ("Every point is one stored result. ● accuracy measured by running the ONNX file in onnxruntime on "
              "the test split; ◇ accuracy simulated in torch (a format no CPU runtime executes). The dashed line "
              "is the Pareto frontier: no other result is both more accurate and cheaper. Latency is the "
              "baseline's p50 divided by the speed-up timed interleaved with it in one process.")


def results_table(results: Sequence[Result], baseline: Result | None):
    """One row a result with every figure and its provenance (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for r in results:
        latency = pareto.metric_value(r, "latency", baseline)
        rows.append({
            "technique": r.technique, "recipe": describe(r.recipe), "test accuracy": r.accuracy,
            "vs baseline (pts)": (round(100 * (r.accuracy - baseline.accuracy), 4) or 0.0) if baseline else None,
            "accuracy": accuracy_mark(r), "size (KB)": r.size_bytes / 1024,
            "size ×": r.size_bytes / baseline.size_bytes if baseline else r.size_ratio_vs_baseline,
            "size source": r.size_source, "gzip (KB)": None if r.file_gzip_bytes is None else r.file_gzip_bytes / 1024,
            "latency (ms)": latency, "speed-up ×": r.speedup_vs_baseline if r.latency_measured else None,
            "MFLOPs": r.flops / 1e6, "FLOPs ×": r.flops / baseline.flops if baseline else r.flops_ratio_vs_baseline,
            "zero weights": r.sparsity, "workspace": workspace_label(r.recipe), "stored": r.created_at,
            "hash": r.recipe_hash,
        })
    return pd.DataFrame(rows)


def percent_column(decimals: int = 2) -> st.column_config.NumberColumn:
    """A table column of fractions shown as percentages with exactly `decimals` decimals ('97.50%'); Streamlit's
    bare "percent" format drops trailing zeros (97.5% next to 97.78%) and takes the decimals from `step`."""
    return st.column_config.NumberColumn(format="percent", step=10.0 ** -(decimals + 2))


def show_table(table, columns: dict) -> None:
    """`table` (a pandas DataFrame) full width, without its index, its columns shown as `columns` (column_config)
    say. Percent columns are rounded to their step first: Streamlit cuts the digits beyond it (0.980556 would read
    98.05%, where the rest of the app says 98.06%)."""
    steps = {name: config["type_config"]["step"] for name, config in columns.items()
             if config["type_config"].get("format") == "percent" and name in table}
    shown = table.round({name: round(-math.log10(step)) for name, step in steps.items()})
    st.dataframe(shown, hide_index=True, width="stretch", column_config=columns)


ACCURACY_COLUMN = percent_column()
RATIO_COLUMN = st.column_config.NumberColumn(format="%.3f")
COUNT_COLUMN = st.column_config.NumberColumn(format="localized")  # 53,002
RESULT_COLUMNS = {  # how the pages show results_table's numbers
    "test accuracy": ACCURACY_COLUMN,
    "vs baseline (pts)": st.column_config.NumberColumn(format="%+.2f"),
    "size (KB)": st.column_config.NumberColumn(format="%.1f"),
    "gzip (KB)": st.column_config.NumberColumn(format="%.1f", help="empty: a simulated format has no file"),
    "size ×": RATIO_COLUMN, "FLOPs ×": RATIO_COLUMN,
    "latency (ms)": st.column_config.NumberColumn(format="%.4f", help="baseline p50 / speed-up; empty: not timed"),
    "speed-up ×": st.column_config.NumberColumn(format="%.2f"), "MFLOPs": st.column_config.NumberColumn(format="%.3f"),
    "zero weights": percent_column(0),
}
METRIC_NAMES = {"size": "size", "latency": "latency", "flops": "FLOPs"}  # a cost axis's name on the pages


def stored_results(store: Store | None = None) -> list[Result]:
    """Every stored result whose artifacts are present, oldest first."""
    store = store or _store()
    results = [Result.from_dict(p) for p in store.list("result")]
    return [r for r in results if all((store.root / rel).exists() for rel in r.artifacts.values())]


def workspace_results(recipe: Recipe, store: Store | None = None) -> tuple[Result | None, list[Result]]:
    """The stored baseline of `recipe` and every stored result compressed from it (baseline excluded)."""
    store = store or _store()
    base = recipe.baseline()
    group = pareto.groups([Result.from_dict(p) for p in store.list("result", base.dataset, base.model)])
    results = [r for r in group.get(base.hash, []) if r.recipe_hash != base.hash]
    return store.get_result(base.hash), results


def compare_rows(a: Result, b: Result, baseline: Result | None):
    """Two results' figures side by side, with B relative to A (a pandas DataFrame)."""
    import pandas as pd

    def ratio(x: float | None, y: float | None) -> str:
        return f"{y / x:.2f}×" if x and y is not None else "—"

    no_file = "no file (simulated)"

    lat_a, lat_b = (pareto.metric_value(r, "latency", baseline) for r in (a, b))
    rows = [
        ("technique", a.technique, b.technique, ""),
        ("test accuracy", f"{a.accuracy:.2%}", f"{b.accuracy:.2%}", points(b.accuracy - a.accuracy)),
        ("accuracy is", accuracy_mark(a), accuracy_mark(b), ""),
        ("size", fmt_bytes(a.size_bytes), fmt_bytes(b.size_bytes), ratio(a.size_bytes, b.size_bytes)),
        ("size is", a.size_source, b.size_source, ""),
        ("gzip size", *(no_file if (g := r.file_gzip_bytes) is None else fmt_bytes(g) for r in (a, b)),
         ratio(a.file_gzip_bytes, b.file_gzip_bytes)),
        ("latency p50 (normalised)", "not timed" if lat_a is None else f"{lat_a:.4f} ms",
         "not timed" if lat_b is None else f"{lat_b:.4f} ms", ratio(lat_a, lat_b)),
        ("FLOPs / sample", fmt_count(a.flops), fmt_count(b.flops), ratio(a.flops, b.flops)),
        ("non-zero parameters", f"{a.params_nonzero:,}", f"{b.params_nonzero:,}",
         ratio(a.params_nonzero, b.params_nonzero)),
        ("stages", describe(a.recipe), describe(b.recipe), ""),
        ("stored", a.created_at, b.created_at, ""),
    ]
    return pd.DataFrame(rows, columns=["", "A", "B", "B vs A"])


def html_report(report_module, results: Sequence[Result], budgets: Sequence[Any] = ()) -> Callable[[], str]:
    """The self-contained HTML report of `results` asking `budgets` (compression/report.py), built only when the
    download button is clicked (it embeds plotly.js: megabytes)."""
    frozen = list(results), list(budgets) or None
    return lambda: report_module.build_html(frozen[0], frozen[1], title="Compression Explorer — trade-offs")


def add_path(fig, stages: Sequence[StageRecord], metric: str) -> None:
    """Draw a recipe's path (its StageRecords: the baseline, then each stage) on a trade-off figure: a thick line
    with an arrowhead at each stage, labelled by stage; simulated accuracies as open diamonds."""
    import plotly.graph_objects as go

    scale, title = charts.axis_scale(metric)
    xs = [(s.size_bytes if metric == "size" else s.flops) / scale for s in stages]
    symbols = ["star" if i == 0 else ("arrow" if charts.is_measured(s) else charts.SIMULATED_SYMBOL)
               for i, s in enumerate(stages)]
    hover = [f"<b>{STAGE_NAMES.get(s.stage, s.stage)}</b><br>accuracy {s.accuracy:.2%} — {accuracy_mark(s)}"
             f"<br>size {fmt_bytes(s.size_bytes)} — {s.size_source}<br>FLOPs {fmt_count(s.flops)}"
             f"<br>non-zero parameters {s.params_nonzero:,}" for s in stages]
    fig.add_trace(go.Scatter(
        x=xs, y=[s.accuracy for s in stages], mode="lines+markers+text", name="this pipeline",
        text=[STAGE_NAMES.get(s.stage, s.stage) for s in stages], textposition="top center",
        line=dict(color="#dc2626", width=3),
        marker=dict(symbol=symbols, size=[18] + [16] * (len(stages) - 1), angleref="previous", color="#dc2626",
                    line=dict(width=2, color="#dc2626")),
        customdata=hover, hovertemplate="%{customdata}<extra></extra>"))
    charts.style_axes(fig, title)


def stages_table(stages: Sequence[StageRecord]):
    """A recipe's StageRecords as a table (a pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame([{
        "stage": STAGE_NAMES.get(s.stage, s.stage), "test accuracy": s.accuracy,
        "accuracy": accuracy_mark(s),
        "size (KB)": s.size_bytes / 1024, "size is": s.size_source, "non-zero parameters": s.params_nonzero,
        "MFLOPs": s.flops / 1e6, "seconds": s.seconds,
    } for s in stages])
