"""The app's side of the executor (compression/jobs.py): long work (training, a run, a sweep, a search) is a
job in the store's queue, run by worker processes, never in a page's script thread — a rerun (a widget changed,
another page opened, the browser reloaded) interrupts the page, not the work, and a restarted server still
shows the jobs its workers run. `make run` starts a worker beside the server; where none serves the store
(AppTest, `streamlit run app.py`, a store switched to), worker slots are embedded in this process, and stop
with it (their jobs go back to the queue, resumed by the next worker). No Streamlit here: what a page shows of a
job is ui/progress.py."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from compression import settings
from compression.errors import CompressionError
from compression.jobs import CANCELLED, Job, JobQueue, Worker, default_slots, embedded_worker
from compression.store import Store
from compression.tasks import DRIVERS, TASKS

__all__ = ["CANCELLED", "Job", "cancel", "cancel_all", "find_job", "queue", "slots", "start_job"]

SLOTS_ENV = "COMPRESSION_WORKERS"  # jobs an embedded worker runs at once (default: one a core)
_QUEUES: dict[str, JobQueue] = {}
_EMBEDDED: dict[str, Worker] = {}
_LOCK = threading.Lock()
_SUBMITTING = threading.Lock()  # held from queueing a job to seeing a worker serve it (embedded ones stop idle)
IDLE = 60.0  # seconds without a job after which embedded worker slots stop (a new job starts them again)


def queue() -> JobQueue:
    """The job queue of the store this process serves now ($COMPRESSION_HOME)."""
    root = str(settings.home())
    with _LOCK:
        if root not in _QUEUES:
            _QUEUES[root] = JobQueue(Store(root))
        return _QUEUES[root]


def slots() -> int:
    """Jobs an embedded worker runs at once: $COMPRESSION_WORKERS, default one a core."""
    setting = os.environ.get(SLOTS_ENV, "").strip()
    if not setting:
        return default_slots()
    if not setting.isdigit() or int(setting) < 1:
        raise CompressionError(f"{SLOTS_ENV} must be a whole number of at least 1, not {setting!r}")
    return int(setting)


def _submit(jobs: JobQueue, key: str, label: str, task: str, args: tuple, owner: str) -> Job:
    """Queue the job, then make sure a worker serves the store."""
    with _SUBMITTING:
        job = jobs.submit(key, label, task, args, owner)
        _ensure_worker(jobs)
    return job


def _ensure_worker(jobs: JobQueue) -> None:
    """A worker for the store of `jobs`: one elsewhere (`make run`'s, one started by hand), else worker slots
    embedded in this process, which stop after IDLE seconds without a job. Called holding _SUBMITTING."""
    root = str(jobs.store.root)
    worker = embedded_worker(jobs, _EMBEDDED.get(root), slots, TASKS, DRIVERS, IDLE, _SUBMITTING)
    if worker is not None:
        _EMBEDDED[root] = worker


def start_job(key: str, label: str, fn: Callable[..., Any], *args: Any, owner: str = "") -> Job:
    """Queue `fn(*args, progress)` (a task of compression/tasks.py) under `key`; a job of that key still queued or
    running is returned instead of starting a second one. `owner` may cancel the job."""
    if TASKS.get(fn.__name__) is not fn:
        raise TypeError(f"{fn.__name__} is not a task of compression/tasks.py")
    return _submit(queue(), key, label, fn.__name__, args, owner)


def find_job(key: str) -> Job | None:
    """The latest job of `key` in the store this process serves (running or finished), if any. A job not ended
    that no worker serves (left by a server that stopped) gets embedded worker slots: a queued one is resumed,
    a running one whose worker died is recovered and asked again."""
    jobs = queue()
    job = jobs.get(key)
    if job is not None and job.running:
        with _SUBMITTING:
            _ensure_worker(jobs)
    return job


def cancel(key: str, owner: str) -> bool:
    """Stop the job of `key` if `owner` started it, and return True once it has ended (failed with the error
    "cancelled"); False, stopping nothing, for any other owner or no running job."""
    return queue().cancel(key, owner)


def cancel_all(keys: list[str], owner: str) -> None:
    """Ask the jobs of `keys` that `owner` started to stop (queued ones end at once, running ones within
    seconds), without waiting."""
    queue().cancel_all(keys, owner)


def _stop_embedded() -> None:
    """At this process's exit, stop the embedded workers: their running jobs go back to the queue."""
    for worker in list(_EMBEDDED.values()):
        worker.stop()


# registered after multiprocessing's own exit handler (compression.jobs imported it): atexit runs the later one
# first, so the children are stopped before multiprocessing waits for them
atexit.register(_stop_embedded)
