"""Search page: let Optuna choose which stages run, in which order and with which settings (compression/search.py)
for the frontier of accuracy against the costs chosen, each trial a job of the executor, with the trials' progress and
the stored results landing on the chart; then the frontier (chart, table, hypervolume after each trial), each
point one click from the Pipeline page.

The search runs as a background job: a rerun or another page does not stop it, every trial is stored as it
finishes, and the study is kept in the store, so a stopped search resumes where it stopped."""

import streamlit as st

from compression import describe
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.result import Result
from compression.search import SearchReport
from compression.workspace import load as load_workspace
from ui import figures, forms, jobs, progress, tables
from ui import workspace as ws

RUNNING = "search_running"  # session state: the job key of the search this session started
LEAD = ("Let Optuna search for the best recipes: which stages run (distil, prune, quantize), in which order, and "
        "each stage's settings, for the frontier of accuracy against the costs you choose. Validation accuracy "
        "steers the search; the test split scores only the frontier it reports. Every trial is stored like any "
        "other result and a stored recipe is never recomputed; the study is kept in the store, so a stopped "
        "search resumes where it stopped.")


def settings(recipe: Recipe) -> tuple[forms.SearchChoice, bool]:
    """The search's widgets, its study's name and command line (or its one-line error), and whether Search was
    clicked."""
    with st.container(border=True):
        choice = forms.search_form(recipe)
        if choice.search is None:
            st.error(choice.error)
        else:
            st.markdown(f"Study **{choice.search.request().study_name}** · {choice.search.trials} trial(s) · "
                        f"{choice.workers} at once")
            with st.expander("The same search for the command line"):
                st.code(choice.command, language="bash")
        clicked = st.button("Search", type="primary", disabled=choice.search is None)
    return choice, clicked


def frontier(report: SearchReport, recipe: Recipe) -> None:
    """The search's counts, its frontier on the chart and in a table, the hypervolume after each trial, and a
    frontier point to open on the Pipeline page."""
    st.subheader(f"Frontier of {report.study}", anchor=False)
    counts = {"Trials": report.trials, "Complete": report.complete, "Failed": report.failed,
              "Meeting the constraints": report.feasible, "On the frontier": len(report.frontier),
              "Hypervolume": f"{(report.hypervolume or [0.0])[-1]:.4f}"}
    for column, (label, value) in zip(st.columns(len(counts)), counts.items()):
        column.metric(label, value)
    if not report.frontier:
        st.info("No trial is on the frontier: none finished that met the constraints.")
        return
    store, metric = ws.store(), report.objectives[1]
    front = {p.trial: store.get_result(p.result["recipe_hash"]) for p in report.frontier}
    space = load_workspace(recipe, store)
    st.plotly_chart(figures.search_figure(list(front.items()), space.results, metric, space.baseline),
                    width="stretch", key="search_front")
    st.caption(f"Ringed: the frontier, marked by trial, at its test accuracy against {metric} (the search chose it "
               "by validation accuracy). Faded: every stored result of this workspace. ★ the baseline.")
    tables.show_table(tables.frontier_table(report.frontier, front), tables.FRONTIER_COLUMNS)
    figures.chart(figures.hypervolume_figure(report.hypervolume), key="search_hypervolume", height=280,
                  title="Hypervolume after each finished trial", legend=False)
    st.caption("The part of the space between zero and full validation accuracy and between the baseline's cost "
               "and no cost that the frontier dominates: 0 for a front that saves nothing, 1 for a perfect model "
               "that costs nothing. It never falls.")
    labels = {p.trial: f"trial {p.trial}: {describe.recipe(p.result['recipe'])}" for p in report.frontier}
    trial = st.selectbox("Frontier point", list(labels), format_func=labels.get, key="search_point")
    point = next(p for p in report.frontier if p.trial == trial)
    forms.open_on_pipeline_button(Recipe.from_dict(point.result["recipe"]), key="search_open")


def page() -> None:
    recipe = ws.page_head("Search", LEAD)
    choice, clicked = settings(recipe)
    if clicked:
        st.session_state[RUNNING] = progress.start_search(choice.search, choice.workers).key
    running = st.session_state.get(RUNNING)  # a search this session started, maybe before a rerun
    if running is not None and (job := jobs.find_job(running)) is not None:
        baseline = ws.store().get_result(recipe.hash)
        metric = choice.search.objectives[1] if choice.search else "size"

        def draw(results: list[Result], container) -> None:
            with container.container():
                st.plotly_chart(figures.tradeoff_figure(results, metric, baseline), width="stretch",
                                key=f"search_live_{len(results)}")
                st.caption("This workspace's stored results as the trials land; the dashed line is their Pareto "
                           "frontier on test accuracy.")
        progress.follow_search(job, recipe, draw, RUNNING)
    if choice.search is None:
        return
    try:
        report = progress.search_report(choice.search)
    except CompressionError as exc:
        st.error(str(exc))
        return
    if report is not None:
        frontier(report, recipe)


page()
