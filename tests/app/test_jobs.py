"""The app's jobs (ui/jobs.py) on the real executor: a recipe runs in a job and is stored, a cancel mid-training
stores nothing; worker slots are embedded in the app's process when no worker serves the store, none when
`python -m compression worker` does; a job a stopped server left queued is resumed; a restarted server shows the
baseline a worker still trains and then its result; serve.py (`make run`) starts its worker and stopping the
server stops it; the page's Cancel button ends a job with one error line. The executor's own behaviour (time
limits, killed children and workers, owners, claims) is tests/backend/test_executor.py."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from compression import jobs as executor
from compression import tasks
from compression.recipe import Recipe
from compression.store import Store
from ui import jobs

WAIT = 120  # seconds: a generous bound on a job's end (the first job starts the fork server, which imports torch)
ROOT = Path(__file__).resolve().parents[2]
LONG = Recipe(epochs=200)  # minutes: every test below stops it during its first epoch


def ended(job: executor.Job) -> executor.Job:
    assert job.wait(WAIT), f"{job.key} did not end"
    return job


def training(job: executor.Job) -> executor.Job:
    """`job`, once its child trains."""
    deadline = time.monotonic() + WAIT
    while job.refresh().fraction == 0 and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.running and job.step.startswith("train: epoch "), job.error
    return job


def test_a_recipe_runs_in_a_job_and_is_stored(home):
    recipe = Recipe(epochs=1)
    job = ended(jobs.start_job(recipe.hash, "baseline", tasks.run_recipe, recipe, str(home)))
    assert job.state == "done" and job.error is None
    assert Store(home).get_result(recipe.hash) is not None
    assert job.fraction == 1.0 and any("**measure**" in m for m in job.messages)
    assert jobs.queue().workers() == jobs.slots()  # worker slots embedded in this process: no worker served it


def test_a_job_a_stopped_server_left_queued_is_resumed_when_a_page_looks_for_it(home):
    recipe = Recipe(epochs=1)
    executor.JobQueue(Store(home)).submit(recipe.hash, "baseline", "run_recipe", (recipe, str(home)))  # no worker
    assert jobs.queue().workers() == 0
    job = jobs.find_job(recipe.hash)
    assert ended(job).state == "done" and Store(home).get_result(recipe.hash) is not None


def test_only_tasks_of_the_table_are_jobs(home):
    with pytest.raises(TypeError, match="is not a task"):
        jobs.start_job("x", "x", print, "hello")


def test_a_cancel_mid_training_stores_nothing(home):
    job = training(jobs.start_job(LONG.hash, "baseline", tasks.run_recipe, LONG, str(home), owner="me"))
    deadline = time.monotonic() + WAIT
    while " left" not in job.refresh().step and job.running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert re.fullmatch(r"train: epoch \d+/200 · loss [\d.]+ · train accuracy [\d.]+% · about [\d.]+ (s|min) left",
                        job.step), job.step  # the time left in training, from its pace so far
    assert not jobs.cancel(LONG.hash, "another session")
    assert jobs.cancel(LONG.hash, "me") and job.refresh().error == jobs.CANCELLED
    store = Store(home)
    assert store.get_result(LONG.hash) is None and store.get("weights", LONG.training_key) is None
    assert not [path for path in (home / "artifacts").iterdir()]  # no folder staged or half written


def test_a_restarted_server_shows_the_baseline_its_worker_still_trains(home):
    """`make run`'s worker is a process of its own: the app's first server queues the workspace's baseline,
    goes (a new AppTest is a new server's first visit: nothing of the first in its session), and the page of
    the next shows the training from the queue and then the measured baseline."""
    from streamlit.testing.v1 import AppTest

    env = {**os.environ, "COMPRESSION_HOME": str(home)}
    worker = subprocess.Popen([sys.executable, "-m", "compression", "worker", "--slots", "1"], cwd=ROOT, env=env,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT
        while jobs.queue().workers() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        baseline = Recipe(epochs=3)
        first = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        first.session_state["epochs"] = 3
        first.run()
        job = jobs.find_job(baseline.hash)
        assert job is not None and job.running
        assert jobs.queue().workers() == 1  # the worker process serves it: no slot embedded in this process
        del first
        again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        again.session_state["epochs"] = 3
        again.run()
        assert not again.exception
        assert again.get("progress") and any(c.value.startswith("Training and measuring once") for c in again.caption)
        assert ended(job).state == "done" and job.worker.split(":")[1] == str(worker.pid)
        assert Store(home).get_result(baseline.hash) is not None
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(WAIT)


def page_with_a_job() -> None:
    """An AppTest script: a page whose button (`go` in session state) trains a baseline for minutes in a job."""
    import streamlit as st

    from compression import settings, tasks
    from compression.recipe import Recipe
    from ui import progress

    progress.pending_jobs("")
    if st.session_state.pop("go", False):
        progress.run_in_status("Training", tasks.run_recipe, Recipe(epochs=200), str(settings.home()), key="long")


SCRIPT = """
from test_jobs import page_with_a_job

if __name__ == "__main__":
    page_with_a_job()
"""


def app_test():
    """A session of `page_with_a_job`, run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(SCRIPT, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def test_the_cancel_button_of_a_job_left_running_ends_it_with_one_error_line():
    at = app_test()
    at.session_state["go"] = True
    with pytest.raises(RuntimeError, match="timed out"):  # the script follows the job: interrupted, as by a rerun
        at.run(timeout=3)
    job = training(jobs.find_job("long"))
    at.run()
    assert any("Still running — Training" in bar.proto.text for bar in at.get("progress"))
    [cancel] = [b for b in at.button if b.label == "Cancel"]
    cancel.click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Training: cancelled"] and job.refresh().error == jobs.CANCELLED
    assert not [b for b in at.button if b.label == "Cancel"]


def test_a_job_cancelled_while_its_page_follows_it_ends_the_page_with_one_error_line():
    at = app_test()

    def cancel_once_training() -> None:
        deadline = time.monotonic() + WAIT
        while (job := jobs.find_job("long")) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        jobs.cancel("long", training(job).owner)  # as the session's own Cancel button does
    canceller = threading.Thread(target=cancel_once_training)
    canceller.start()
    at.session_state["go"] = True
    at.run(timeout=WAIT)
    canceller.join()
    assert not at.exception
    assert [e.value for e in at.error] == [jobs.CANCELLED]
    assert not [b for b in at.button if b.label == "Cancel"]  # cleared once the job ended


def worker_pids(home: Path) -> list[int]:
    """The processes registered as workers of the store at `home` and alive."""
    with closing(sqlite3.connect(home / "results.sqlite")) as db:
        return [pid for (pid,) in db.execute("SELECT pid FROM workers") if alive(pid)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_make_run_starts_its_worker_and_stopping_the_server_stops_it(tmp_path, stop):
    """serve.py (what `make run` runs) starts `python -m compression worker` beside the server; the server
    stopped (SIGTERM: its exit stops the worker) or killed (SIGKILL: the worker sees it gone) leaves no worker."""
    from tests.e2e import harness

    server = harness.start_server(tmp_path / "home")
    try:
        [pid] = worker_pids(tmp_path / "home")
        os.kill(server.process.pid, stop)  # the server alone, not its process group
        server.process.wait(30)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid), server.log_tail()
    finally:
        harness.stop_server(server)
