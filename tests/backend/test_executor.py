"""The executor (compression/jobs.py) on real worker threads, child processes and worker processes: progress
reaches the job's row; every way a job ends is one line (a CompressionError's own, a bug's with its traceback
in the worker's log, a killed process's exit code, the time limit, a cancel, an unknown task); N slots run N
jobs at once, but never two that would compute the same model; only the session that started a job may cancel
it; a stopped worker's job goes back to the queue and the next worker finishes it; a killed worker's job is
recovered from its stale heartbeat, and its child does not outlive it; a job submitted by one server is seen
and finished after that server is gone.

The tasks below are module-level: a job's child imports its task from this module by name (multiprocessing
passes sys.path on to it)."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from compression import jobs
from compression.errors import CompressionError
from compression.imports import ImportRequest
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.search import Limits
from compression.store import Store
from compression.tasks import SearchSettings
from compression.train import Progress

WAIT = 120  # seconds: a generous bound on a job's end (the first job starts the fork server, which imports torch)
ROOT = Path(__file__).resolve().parents[2]


def report(progress) -> None:
    """A job's work: a message and a training step."""
    progress(Progress("train", "warming up"))
    progress(Progress("train", epoch=1, epochs=2, batch=3, batches=4, loss=0.5, accuracy=0.75))


def nap(seconds: float, progress) -> None:
    """A job's work that hangs for `seconds` once it has said so."""
    progress(Progress("nap", "napping"))
    time.sleep(seconds)


def refuse(progress) -> None:
    """A job's work that stops on bad input."""
    raise CompressionError("digits: ratio 2 is not in 0 … 1")


def bug(progress) -> None:
    """A job's work with a bug."""
    raise KeyError("x")


TEST_TASKS = {fn.__name__: fn for fn in (report, nap, refuse, bug)}


@contextmanager
def serving(home: Path, slots: int = 1):
    """A worker with `slots` slots on the store at `home`, stopped after; yields the store's queue."""
    worker = jobs.Worker(Store(home), slots, TEST_TASKS).start()
    try:
        yield worker.queue
    finally:
        worker.stop()


def ended(job: jobs.Job) -> jobs.Job:
    assert job.wait(WAIT), f"{job.key} did not end"
    return job


def napping(job: jobs.Job) -> jobs.Job:
    """`job`, once its child is napping."""
    deadline = time.monotonic() + WAIT
    while not job.refresh().messages and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.messages and job.running, job.error
    return job


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_progress_of_the_child_reaches_the_job_row(home):
    with serving(home) as queue:
        job = ended(queue.submit("report", "report", "report"))
    assert job.state == "done" and job.error is None and job.attempts == 1
    assert job.messages == ["**train** — warming up"]
    assert job.fraction == 1.0  # done: the bar full
    assert job.pid is not None and job.pid != os.getpid() and not alive(job.pid)
    assert jobs.JobQueue(Store(home)).get("report").state == "done"  # in the store, for any process to read


def test_bad_input_and_bugs_are_one_line_and_the_traceback_goes_to_the_log(home, caplog):
    caplog.set_level("ERROR", logger="compression.jobs")
    with serving(home) as queue:
        refused = queue.submit("refuse", "refuse", "refuse")
        broken = queue.submit("bug", "bug", "bug")
        unknown = queue.submit("nope", "nope", "rm -rf")
        ended(refused), ended(broken), ended(unknown)
    assert refused.error == "digits: ratio 2 is not in 0 … 1"
    assert broken.error == "Unexpected error (KeyError): 'x' — details in the server log"
    assert "Traceback" in caplog.text and 'raise KeyError("x")' in caplog.text
    assert unknown.error == "this worker has no task 'rm -rf'"


def test_arguments_are_json_and_only_known_types_come_back(home):
    recipe = Recipe(model="mlp", prune=PruneSpec("channel-l2", 0.3), quant=QuantSpec(mode="int8-static"),
                    distill=DistillSpec(width=0.5), order=("distill", "prune", "quant"))
    search = SearchSettings(recipe.baseline(), ("accuracy", "size"), 4, Limits(max_drop=1.0), "tpe", None, "{}", 0)
    request = ImportRequest(Path("/tmp/m.onnx"), "mine", "digits", None, (32, 32), (0.5,), (0.2,))
    args = (recipe, [recipe.baseline()], search, request, {"a": (1, 2.5)}, None, "root")
    assert jobs.decode(jobs.encode(args)) == args
    with pytest.raises(TypeError, match="cannot be a function"):
        jobs.encode((report,))
    with pytest.raises(CompressionError, match="unknown type 'os.system'"):
        jobs.decode({"__type__": "os.system", "fields": {}})


