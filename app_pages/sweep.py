"""Sweep page: build a grid over the sidebar's baseline (prune methods × ratios × quantization × KD
temperatures), see how many recipes it makes and how many are stored, run the rest with stored / total, running,
queued and time left, the chart filling in as results land, and the table.

Each recipe is a job of the executor (compression/jobs.py), run by the server's workers as many at once as they
have slots: a rerun or another page does not stop them, every result is stored as it finishes, so nothing
finished is lost and a second Run computes only what is missing."""

import json

import streamlit as st

from compression import pareto, sweep
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.result import Result
from ui import figures, forms, progress, tables
from ui import workspace as ws
from ui.forms import PERSIST

RUNNING = "sweep_running"  # session state: (job keys, recipes) of the sweep this session started
LEAD = ("Measure many configurations at once: every combination of the values chosen below, compressed from the "
        "sidebar's baseline. Stored recipes are never recomputed; a stopped sweep keeps what it finished.")


def grid(recipe: Recipe) -> tuple[list[Recipe], bool]:
    """The grid's widgets and the recipes they make (a one-line error and a stopped page for a grid that cannot
    run), and whether Run was clicked."""
    with st.container(border=True):
        choice = forms.grid_form(recipe)
        if choice.missing is not None:
            st.error(choice.missing)
            st.stop()
        try:
            recipes = sweep.Grid.from_dict(choice.document).recipes()
        except CompressionError as exc:
            st.error(str(exc))
            st.stop()
        done = sweep.stored_count(recipes, ws.store())
        st.markdown(f"**{len(recipes)} recipe(s)** · {done} already stored · {len(recipes) - done} to compute")
        st.caption("Each recipe runs as a job on the server's workers, as many at once as they have slots (one a "
                   "core by default), taking turns with other sessions' experiments; latency is timed one model at a "
                   "time under the machine-wide lock.")
        with st.expander("The same grid for the command line"):
            st.code(f"python -m compression sweep --grid '{json.dumps(choice.document)}'", language="bash")
        clicked = st.button("Run sweep", type="primary", disabled=done == len(recipes))
    return recipes, clicked


def stored(recipes: list[Recipe]) -> list[Result]:
    """The stored results of `recipes` (the ones measured so far), in grid order."""
    store = ws.store()
    return [r for r in (store.get_result(recipe.hash) for recipe in recipes) if r is not None]


def page() -> None:
    recipe = ws.page_head("Sweep", LEAD)
    recipes, clicked = grid(recipe)
    metric = st.segmented_control("Cost axis", pareto.METRICS, default="size", required=True, key="sweep_metric",
                                  format_func=figures.METRIC_NAMES.get, **PERSIST)
    baseline = ws.store().get_result(recipe.hash)
    if clicked:
        st.session_state[RUNNING] = (progress.start_sweep(recipes), recipes)
    running = st.session_state.get(RUNNING)  # a sweep this session started, maybe before a rerun
    if running is not None:
        def draw(results: list[Result], container) -> None:
            container.plotly_chart(figures.tradeoff_figure(results, metric, baseline), width="stretch",
                                   key=f"sweep_live_{len(results)}")
        progress.follow_sweep(*running, draw, RUNNING)

    results = stored(recipes)
    if not results:
        return
    st.subheader(f"Results of this grid ({len(results)} of {len(recipes)})", anchor=False)
    st.plotly_chart(figures.tradeoff_figure(results, metric, baseline), width="stretch", key="sweep_chart")
    st.caption(figures.chart_notes(results, metric, baseline))
    table = tables.results_table(results, baseline)
    tables.show_table(table, tables.RESULT_COLUMNS)
    unique = list({r.recipe_hash: r for r in [*([baseline] if baseline else []), *results]}.values())
    tables.downloads(table, unique, "sweep", "Sweep report")


page()
