"""Sweep page: build a grid over the sidebar's baseline (prune methods × ratios × quantization × KD
temperatures), see how many recipes it makes and how many are stored, run the rest on local worker processes
(compression/sweep.py) with done / total and time left, the chart filling in as results land, and the table.

The sweep runs as a background job: a rerun or another page does not stop it, and every result is stored as it
finishes, so nothing finished is lost and a second Run computes only what is missing."""

import hashlib
import json
import os

import streamlit as st

import ui
from compression import pareto, sweep
from compression.catalog import MAX_PRUNE_RATIO, PRUNE_METHODS, QUANT_MODES
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, Recipe, Result
from compression.store import Store
from compression.train import Progress, ProgressFn

RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, MAX_PRUNE_RATIO)
NO_QUANT = "none"
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
CPUS = os.cpu_count() or 1


def grid_document(recipe: Recipe) -> dict:
    """The grid the widgets describe, over the sidebar's baseline, in the CLI's JSON format."""
    methods, ratios = st.session_state.sweep_methods, st.session_state.sweep_ratios
    quant = [None if m == NO_QUANT else {"mode": m} for m in st.session_state.sweep_quant if m != "fake"]
    if "fake" in st.session_state.sweep_quant:
        quant += [{"mode": "fake", "bits": b} for b in st.session_state.sweep_bits]
    axes = {"prune.method": [*methods, *([None] if st.session_state.sweep_unpruned or not methods else [])],
            "quant": quant or [None], "distill.temperature": st.session_state.sweep_temperatures or [None]}
    if methods:
        axes["prune.ratio"] = ratios
    base = {"dataset": recipe.dataset, "model": recipe.model, "seed": recipe.seed, "epochs": recipe.epochs,
            "prune.finetune_epochs": st.session_state.sweep_finetune,
            "distill.epochs": st.session_state.sweep_kd_epochs}
    return {"base": base, "grid": axes}


def widgets() -> None:
    """The grid's widgets (their values live in session_state under sweep_* keys)."""
    prune, quant, distill = st.columns(3)
    with prune:
        st.markdown("**Pruning**")
        st.multiselect("Methods", PRUNE_METHODS, default=["channel-l2"], key="sweep_methods", **ui.PERSIST)
        st.multiselect("Fractions removed", RATIOS, default=[0.3, 0.5, 0.7], key="sweep_ratios", **ui.PERSIST)
        st.number_input("Fine-tune epochs", 0, 50, PruneSpec.finetune_epochs, key="sweep_finetune", **ui.PERSIST)
        st.checkbox("Also without pruning", value=True, key="sweep_unpruned", **ui.PERSIST)
    with quant:
        st.markdown("**Quantization**")
        formats = st.multiselect("Formats", (NO_QUANT, *QUANT_MODES), default=[NO_QUANT, "int8-static"],
                                 key="sweep_quant", **ui.PERSIST,
                                 help="int8-static / int8-dynamic / fp16 run in onnxruntime; fake simulates k bits "
                                      "in torch (accuracy simulated, latency not timed)")
        st.multiselect("Bits (fake only)", range(2, 9), default=[4], key="sweep_bits", **ui.PERSIST,
                       disabled="fake" not in formats)
    with distill:
        st.markdown("**Distillation**")
        st.multiselect("KD temperatures (none: no distillation)", TEMPERATURES, key="sweep_temperatures",
                       **ui.PERSIST)
        st.number_input("Student epochs", 1, 100, DistillSpec.epochs, key="sweep_kd_epochs", **ui.PERSIST)


def worker_count() -> int:
    """The worker processes chosen for the sweep: a slider up to the CPU count, or one on a one-CPU machine."""
    if CPUS == 1:
        st.caption("One worker process: this machine has one CPU.")
        return 1
    return st.slider("Worker processes", 1, CPUS, CPUS, key="sweep_workers", **ui.PERSIST,
                     help="Model work runs in parallel; latency is timed one model at a time under the benchmark "
                          "lock.")


def missing_choice() -> str | None:
    """What the widgets leave the grid without, in their own words, or None when nothing is missing."""
    if st.session_state.sweep_methods and not st.session_state.sweep_ratios:
        return "Choose at least one of the **Fractions removed**, or no pruning method."
    if "fake" in st.session_state.sweep_quant and not st.session_state.sweep_bits:
        return "Choose at least one of the **Bits (fake only)**, or take fake out of the formats."
    return None