def test_a_job_past_its_time_limit_is_stopped_and_the_next_one_runs(home, monkeypatch):
    monkeypatch.setenv(jobs.TIMEOUT_ENV, "2")
    with serving(home) as queue:
        hung = queue.submit("hung", "hung", "nap", (60,))
        after = queue.submit("after", "after", "report")
        ended(hung)
        assert hung.error == f"Stopped: it ran past its time limit of 2 s ({jobs.TIMEOUT_ENV}, in seconds)"
        assert not alive(hung.pid)
        assert ended(after).state == "done"
        monkeypatch.setenv(jobs.TIMEOUT_ENV, "soon")
        assert ended(queue.submit("soon", "soon", "report")).error == \
            f"{jobs.TIMEOUT_ENV} must be a positive number of seconds, not 'soon'"


def test_only_the_owner_cancels_and_a_queued_job_ends_at_once(home):
    with serving(home) as queue:
        running = napping(queue.submit("nap", "nap", "nap", (60,), owner="me"))
        queued = queue.submit("queued", "queued", "report", owner="me")
        assert queue.submit("nap", "again", "nap", (60,), owner="other").created == running.created  # joined
        assert not queue.cancel("nap", "another session") and not queue.cancel("nap", "")
        assert running.refresh().running and alive(running.pid)
        assert queue.cancel("queued", "me") and queued.refresh().error == jobs.CANCELLED and queued.pid is None
        began = time.monotonic()
        assert queue.cancel("nap", "me")
        assert time.monotonic() - began < 3 and running.refresh().error == jobs.CANCELLED
        assert not alive(running.pid)
        assert not queue.cancel("nap", "me")  # ended: nothing to cancel
        assert ended(queue.submit("next", "next", "report")).state == "done"  # the slot is free again


def test_a_killed_child_is_asked_once_more_then_is_one_line_with_its_exit_code(home):
    with serving(home) as queue:
        job = napping(queue.submit("nap", "nap", "nap", (60,)))
        first = job.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while len(job.refresh().messages) < 2 and time.monotonic() < deadline:  # napping again, a new process
            time.sleep(0.05)
        assert job.running and job.pid not in (None, first) and job.attempts == 2
        os.kill(job.pid, signal.SIGKILL)
        assert ended(job).error == "The job's process ended without a result twice (exit code -9, SIGKILL)"


def drive(root: str, progress) -> None:
    """A driver's work: a job of its own in the same queue, waited on."""
    progress(Progress("drive", "queueing a job"))
    job = jobs.JobQueue(Store(root)).submit("driven", "driven", "report")
    if not job.wait(WAIT) or job.error:
        raise CompressionError(f"the driven job did not end well: {job.error}")


def test_a_driver_runs_beside_the_slots_its_jobs_need(home):
    worker = jobs.Worker(Store(home), 1, {**TEST_TASKS, "drive": drive}, drivers={"drive"}).start()
    try:
        driver = worker.queue.submit("driver", "driver", "drive", (str(home),))
        assert ended(driver).state == "done", driver.error  # a driver in the one compute slot would wait forever
        assert worker.queue.get("driven").state == "done"
    finally:
        worker.stop()


def test_cancel_all_ends_an_owners_queued_and_running_jobs_and_leaves_the_others(home):
    with serving(home) as queue:
        running = napping(queue.submit("nap", "nap", "nap", (60,), owner="me"))
        queued = queue.submit("queued", "queued", "report", owner="me")
        theirs = queue.submit("theirs", "theirs", "report", owner="other")
        queue.cancel_all(["nap", "queued", "theirs"], "me")
        assert queued.refresh().error == jobs.CANCELLED
        assert ended(running).error == jobs.CANCELLED and not alive(running.pid)
        assert ended(theirs).state == "done"
        assert {job.key: job.state for job in queue.jobs(["nap", "theirs", "none"])} == {"nap": "failed",
                                                                                         "theirs": "done"}


def test_two_slots_run_two_jobs_at_once(home):
    with serving(home, slots=2) as queue:
        first, second = (napping(queue.submit(key, key, "nap", (60,), owner="me")) for key in ("one", "two"))
        assert first.state == second.state == "running" and first.pid != second.pid
        assert queue.cancel("one", "me") and queue.cancel("two", "me")


