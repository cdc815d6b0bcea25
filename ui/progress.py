"""Long work as a page shows it: a recipe checked before anything runs (a one-line error, never a traceback),
its Run button, the background job it starts followed in a status box with a progress bar and a Cancel button,
and work that a rerun left running shown at the top of every page until it is done. Every way a job fails is
its one line (st.error); sweeps and searches, followed as their results land. The jobs themselves are ui/jobs.py
(the store's queue), the work they run compression/tasks.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from compression import describe
from compression import search as searches
from compression import tasks
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.workspace import Workspace
from compression.workspace import load as load_workspace
from compression.result import Result
from ui import jobs, workspace

_SHOWN_PAGE = "_shown_page"  # session state: the url path of the page this session draws
_SESSION = "_session_id"     # session state: this session's id, the owner of the jobs it starts


def session_id() -> str:
    """This browser session's id: the owner of the jobs it starts, and so the only one that may cancel them."""
    return st.session_state.setdefault(_SESSION, uuid.uuid4().hex)


def cancel_button(job: jobs.Job, where: str) -> None:
    """A Cancel button for `job` if this session started it (`where`: the place's own widget key prefix).
    The click's rerun runs the callback first: the job has ended before the page is drawn again."""
    if job.running and job.owner == session_id():
        st.button("Cancel", key=f"cancel_{where}_{job.key}", icon=":material/cancel:",
                  on_click=jobs.cancel, args=(job.key, session_id()))


def follow(job: jobs.Job) -> None:
    """Show `job`'s messages, progress bar and Cancel button until it ends. Polls and redraws the bar a few
    times a second: each redraw is also where Streamlit stops this script if a rerun was asked for (a click of
    Cancel is one) — the job goes on, unless it was cancelled."""
    log = st.container()
    bar = st.progress(job.fraction, text=job.status_text())
    with (button := st.empty()):
        cancel_button(job, "status")
    shown = 0
    while True:
        finished = job.wait(0.25)
        for message in job.messages[shown:]:
            log.write(message)
        shown = len(job.messages)
        bar.progress(job.fraction, text=job.status_text())
        if finished:
            button.empty()  # nothing left to cancel
            return


@dataclass(frozen=True)
class PendingWork:
    """Work of this session that a rerun left running: its label, and the page that started it (and shows
    its result)."""

    label: str
    page: str


def _pending() -> dict[str, PendingWork]:
    return st.session_state.setdefault("_pending_jobs", {})


def run_in_status(label: str, fn: Callable[..., Any], *args: Any, key: str | None = None,
                  stop_on_error: bool = True) -> None:
    """Run `fn(*args, progress)` (a task of compression/tasks.py) as a background job of this session and show its
    progress inside an st.status, with a Cancel button; if it fails (bad input, a bug, its time limit, a
    cancel) show its one-line error and stop, on success rerun so the page redraws from the store.

    Give `key` = the recipe's hash: a recipe already in the store is then served at once (no job, no queue
    behind other sessions' work, no rerun: this returns and the page draws it from the store), and a second
    click, or a second session asking for the same recipe while it runs, joins the running job instead of
    computing it twice. If the page is left or rerun meanwhile, the job still finishes and stores its result;
    `pending_jobs()` shows it until then. The workspace's baseline, if it is still training, is waited for
    first (it is the first thing any work would need). `stop_on_error=False` (work started from the sidebar)
    shows the error and returns, so that the page below still draws."""
    if key is not None and workspace.store().get_result(key) is not None:
        return  # stored: nothing to run; the page goes on and draws it from the store in this same run
    key = key or f"run:{uuid.uuid4().hex}"
    with st.status(label, expanded=True) as status:
        base = workspace.baseline_job(workspace.baseline_recipe())
        if base is not None and base.running and base.key != key:
            status.write("**baseline** — waiting for the workspace's baseline to finish training")
            follow(base)
        job = jobs.start_job(key, label, fn, *args, owner=session_id())
        _pending()[key] = PendingWork(label, st.session_state.get(_SHOWN_PAGE, ""))
        follow(job)
        _pending().pop(key, None)
        if job.error:
            status.update(label="Could not finish", state="error", expanded=True)
            st.error(job.error)
            if stop_on_error:
                st.stop()
            return
        status.update(label="Measured and stored", state="complete", expanded=False)
    st.rerun()


def pending_jobs(page: str) -> None:
    """Work this session started that a rerun left running: its progress at the top of every page (polled),
    and its errors, shown once. `page` is the url path of the page this run draws."""
    st.session_state[_SHOWN_PAGE] = page
    found = [(key, jobs.find_job(key)) for key in list(_pending())]
    for key, job in found:
        if job is None or not job.running:
            work = _pending().pop(key)
            if job is not None and job.error:
                st.error(f"{work.label}: {job.error}")
    if any(job is not None and job.running for _, job in found):
        st.fragment(_pending_progress, run_every=1.0)()


