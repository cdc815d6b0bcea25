"""Local worker processes for long work (sweeps, searches): a pool of spawned processes with one torch thread
each that leave Ctrl-C to their parent, and the one task they run, a recipe measured and stored."""

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from compression.recipe import Recipe
from compression.result import Result
from compression.store import Store


def _init_worker() -> None:
    """One torch thread per worker process (the workers share the cores instead of fighting over them), and
    Ctrl-C left to the parent: it stops the workers itself, so that none prints a traceback. tqdm (Optuna's
    dependency) gets a thread lock: torch.fx's export progress bar would otherwise create a multiprocessing
    lock, which a worker terminated on Ctrl-C leaks (Python's resource tracker then warns at exit)."""
    import torch
    import tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    tqdm.tqdm.set_lock(threading.RLock())


def pool(size: int) -> ProcessPoolExecutor:
    """A pool of `size` spawned worker processes (started as work is submitted)."""
    return ProcessPoolExecutor(max_workers=size, initializer=_init_worker,
                               mp_context=multiprocessing.get_context("spawn"))


@contextmanager
def _born_deaf() -> Iterator[None]:
    """Ctrl-C ignored while the pool may start a worker (a submit can): a worker inherits the ignored SIGINT
    from its first instruction, so one interrupted while it unpickles its start-up data prints no traceback.
    (`_init_worker` ignores it too, for a worker started otherwise.) Only the main thread can set signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def submit(workers: ProcessPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` on one of the pool's workers."""
    with _born_deaf():
        return workers.submit(fn, *args)


def stop(workers: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now (they ignore Ctrl-C; a recipe they are computing is not
    stored: a store write is atomic). ProcessPoolExecutor has no public way to stop a running task."""
    for process in list(workers._processes.values()):  # noqa: SLF001
        process.terminate()
    for process in list(workers._processes.values()):  # noqa: SLF001
        process.join(10)


def measure(recipe: Recipe, root: str) -> Result:
    """The measured Result of one recipe, stored (runs in a worker)."""
    from compression import pipeline

    return pipeline.run(recipe, Store(root))


def check_feasible(recipes: list[Recipe]) -> None:
    """Raise the pipeline's one-line CompressionError for a recipe that cannot apply to its data or model
    (runs in a worker: needs torch and the data)."""
    from compression import pipeline

    for recipe in recipes:
        pipeline.check_feasible(recipe, pipeline.splits_for(recipe))


class LocalExecutor:
    """Recipes measured on a pool of local worker processes, each storing its own result in the store (the
    default executor of a search)."""

    name = "local"

    def __init__(self, store: Store, workers: int) -> None:
        self.store, self.workers = store, workers
        self.pool = pool(workers)

    def submit(self, recipe: Recipe) -> Future:
        """`recipe` measured on a worker; a pool whose idle worker died is replaced first."""
        try:
            return submit(self.pool, measure, recipe, str(self.store.root))
        except BrokenProcessPool:
            self.restart()
            return submit(self.pool, measure, recipe, str(self.store.root))

    def land(self, value: Result) -> Result:
        """The Result of a finished future (the worker stored it already)."""
        return value

    def died(self, exc: BaseException) -> bool:
        """Whether a future's exception means its worker process died (then every running future is lost)."""
        return isinstance(exc, BrokenProcessPool)

    def restart(self) -> None:
        """A new pool in place of a broken one."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = pool(self.workers)

    def stop(self) -> None:
        """Terminate running work now."""
        stop(self.pool)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
