"""Background jobs (ui/jobs.py) on real child processes: progress reaches the Job; every way a job ends is one
line (a CompressionError's own, a bug's with its traceback in the server log, a killed process's exit code, the
time limit, a cancel); a job stopped at its limit or cancelled frees the queue for the next; only the session
that started a job may cancel it; a real pipeline run stores its result, a cancelled one stores nothing; and
the page's Cancel button ends a job with one error line.

The tasks below are module-level: a job's child imports its task from this module by name
(multiprocessing passes sys.path on to it)."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.store import Store
from compression.train import Progress
from ui import jobs, tasks

WAIT = 120  # seconds: a generous bound on a job's end (the first job starts the fork server, which imports torch)


def report(progress) -> None:
    """A job's work: a message and a training step."""
    progress(Progress("train", "warming up"))
    progress(Progress("train", epoch=1, epochs=2, batch=3, batches=4, loss=0.5, accuracy=0.75))


def nap(seconds: float, progress) -> None:
    """A job's work that hangs for `seconds` once it has said so."""
    progress(Progress("nap", "napping"))
    time.sleep(seconds)


def say_setting(name: str, progress) -> None:
    """A job's work that says the value of the environment variable `name` in its process, and its folder."""
    progress(Progress("env", f"{os.environ.get(name, 'unset')} in {os.getcwd()}"))


def refuse(progress) -> None:
    """A job's work that stops on bad input."""
    raise CompressionError("digits: ratio 2 is not in 0 … 1")


def bug(progress) -> None:
    """A job's work with a bug."""
    raise KeyError("x")


def ended(job: jobs.Job) -> jobs.Job:
    """`job`, once it has ended (within WAIT seconds)."""
    assert job.done.wait(WAIT), f"{job.key} did not end"
    return job


def napping(job: jobs.Job) -> jobs.Job:
    """`job`, once its child is napping."""
    deadline = time.monotonic() + WAIT
    while not job.messages and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.messages and job.running, job.error
    return job


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_progress_of_the_child_reaches_the_job():
    job = ended(jobs.start_job("report", "report", report))
    assert job.state == "done" and job.error is None
    assert job.messages == ["**train** — warming up"]
    assert job.fraction == pytest.approx(0.375)  # batch 3 of 4 in epoch 1 of 2
    assert job.step == "train: epoch 1/2 · loss 0.500 · train accuracy 75.0%"
    assert job.pid is not None and job.pid != os.getpid() and not alive(job.pid)


def test_the_child_runs_in_the_server_environment_and_folder_as_they_are_now(monkeypatch, tmp_path):
    ended(jobs.start_job("first", "first", report))  # the fork server runs: its environment is fixed
    monkeypatch.setenv("COMPRESSION_TEST_SETTING", "set after the fork server started")
    monkeypatch.chdir(tmp_path)
    job = ended(jobs.start_job("env", "env", say_setting, "COMPRESSION_TEST_SETTING"))
    assert job.messages == [f"**env** — set after the fork server started in {tmp_path}"]


def test_bad_input_is_its_own_one_line():
    job = ended(jobs.start_job("refuse", "refuse", refuse))
    assert job.state == "failed" and job.error == "digits: ratio 2 is not in 0 … 1"


def test_a_bug_is_one_line_and_its_traceback_goes_to_the_server_log(caplog):
    caplog.set_level("ERROR", logger="compression.ui")
    job = ended(jobs.start_job("bug", "bug", bug))
    assert job.error == "Unexpected error (KeyError): 'x' — details in the server log"
    assert "Traceback" in caplog.text and 'raise KeyError("x")' in caplog.text


def test_work_that_cannot_be_sent_to_a_child_is_one_line(caplog):
    caplog.set_level("ERROR", logger="compression.ui")
    job = ended(jobs.start_job("lambda", "lambda", lambda progress: None))
    assert job.error.startswith("Unexpected error (") and job.error.endswith("details in the server log")
    assert "\n" not in job.error and "Traceback" in caplog.text


def test_a_job_past_its_time_limit_is_stopped_and_the_next_one_runs(monkeypatch):
    monkeypatch.setenv(jobs.TIMEOUT_ENV, "2")
    hung = jobs.start_job("hung", "hung", nap, 60)
    monkeypatch.setenv(jobs.TIMEOUT_ENV, "120")  # the limit is read when a job is asked for
    after = jobs.start_job("after", "after", report)
    assert after.state == "queued"
    ended(hung)
    assert hung.error == f"Stopped: it ran past its time limit of 2 s ({jobs.TIMEOUT_ENV}, in seconds)"
    assert not alive(hung.pid)
    assert ended(after).state == "done" and after.error is None


def test_a_time_limit_that_is_not_a_number_is_one_line(monkeypatch):
    monkeypatch.setenv(jobs.TIMEOUT_ENV, "soon")
    job = ended(jobs.start_job("soon", "soon", report))
    assert job.error == f"{jobs.TIMEOUT_ENV} must be a positive number of seconds, not 'soon'"


