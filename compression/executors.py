"""Where a sweep's recipes and a search's trials are computed: as jobs of the store's queue (`local`, the
default: compression/jobs.py, the same executor as the app's) or as tasks on a Ray cluster (`ray`,
compression/ray_executor.py). Both offer `submit(recipe) -> Future`, `land(value) -> Result`, `stop()` and
`close()`, and `workers`, the recipes to keep in flight."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from typing import Any

from compression import describe
from compression.errors import CompressionError
from compression.jobs import JobQueue, Worker, embedded_worker
from compression.recipe import Recipe
from compression.result import Result
from compression.store import Store

POLL = 0.5  # seconds between looks at the jobs in flight


class JobFailed(CompressionError):
    """A recipe's job ended without its result: its one-line error."""


class QueueExecutor:
    """Recipes measured as jobs of the store's queue: run by the workers that serve the store (`make run`'s,
    one started by hand), or by `workers` worker slots embedded here while none does. A job's worker stores
    its Result; a job whose process dies is asked once more by the queue; a job another process already runs
    for the same recipe is joined, not run twice."""

    name = "local"

    def __init__(self, store: Store, workers: int) -> None:
        self.store, self.workers = store, workers
        self.queue = JobQueue(store)
        self.owner = f"executor:{uuid.uuid4().hex[:12]}"
        self.embedded: Worker | None = None
        self.futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ensure_worker()
        self._poller = threading.Thread(target=self._poll, name="job executor poll", daemon=True)
        self._poller.start()

    def _ensure_worker(self) -> None:
        """Worker slots of our own while no worker serves the store (none at the start, or it stopped)."""
        from compression.tasks import DRIVERS, TASKS

        self.embedded = embedded_worker(self.queue, self.embedded, lambda: self.workers, TASKS, DRIVERS)

    def submit(self, recipe: Recipe) -> Future:
        """`recipe` measured as a job (joined if one for it is queued or running already)."""
        future: Future = Future()
        with self._lock:
            self.queue.submit(recipe.hash, f"Measuring {describe.recipe(recipe)}", "run_recipe",
                              (recipe, str(self.store.root)), owner=self.owner)
            self.futures[recipe.hash] = future
        return future

    def _poll(self) -> None:
        while not self._closing.wait(POLL):
            with self._lock:
                pending = dict(self.futures)
            if not pending:
                continue
            try:
                self._ensure_worker()
                found = {job.key: job for job in self.queue.jobs(pending)}
            except CompressionError:  # the store busy for a moment: the next look tries again
                continue
            for key in pending:
                job = found.get(key)  # None: its row was pruned from the finished jobs kept
                if job is not None and job.running:
                    continue
                with self._lock:
                    future = self.futures.pop(key)
                result = None if job is not None and job.error else self.store.get_result(key)
                if result is not None:
                    result.from_store = False  # computed for this request, not served
                    future.set_result(result)
                else:
                    future.set_exception(JobFailed(job.error if job is not None and job.error
                                                   else "its job ended without storing a result"))

    def land(self, value: Result) -> Result:
        """The Result of a finished future (its worker stored it already)."""
        return value

    def stop(self) -> None:
        """Cancel the jobs this executor queued that have not ended (a joined job another process started
        goes on)."""
        with self._lock:
            keys = list(self.futures)
        self.queue.cancel_all(keys, self.owner)

    def close(self) -> None:
        """Stop polling, cancel what is still in flight and stop the embedded worker slots, if any (once)."""
        if self._closing.is_set():
            return
        self.stop()
        self._closing.set()
        self._poller.join()
        if self.embedded is not None:
            self.embedded.stop()


def make(store: Store, workers: int, ray_address: str | None = None) -> Any:
    """The executor of a sweep or search: jobs of the store's queue, or Ray tasks at `ray_address`."""
    if workers < 1:
        raise CompressionError(f"workers must be at least 1, got {workers}")
    if ray_address is None:
        return QueueExecutor(store, workers)
    from compression.ray_executor import RayExecutor

    return RayExecutor(store, ray_address, workers)