def _pending_progress() -> None:
    """Polled: a bar per running job. Once work of the page shown is done, the app redraws (its result
    appears); work of another page just leaves (its error, if any, shows here): a redraw of the whole app
    there would change nothing, and would race a sidebar link clicked at that moment."""
    running = [(work, job) for key, work in list(_pending().items()) if (job := jobs.find_job(key)) is not None]
    if any(not job.running and work.page == st.session_state.get(_SHOWN_PAGE) for work, job in running):
        st.rerun()
    for work, job in running:
        if job.running:
            st.progress(job.fraction, text=f"Still running — {work.label}: {job.status_text()}")
            cancel_button(job, "pending")
        elif job.error:
            st.error(f"{work.label}: {job.error}")


def runnable(recipe: Recipe) -> Recipe | None:
    """`recipe` if it can run, else None after its one-line error on the page: validated, and, once the
    workspace's baseline is trained (its data on disk), checked against the model as the pipeline would."""
    try:
        recipe.validate()
        from compression import pipeline

        if pipeline.stored_weights(workspace.store(), recipe.baseline()) is not None:
            pipeline.check_feasible(recipe, pipeline.splits_for(recipe))
    except CompressionError as exc:
        st.error(str(exc))
        return None
    return recipe


def measured(recipe: Recipe | None, clicked: bool, label: str) -> Result | None:
    """The stored Result of `recipe` (None if it cannot run or is not measured yet), after running it in a
    background job under the status `label` when its Run button was `clicked` (a stored recipe is never
    recomputed)."""
    if recipe is None:
        return None
    store = workspace.store()
    if clicked:
        run_in_status(label, tasks.run_recipe, recipe, str(store.root), key=recipe.hash)
    return store.get_result(recipe.hash)


@dataclass(frozen=True)
class Experiment:
    """A technique page's recipe (the sidebar's baseline with the page's stage), whether it can run, its stored
    Result (None while not measured) and the workspace it belongs to."""

    recipe: Recipe
    runnable: bool
    result: Result | None
    space: Workspace
    button: str

    def note_not_measured(self, what: str = "") -> None:
        """Say that these settings are running or not measured yet (see `unmeasured_note`)."""
        if self.result is None and self.runnable:
            unmeasured_note(self.recipe, self.button, what)


def unmeasured_note(recipe: Recipe, button: str, what: str = "") -> None:
    """Say that `recipe` is running now (its job's step: started by this session before a rerun, or by another
    one; the button follows it), or that it is not measured yet and what `button` does (`what`: its work before it
    stores the result)."""
    job = jobs.find_job(recipe.hash)
    if job is not None and job.running:
        st.info(f"Running now ({job.status_text()}): it shows here once it is stored; **{button}** follows it.",
                icon=":material/hourglass_top:")
    else:
        st.info(f"Not measured with these settings yet: **{button}** {what}stores the result, and it shows here at "
                "once whenever these settings are chosen again.", icon=":material/science:")


def experiment(box, recipe: Recipe, button: str, label: str) -> Experiment:
    """Under a page's settings (in `box`): the recipe's check (a one-line error) and its Run `button`; a click
    runs it in a background job with the status `label`."""
    with box:
        checked = runnable(recipe)  # refused before any work, as the pipeline would
        clicked = st.button(button, type="primary", disabled=checked is None)
    result = measured(checked, clicked, label)
    return Experiment(recipe, checked is not None, result, load_workspace(recipe, workspace.store()), button)


def start_sweep(recipes: list[Recipe]) -> list[str]:
    """Queue each of `recipes` not stored yet as a job of this session (one a recipe: a recipe another session
    runs already is joined), run by the executor's workers as many at once as they have slots, each stored as it
    lands. Returns the sweep's job keys (the recipes' hashes)."""
    store = workspace.store()
    todo = [recipe for recipe in recipes if store.get_result(recipe.hash) is None]
    for i, recipe in enumerate(todo, 1):
        jobs.start_job(recipe.hash, f"Sweep {i}/{len(todo)}: {describe.recipe(recipe)}", tasks.run_recipe, recipe,
                       str(store.root), owner=session_id())
    return [recipe.hash for recipe in todo]