def test_a_job_waits_while_a_running_one_claims_a_model_it_needs(home):
    with serving(home, slots=2) as queue:
        napping(queue.submit("first", "first", "nap", (60,), owner="me", claims=["weights-a", "result-a"]))
        second = queue.submit("second", "second", "nap", (60,), owner="me", claims=["weights-a", "checkpoint-b"])
        other = napping(queue.submit("other", "other", "nap", (60,), owner="me", claims=["weights-c"]))
        assert other.state == "running" and second.refresh().state == "queued"  # behind the one it shares with
        assert queue.cancel("first", "me")
        assert napping(second).state == "running"
        assert queue.cancel("second", "me") and queue.cancel("other", "me")


def test_a_stopped_worker_puts_its_job_back_and_the_next_worker_finishes_it(home):
    with serving(home) as queue:
        job = napping(queue.submit("nap", "nap", "nap", (3,)))
        pid = job.pid
    assert job.refresh().state == "queued" and not alive(pid)  # the worker stopped: its job is back in the queue
    with serving(home):
        assert ended(job).state == "done" and job.attempts == 1 and job.pid != pid  # a stop is not an attempt


def worker_process(home: Path) -> subprocess.Popen:
    """`python -m compression worker` on the store at `home`, once it serves it."""
    env = {**os.environ, "COMPRESSION_HOME": str(home)}
    worker = subprocess.Popen([sys.executable, "-m", "compression", "worker", "--slots", "1"], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True)
    queue = jobs.JobQueue(Store(home))
    deadline = time.monotonic() + WAIT
    while queue.workers() == 0 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue.workers() == 1, worker.stderr.read() if worker.poll() is not None else "no worker"
    return worker


def test_a_job_outlives_the_server_that_queued_it_on_a_worker_process(home):
    recipe = Recipe(epochs=2)
    worker = worker_process(home)
    try:
        job = jobs.JobQueue(Store(home)).submit(recipe.hash, "baseline", "run_recipe", (recipe, str(home)))
        del job  # the server that queued it is gone: a new one reads the queue
        restarted = jobs.JobQueue(Store(home))
        assert restarted.get(recipe.hash).running
        assert ended(restarted.get(recipe.hash)).state == "done"
        assert Store(home).get_result(recipe.hash) is not None
    finally:
        worker.send_signal(signal.SIGINT)
        _, err = worker.communicate(timeout=WAIT)
    assert worker.returncode == 0 and "stopped: its running jobs are back in the queue" in err
    assert jobs.JobQueue(Store(home)).workers() == 0  # it left


def test_a_killed_worker_leaves_no_child_and_its_job_is_recovered(home, monkeypatch):
    monkeypatch.setattr(jobs, "STALE", 3.0)
    recipe = Recipe(epochs=200)  # minutes: the worker is killed during its first epoch
    worker = worker_process(home)
    try:
        queue = jobs.JobQueue(Store(home))
        job = queue.submit(recipe.hash, "baseline", "run_recipe", (recipe, str(home)))
        deadline = time.monotonic() + WAIT
        while job.refresh().fraction == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.state == "running" and job.pid is not None
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 15
    while alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(job.pid)  # the child saw its fork server go and stopped itself
    # a worker of this machine whose process is gone is dead at once, its heartbeat still fresh
    assert queue.workers() == 0
    assert queue.recover() == [recipe.hash] and job.refresh().state == "queued"  # a first death: asked again
    queue.claim("another worker")  # one elsewhere: taken for dead only once its heartbeat is stale
    assert queue.recover() == [] and job.refresh().state == "running"
    time.sleep(jobs.STALE + 1)
    assert queue.recover() == [recipe.hash]
    assert job.refresh().state == "failed" and job.error == "Its worker process died twice while running it"
    assert Store(home).get_result(recipe.hash) is None


def test_the_worker_command_refuses_bad_slots_in_one_line(home):
    done = subprocess.run([sys.executable, "-m", "compression", "worker", "--slots", "0"], cwd=ROOT,
                          env={**os.environ, "COMPRESSION_HOME": str(home)}, capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 2 and done.stderr.strip() == "error: --slots must be at least 1, got 0"


def test_a_job_put_back_after_its_cancel_was_asked_ends_cancelled_not_queued(home):
    queue = jobs.JobQueue(Store(home))  # no worker: the test claims as one
    queue.submit("asked", "asked", "report", owner="me")
    queue.submit("kept", "kept", "report", owner="me")
    assert queue.claim("w")[0].key == "asked" and queue.claim("w")[0].key == "kept"
    queue.cancel_all(["asked"], "me")
    queue.requeue("asked")  # its worker stopped before it saw the cancel
    queue.requeue("kept")
    assert (queue.get("asked").state, queue.get("asked").error) == ("failed", jobs.CANCELLED)
    assert (queue.get("kept").state, queue.get("kept").attempts) == ("queued", 0)