def test_only_the_owner_cancels_a_job_and_the_queue_moves_on():
    running = napping(jobs.start_job("nap", "nap", nap, 60, owner="me"))
    queued = jobs.start_job("queued", "queued", report, owner="me")
    assert not jobs.cancel("nap", "another session") and not jobs.cancel("nap", "")
    assert running.running and alive(running.pid)
    began = time.monotonic()
    assert jobs.cancel("nap", "me")
    assert time.monotonic() - began < 2 and running.error == jobs.CANCELLED and not alive(running.pid)
    assert ended(queued).state == "done"
    assert not jobs.cancel("nap", "me")  # ended: nothing to cancel


def test_a_queued_job_cancelled_ends_at_once_without_a_process():
    running = napping(jobs.start_job("nap", "nap", nap, 60, owner="me"))
    queued = jobs.start_job("queued", "queued", report, owner="me")
    assert jobs.cancel("queued", "me") and queued.error == jobs.CANCELLED and queued.pid is None
    assert running.running
    assert jobs.cancel("nap", "me")


def test_a_killed_child_is_one_line_with_its_exit_code():
    job = napping(jobs.start_job("nap", "nap", nap, 60))
    os.kill(job.pid, signal.SIGKILL)
    assert ended(job).error == "The job's process ended without a result (exit code -9, SIGKILL)"


def test_a_recipe_runs_in_a_job_and_is_stored(home):
    recipe = Recipe(epochs=1)
    job = ended(jobs.start_job(recipe.hash, "baseline", tasks.run_recipe, recipe, str(home)))
    assert job.state == "done" and job.error is None
    assert Store(home).get_result(recipe.hash) is not None
    assert job.fraction == 1.0 and any("**measure**" in m for m in job.messages)


def test_a_cancel_mid_training_stores_nothing(home):
    recipe = Recipe(epochs=200)  # minutes: the cancel comes in its first epoch
    job = jobs.start_job(recipe.hash, "baseline", tasks.run_recipe, recipe, str(home), owner="me")
    deadline = time.monotonic() + WAIT
    while job.fraction == 0 and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.running and job.step.startswith("train: epoch 1/200")
    assert jobs.cancel(recipe.hash, "me") and job.error == jobs.CANCELLED
    store = Store(home)
    assert store.get_result(recipe.hash) is None and store.get("weights", recipe.training_key) is None
    assert not [path for path in (home / "artifacts").iterdir()]  # no folder staged or half written


def group(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (Linux /proc; zombies left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == pgid and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                members.append(int(entry.name))
        except (ProcessLookupError, FileNotFoundError):
            continue  # ended meanwhile
    return members


@pytest.mark.slow
def test_a_cancelled_sweep_leaves_no_worker_running_and_nothing_stored(home):
    recipes = [Recipe(epochs=200, seed=seed) for seed in (1, 2)]  # minutes each: cancelled long before
    job = jobs.start_job("sweep", "sweep", tasks.sweep, recipes, 2, str(home), owner="me")
    deadline = time.monotonic() + WAIT
    while len(group(job.pid or -1)) < 3 and job.running and time.monotonic() < deadline:
        time.sleep(0.2)  # the child and at least two of the processes it started (workers, resource tracker)
    assert job.running and len(group(job.pid)) >= 3, job.error
    assert jobs.cancel("sweep", "me") and job.error == jobs.CANCELLED
    assert group(job.pid) == []
    assert [Store(home).get_result(r.hash) for r in recipes] == [None, None]


def page_with_a_job() -> None:
    """An AppTest script: a page whose button (`go` in session state) runs the test module's nap in a job."""
    import streamlit as st

    from test_jobs import nap  # the child imports it by this module's name
    from ui import progress

    progress.pending_jobs("")
    if st.session_state.pop("go", False):
        progress.run_in_status("Napping", nap, 60, key="nap")


# Streamlit runs a script as __main__, and a job's child re-runs __main__ (as __mp_main__): guarded, as
# app.py is, so that the page does not run in the child
SCRIPT = """
from test_jobs import page_with_a_job

if __name__ == "__main__":
    page_with_a_job()
"""


def app_test():
    """A session of `page_with_a_job`, run once. AppTest is imported here, not at the top: the jobs' children
    import this module for its tasks, and need no Streamlit."""
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
    job = napping(jobs.find_job("nap"))
    at.run()
    assert any("Still running — Napping" in bar.proto.text for bar in at.get("progress"))
    [cancel] = [b for b in at.button if b.label == "Cancel"]
    cancel.click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Napping: cancelled"] and job.error == jobs.CANCELLED
    assert not [b for b in at.button if b.label == "Cancel"]


def test_a_job_cancelled_while_its_page_follows_it_ends_the_page_with_one_error_line():
    at = app_test()

    def cancel_once_napping() -> None:
        deadline = time.monotonic() + WAIT
        while (job := jobs.find_job("nap")) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        jobs.cancel("nap", napping(job).owner)  # as the session's own Cancel button does
    canceller = threading.Thread(target=cancel_once_napping)
    canceller.start()
    at.session_state["go"] = True
    at.run(timeout=WAIT)
    canceller.join()
    assert not at.exception
    assert [e.value for e in at.error] == [jobs.CANCELLED]
    assert not [b for b in at.button if b.label == "Cancel"]  # cleared once the job ended