def sweep_status(found: list[jobs.Job | None], stored: int, total: int, seconds: float, finished: int) -> str:
    """A sweep's progress line: stored / total, its jobs running and queued, and the time left estimated from
    the `finished` jobs of the `seconds` it has been followed."""
    running = sum(job is not None and job.state == "running" for job in found)
    queued = sum(job is not None and job.state == "queued" for job in found)
    left = total - stored
    eta = f" · about {seconds / finished * left:.0f} s left" if finished and left else ""
    return f"{stored}/{total} stored · {running} running · {queued} queued{eta}"


def follow_sweep(keys: list[str], recipes: list[Recipe], draw: Callable[[list[Result], Any], None],
                 state_key: str) -> None:
    """Show a running sweep (its jobs `keys`) until every job has ended: stored / total, running, queued and
    time left, and `draw(results, container)` called again as each result is stored. Each redraw is where
    Streamlit may stop this script; the jobs go on (the session remembers them under `state_key`, forgotten once
    they end). Failed recipes end the page with one line; success reruns it. A Cancel button under the bar stops
    this session's jobs of the sweep."""
    store = workspace.store()
    bar = st.progress(0.0)
    with (button := st.empty()):
        st.button("Cancel", key="cancel_sweep", icon=":material/cancel:", on_click=jobs.cancel_all,
                  args=(keys, session_id()))
    live = st.empty()
    shown, began, finished_before = -1, time.monotonic(), None
    while True:
        found = [jobs.find_job(key) for key in keys]
        results = [r for r in (store.get_result(recipe.hash) for recipe in recipes) if r is not None]
        finished = sum(job is None or not job.running for job in found)
        finished_before = finished if finished_before is None else finished_before
        bar.progress(len(results) / len(recipes), text=sweep_status(found, len(results), len(recipes),
                                                                     time.monotonic() - began,
                                                                     finished - finished_before))
        if len(results) != shown:
            shown = len(results)
            draw(results, live)
        if finished == len(keys):
            break
        time.sleep(0.5)
    failed = [job for job in found if job is not None and job.error]
    _ended(f"{len(failed)} of {len(keys)} recipes failed; the first: {failed[0].error}" if failed else None,
           button, state_key)
    st.rerun()


def _ended(error: str | None, button: Any, state_key: str) -> None:
    """After followed work ends: its Cancel button gone, the session's note of it forgotten, and its `error`
    shown as the page's end."""
    button.empty()
    st.session_state.pop(state_key, None)
    if error:
        st.error(error)
        st.stop()


_FINISHED_SEARCHES = "_search_finished"  # session state: job key -> report (None until read) of finished searches


def start_search(search: tasks.SearchSettings, workers: int) -> jobs.Job:
    """Start (or join) the background job of this session that runs `search`, `workers` trials at once."""
    return jobs.start_job(search.key, f"Search of {search.trials} trials", tasks.search, search, workers,
                          str(workspace.store().root), owner=session_id())


def follow_search(job: jobs.Job, recipe: Recipe, draw: Callable[[list[Result], Any], None], state_key: str) -> None:
    """Show a running search until it ends: finished / total trials with its status line (the last trial, the
    front's size and hypervolume), the trials' lines so far, and `draw(results, container)` called again with
    the stored results of `recipe`'s workspace whenever a trial lands. Each redraw is where Streamlit may stop
    this script; the search goes on (the session remembers it under `state_key`, forgotten once it ends). An
    error ends the page with its one line; success reruns it, the search marked finished (`search_report`).
    This session's own search has a Cancel button under its bar."""
    store = workspace.store()
    bar = st.progress(job.fraction, text=job.status_text())
    with (button := st.empty()):
        cancel_button(job, "search")
    live = st.empty()
    with st.expander("Trials so far"):
        log = st.empty()
    shown, drawn = -1, -1
    while True:
        finished = job.wait(0.5)
        bar.progress(job.fraction, text=job.status_text())
        if len(job.messages) != shown:
            shown = len(job.messages)
            log.markdown("\n\n".join(job.messages[-50:]) or "No trial has finished yet.")
            results = load_workspace(recipe, store).results
            if len(results) != drawn:
                drawn = len(results)
                draw(results, live)
        if finished:
            break
    _ended(job.error, button, state_key)
    st.session_state.setdefault(_FINISHED_SEARCHES, {})[job.key] = None
    st.rerun()


def search_report(search: tasks.SearchSettings) -> searches.SearchReport | None:
    """The SearchReport of `search` once this session's job of it has finished (else None), read once from its
    stored study (search.report: no trial asked, no worker started) and then kept in the session."""
    finished = st.session_state.setdefault(_FINISHED_SEARCHES, {})
    if search.key not in finished:
        return None
    if finished[search.key] is None:
        finished[search.key] = searches.report(search.request(), workspace.store())
        if finished[search.key] is None:  # its baseline gone since (a repair)
            del finished[search.key]
            return None
    return finished[search.key]