def job_key(recipes: list[Recipe]) -> str:
    return "sweep:" + hashlib.sha256(",".join(sorted(r.hash for r in recipes)).encode()).hexdigest()[:16]


def sweep_job(recipes: list[Recipe], store: Store, workers: int) -> ui.Job:
    """Start (or join) the background job that sweeps `recipes`; its status line is the sweep's progress line."""
    def work(progress: ProgressFn) -> None:
        def relay(event: sweep.SweepProgress) -> None:
            progress(Progress("sweep", message=event.line.removeprefix("[sweep] ")))
        try:
            sweep.run(recipes, store, workers, relay)
        except sweep.SweepStopped as exc:  # a dead worker or failed recipes: a message for the page, not a crash
            raise CompressionError(str(exc)) from exc
    return ui.start_job(job_key(recipes), f"Sweep of {len(recipes)} recipes", work)


def stored(recipes: list[Recipe], store: Store) -> list[Result]:
    """The stored results of `recipes` (the ones measured so far), in grid order."""
    return [r for r in (store.get_result(recipe.hash) for recipe in recipes) if r is not None]


def follow(job: ui.Job, recipes: list[Recipe], store: Store, metric: str) -> None:
    """Show the running sweep until it ends: done / total with time left, and the chart redrawn as each result
    is stored. Each redraw is where Streamlit may stop this script; the sweep goes on."""
    bar, live = st.progress(0.0), st.empty()
    shown = -1
    while True:
        finished = job.done.wait(0.5)
        results = stored(recipes, store)
        bar.progress(len(results) / len(recipes), text=job.status_text())
        if len(results) != shown:
            shown = len(results)
            figure = ui.tradeoff_figure(results, metric, store.get_result(recipes[0].baseline().hash))
            live.plotly_chart(figure, width="stretch", key=f"sweep_live_{shown}")
        if finished:
            break
    del st.session_state["sweep_running"]
    if job.crash is not None:
        raise job.crash
    if job.error:
        st.error(job.error)
        st.stop()
    st.rerun()


recipe = ui.valid_recipe()
store = Store()
st.title("Sweep")
st.caption("Measure many configurations at once: every combination of the values chosen below, compressed from "
           "the sidebar's baseline. Stored recipes are never recomputed; a stopped sweep keeps what it finished.")

with st.container(border=True):
    widgets()
    workers = worker_count()
    if (missing := missing_choice()) is not None:
        st.error(missing)
        st.stop()
    document = grid_document(recipe)
    try:
        recipes = sweep.Grid.from_dict(document).recipes()
    except CompressionError as exc:
        st.error(str(exc))
        st.stop()
    done = sweep.stored_count(recipes, store)
    st.markdown(f"**{len(recipes)} recipe(s)** · {done} already stored · {len(recipes) - done} to compute")
    with st.expander("The same grid for the command line"):
        st.code(f"python -m compression sweep --grid '{json.dumps(document)}'", language="bash")
    run_clicked = st.button("Run sweep", type="primary", disabled=done == len(recipes))

metric = st.segmented_control("Cost axis", pareto.METRICS, default="size", required=True, key="sweep_metric",
                              format_func=ui.METRIC_NAMES.get, **ui.PERSIST)
if run_clicked:
    st.session_state["sweep_running"] = (sweep_job(recipes, store, workers).key, recipes)
running = st.session_state.get("sweep_running")  # a sweep this session started, maybe before a rerun
if running is not None and (job := ui.find_job(running[0])) is not None:
    follow(job, running[1], store, metric)

baseline = store.get_result(recipe.hash)
results = stored(recipes, store)
if results:
    st.subheader(f"Results of this grid ({len(results)} of {len(recipes)})", anchor=False)
    st.plotly_chart(ui.tradeoff_figure(results, metric, baseline), width="stretch", key="sweep_chart")
    if (note := ui.unplotted_note(results, metric, baseline)) is not None:
        st.caption(note)
    st.caption(ui.CHART_NOTE)
    ui.show_table(ui.results_table(results, baseline), ui.RESULT_COLUMNS)

    def report_html() -> str:
        from compression import report

        unique = {r.recipe_hash: r for r in [*([baseline] if baseline else []), *results]}
        return report.build_html(list(unique.values()), title="Sweep report")
    st.download_button("Download HTML report", report_html, file_name="sweep-report.html", mime="text/html",
                       icon=":material/description:", on_click="ignore")
