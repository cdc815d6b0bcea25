"""The one executor of long work: jobs are rows of the store's database (queued / running / done / failed, with
their progress), run by worker processes, never by the web server.

A `JobQueue` is the store's table of jobs: the app submits to it and polls it, so a restarted server still
shows the jobs its workers run. A `Worker` (`python -m compression worker`, started by `make run`, or embedded
in the process that submits when no worker serves the store) claims queued jobs, `slots` at a time, and runs
each in a child process of its own: past its time limit ($COMPRESSION_JOB_TIMEOUT) or when the session that
started it cancels it, the child and every process it started are terminated, and a bug, a hang or a crash of
the work never reaches the worker or the jobs queued behind it. Every way a job ends is one line in
`Job.error`; a bug's traceback goes to the worker's log.

A job names its task (a function in the worker's table, compression/tasks.py) and carries its arguments as
JSON (recipes and requests by their fields): nothing read from the database is ever unpickled or run. A job for
a key that is queued or running is joined, not started twice. A worker that stops (Ctrl-C, `make run` stopped)
puts its running jobs back in the queue; one that dies is noticed by its stale heartbeat, and its jobs are
queued once more, then failed; so is a job whose own process dies (killed, out of memory).

A driver task (a search: it asks for trials and waits on them as jobs of the same queue) runs in a driver slot
of its own, beside the `slots` that compute, so that a driver never holds the slot its trials need."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from compression.errors import CompressionError
from compression.store import Store

Task = Callable[..., Any]  # a task: fn(*args, progress)
ProgressFn = Callable[[Any], None]  # compression.train's, without importing torch here
log = logging.getLogger("compression.jobs")

TIMEOUT_ENV = "COMPRESSION_JOB_TIMEOUT"
DEFAULT_TIMEOUT = 4 * 3600.0  # seconds: room for a long fine-tuning of the largest model on a slow machine
CANCELLED = "cancelled"
ACTIVE = ("queued", "running")
HEARTBEAT = 1.0   # seconds between a worker's signs of life (its row, and each of its running jobs')
STALE = 30.0      # seconds without a sign of life after which a worker is taken for dead
_POLL = 0.2       # seconds between a slot's looks at its job's cancel request, time limit and the queue
_GRACE = 5.0      # seconds a stopped child has to run its `finally` blocks (temporary files) before it is killed
_KEEP_MESSAGES = 500
_KEEP_FINISHED = 500

_SCHEMA = ("""
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    task TEXT NOT NULL,
    args TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    fraction REAL NOT NULL DEFAULT 0,
    step TEXT NOT NULL DEFAULT '',
    messages TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    pid INTEGER,
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0,
    claims TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL
)""", "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created)", """
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    slots INTEGER NOT NULL,
    heartbeat REAL NOT NULL
)""")


# ------------------------------------------------------------------------------------------------- arguments

def _types() -> dict[str, type]:
    """The dataclasses a job's arguments may hold, by name (imported late: search imports optuna)."""
    from compression.imports import ImportRequest
    from compression.recipe import Recipe
    from compression.search import Limits
    from compression.tasks import SearchSettings

    return {cls.__name__: cls for cls in (Recipe, ImportRequest, Limits, SearchSettings)}


def encode(value: Any) -> Any:
    """`value` as JSON-ready data that `decode` turns back into it: plain values, lists, tuples, string-keyed
    dicts, paths and the dataclasses of `_types()`. Anything else is a bug of the caller (TypeError)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v) for k, v in value.items()}}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and _types().get(name) is type(value):
        if name == "Recipe":
            return {"__type__": name, "fields": value.to_dict()}
        return {"__type__": name, "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    raise TypeError(f"a job's argument cannot be a {name}")


def decode(data: Any) -> Any:
    """The value `encode` made `data` from; a type not in `_types()` is refused (CompressionError)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__path__" in data:
        return Path(data["__path__"])
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {k: decode(v) for k, v in data["__dict__"].items()}
    cls = _types().get(data.get("__type__", ""))
    if cls is None:
        raise CompressionError(f"a job's arguments name an unknown type {data.get('__type__')!r}")
    if cls.__name__ == "Recipe":
        return cls.from_dict(data["fields"])
    return cls(**{k: decode(v) for k, v in data["fields"].items()})


# ------------------------------------------------------------------------------------------------------ jobs

@dataclass
class Job:
    """One job as its row was when last read (`refresh`, `wait`), with what a page needs to show its progress."""

    key: str
    label: str
    task: str
    owner: str    # the session that started the job, the only one that may cancel it ("": none may)
    state: str    # queued / running / done / failed
    fraction: float
    step: str
    messages: list[str]
    error: str | None   # how it failed, in one line fit for the page
    pid: int | None     # the child process, once started
    worker: str | None
    attempts: int
    created: float
    queue: JobQueue = field(repr=False, compare=False)

    @property
    def running(self) -> bool:
        """Not ended yet: queued or running."""
        return self.state in ACTIVE

    def status_text(self) -> str:
        if self.state == "queued":
            return "queued: waiting for a free worker"
        return self.step or "starting…"

    def elapsed(self) -> float:
        return time.time() - self.created

    def refresh(self) -> Job:
        """This job with its row as it is now (a row gone or replaced by a new job of its key: unchanged)."""
        now = self.queue.get(self.key)
        if now is not None and now.created == self.created:
            self.__dict__.update({k: v for k, v in now.__dict__.items() if k != "queue"})
        return self

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the job to end, refreshing it; True once it has ended."""
        deadline = time.monotonic() + seconds
        while self.refresh().running and time.monotonic() < deadline:
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
        return not self.running


_COLUMNS = ("key", "label", "task", "owner", "state", "fraction", "step", "messages", "error", "pid", "worker",
            "attempts", "created")


class JobQueue:
    """The jobs table of a store: submitted by the app and the CLI, claimed and updated by workers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store._guard("opening the job queue"), store._connect() as db:  # noqa: SLF001 - the store's database
            for statement in _SCHEMA:
                db.execute(statement)

    @contextmanager
    def _write(self, doing: str) -> Iterator[Any]:
        with self.store._guard(doing), self.store._transaction() as db:  # noqa: SLF001
            yield db

    @contextmanager
    def _read(self, doing: str) -> Iterator[Any]:
        with self.store._guard(doing), self.store._connect() as db:  # noqa: SLF001
            yield db

    def _job(self, row: tuple) -> Job:
        values = dict(zip(_COLUMNS, row))
        values["messages"] = json.loads(values["messages"])
        return Job(**values, queue=self)

    def submit(self, key: str, label: str, task: str, args: tuple = (), owner: str = "",
               claims: Iterable[str] | None = None) -> Job:
        """Queue `task(*args, progress)` under `key` (a job of that key still queued or running is returned
        instead: joined, not run twice). `claims`: the models the job will produce (store keys; default those of
        the recipes among `args` not stored yet); a job waits while a running one claims any of them, then finds
        them stored instead of computing them twice."""
        text = json.dumps(encode(args))
        claims = _claims(args, self.store) if claims is None else claims
        with self._write("queueing a job") as db:
            row = db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE key = ?", (key,)).fetchone()
            if row is not None and row[_COLUMNS.index("state")] in ACTIVE:
                return self._job(row)
            db.execute("INSERT OR REPLACE INTO jobs (key, label, task, args, owner, state, claims, created) "
                       "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                       (key, label, task, text, owner, json.dumps(sorted(claims)), time.time()))
            db.execute("DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND key NOT IN (SELECT key FROM "
                       "jobs WHERE state NOT IN ('queued', 'running') ORDER BY created DESC LIMIT ?)", (_KEEP_FINISHED,))
        return self.get(key)

    def get(self, key: str) -> Job | None:
        """The latest job of `key` (running or ended), if any."""
        with self._read("reading a job") as db:
            row = db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._job(row)

    def jobs(self, keys: Iterable[str]) -> list[Job]:
        """The latest jobs of `keys` that exist, in one read."""
        keys = list(keys)
        with self._read("reading jobs") as db:
            rows = [row for i in range(0, len(keys), 500) for row in db.execute(
                f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE key IN ({','.join('?' * len(keys[i:i + 500]))})",
                keys[i:i + 500])]
        return [self._job(row) for row in rows]

    def active(self) -> list[Job]:
        """The jobs queued or running, oldest first."""
        with self._read("reading the jobs") as db:
            rows = db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE state IN ('queued', 'running') "
                              "ORDER BY created").fetchall()
        return [self._job(row) for row in rows]

    def cancel(self, key: str, owner: str) -> bool:
        """Stop the job of `key` if `owner` started it and it has not ended, and return True once it has ended
        (failed with the error "cancelled"); False, stopping nothing, for any other owner or an ended job."""
        job = self.get(key)
        if job is None or not job.running or not owner or job.owner != owner:
            return False
        self.cancel_all([key], owner)
        job.wait(_GRACE + 2 * HEARTBEAT + 1.0)  # a queued job has ended already: one read
        return True

    def cancel_all(self, keys: Iterable[str], owner: str) -> None:
        """Ask every job of `keys` that `owner` started and that has not ended to stop, without waiting: queued
        ones end at once, running ones within a second or two (their worker stops them)."""
        keys = list(keys)
        if not owner or not keys:
            return
        marks = ",".join("?" * len(keys))
        with self._write("cancelling jobs") as db:
            db.execute(f"UPDATE jobs SET state = 'failed', error = ?, finished = ? WHERE state = 'queued' AND "
                       f"owner = ? AND key IN ({marks})", (CANCELLED, time.time(), owner, *keys))
            db.execute(f"UPDATE jobs SET cancel = 1 WHERE state = 'running' AND owner = ? AND key IN ({marks})",
                       (owner, *keys))

    # --------------------------------------------------------------------------------- the workers' side

    def claim(self, worker: str, drivers: Collection[str] = (), driving: bool = False) -> tuple[Job, tuple] | None:
        """The oldest queued job that claims no model a running job claims, now running on `worker`, with its
        decoded arguments; None if none can start. Only a job of the `drivers` tasks if `driving`, only one of
        another task if not. An empty queue is seen by a read: an idle slot, polling, never takes the
        database's write lock."""
        with self._read("looking for a queued job") as db:
            if db.execute("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1").fetchone() is None:
                return None
        with self._write("claiming a job") as db:
            busy = set().union(*(json.loads(claims) for (claims,) in
                                 db.execute("SELECT claims FROM jobs WHERE state = 'running'")))
            queued = db.execute(f"SELECT {','.join(_COLUMNS)}, args, claims FROM jobs WHERE state = 'queued' "
                                "ORDER BY created")
            task = _COLUMNS.index("task")
            row = next((r[:-1] for r in queued if (r[task] in drivers) == driving
                        and not busy & set(json.loads(r[-1]))), None)
            if row is None:
                return None
            now = time.time()
            db.execute("UPDATE jobs SET state = 'running', worker = ?, started = ?, heartbeat = ?, attempts = "
                       "attempts + 1, step = '' WHERE key = ?", (worker, now, now, row[0]))
        job = self._job(row[:-1])
        job.state, job.worker, job.attempts = "running", worker, job.attempts + 1
        try:
            return job, decode(json.loads(row[-1]))
        except (CompressionError, TypeError, ValueError, KeyError) as exc:
            self.finish(job.key, f"The job's arguments cannot be read ({exc})")
            return None

    def update(self, key: str, fraction: float, step: str, new_messages: list[str], pid: int | None) -> bool:
        """Record a running job's progress and its sign of life; True if its cancel was asked for."""
        with self._write("recording a job's progress") as db:
            row = db.execute("SELECT messages, cancel FROM jobs WHERE key = ?", (key,)).fetchone()
            if row is None:
                return True
            messages = (json.loads(row[0]) + new_messages)[-_KEEP_MESSAGES:]
            db.execute("UPDATE jobs SET fraction = ?, step = ?, messages = ?, pid = ?, heartbeat = ? WHERE key = ?",
                       (fraction, step, json.dumps(messages), pid, time.time(), key))
        return bool(row[1])

    def finish(self, key: str, error: str | None) -> None:
        """End a running job: done (`error` None) or failed with its one line."""
        with self._write("recording a job's end") as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, finished = ?, fraction = CASE WHEN ? THEN 1 ELSE "
                       "fraction END WHERE key = ?", ("failed" if error else "done", error, time.time(),
                                                      error is None, key))

    def requeue(self, key: str, counted: bool = False) -> None:
        """Put a running job back in the queue: its attempt not counted (its worker stopped, it did not fail)
        unless `counted` (its process died). A job whose cancel was asked for ends cancelled instead."""
        with self._write("putting a job back in the queue") as db:
            db.execute("UPDATE jobs SET state = CASE WHEN cancel THEN 'failed' ELSE 'queued' END, error = CASE WHEN "
                       "cancel THEN ? END, finished = CASE WHEN cancel THEN ? END, worker = NULL, pid = NULL, "
                       "attempts = CASE WHEN ? THEN attempts ELSE MAX(attempts - 1, 0) END "
                       "WHERE key = ? AND state = 'running'", (CANCELLED, time.time(), counted, key))

    def beat(self, worker: str, slots: int) -> None:
        """Record that `worker` is alive, with its running jobs."""
        now = time.time()
        with self._write("recording a worker's sign of life") as db:
            db.execute("INSERT OR REPLACE INTO workers (id, pid, host, slots, heartbeat) VALUES (?, ?, ?, ?, ?)",
                       (worker, os.getpid(), socket.gethostname(), slots, now))
            db.execute("UPDATE jobs SET heartbeat = ? WHERE worker = ? AND state = 'running'", (now, worker))

    def leave(self, worker: str) -> None:
        with self._write("removing a worker") as db:
            db.execute("DELETE FROM workers WHERE id = ?", (worker,))

    def workers(self) -> int:
        """The slots of the workers alive now (a sign of life within STALE seconds, and, on this machine, their
        process there)."""
        with self._read("reading the workers") as db:
            rows = db.execute("SELECT id, slots FROM workers WHERE heartbeat > ?", (time.time() - STALE,)).fetchall()
        return sum(slots for worker, slots in rows if not _gone(worker))

    def recover(self) -> list[str]:
        """Jobs whose worker died (no sign of life for STALE seconds, or at once for a worker of this machine
        whose process is gone): queued again after a first attempt, failed after a second; the dead workers
        forgotten. Returns the keys recovered."""
        cutoff = time.time() - STALE
        with self._write("recovering the jobs of a dead worker") as db:
            rows = [(key, attempts) for key, attempts, heartbeat, worker in db.execute(
                    "SELECT key, attempts, heartbeat, worker FROM jobs WHERE state = 'running'").fetchall()
                    if heartbeat < cutoff or _gone(worker)]
            for key, attempts in rows:
                if attempts < 2:
                    db.execute("UPDATE jobs SET state = 'queued', worker = NULL, pid = NULL WHERE key = ?", (key,))
                else:
                    db.execute("UPDATE jobs SET state = 'failed', error = ?, finished = ? WHERE key = ?",
                               ("Its worker process died twice while running it", time.time(), key))
            db.execute("DELETE FROM workers WHERE heartbeat < ?", (cutoff,))
            for (worker,) in db.execute("SELECT id FROM workers").fetchall():
                if _gone(worker):
                    db.execute("DELETE FROM workers WHERE id = ?", (worker,))
        for key, attempts in rows:
            log.warning("job %s: its worker died; %s", key, "queued again" if attempts < 2 else "failed")
        return [key for key, _ in rows]


def _gone(worker: str | None) -> bool:
    """Whether the worker of id `worker` (host:pid:nonce) ran on this machine and its process is gone."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _claims(args: tuple, store: Store) -> set[str]:
    """The models a job on `args` will produce, not stored yet: those of each recipe among its arguments (a
    recipe, or a list of them)."""
    from compression.recipe import Recipe
    from compression.sweep import claims_of

    recipes = [a for arg in args for a in (arg if isinstance(arg, list) else [arg]) if isinstance(a, Recipe)]
    return set().union(*(claims_of(recipe, store) for recipe in recipes))


# --------------------------------------------------------------------------------------------------- workers

def time_limit(setting: str | None) -> float:
    """A job's time limit in seconds from the value of $COMPRESSION_JOB_TIMEOUT (`setting`; unset or empty:
    DEFAULT_TIMEOUT)."""
    if setting is None or not setting.strip():
        return DEFAULT_TIMEOUT
    try:
        seconds = float(setting)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise CompressionError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {setting!r}")
    return seconds


@dataclass(frozen=True)
class _Started:
    """The child's first word: how many torch threads it took."""

    threads: int


@dataclass(frozen=True)
class _Outcome:
    """The child's last word: its one-line error (None: the work succeeded) and, for a bug, its traceback;
    `died`: it never said it (killed, crashed), so the job may be asked once more."""

    error: str | None = None
    details: str = ""
    died: bool = False


@dataclass(frozen=True)
class _Step:
    """A progress event (a compression.train.Progress) as the child sends it: torch-free, so that reading it
    never makes the worker import torch (seconds of a core, taken from the jobs running beside it)."""

    stage: str
    message: str
    fraction: float
    epoch: int
    epochs: int
    loss: float | None
    accuracy: float | None

    @classmethod
    def of(cls, event: Any) -> _Step:
        return cls(event.stage, event.message, event.fraction, event.epoch, event.epochs, event.loss, event.accuracy)


class _Interrupted(Exception):
    """The worker is stopping: the job goes back to the queue."""


# Children are forked by a fork server: a single-threaded process started once, which has imported torch and
# the pipeline, so a job starts in milliseconds, not the seconds a spawned interpreter takes to import them.
# Not plain fork: a fork of a threaded process (the web server, a worker's slots) can deadlock.
_CONTEXT = multiprocessing.get_context("forkserver")
# The ONNX exporter's modules too: imported lazily by the first export, they cost each job ~1 s otherwise.
_CONTEXT.set_forkserver_preload(["compression.pipeline", "compression.sweep", "compression.tasks",
                                 "torch.onnx._internal.exporter._compat"])


def warm() -> None:
    """Start the fork server now and wait until it has imported torch and the pipeline (seconds), by forking
    one empty child from it, so that the first job starts at once."""
    child = _CONTEXT.Process(target=gc.collect, name="fork server warm-up")
    child.start()
    child.join()


class Worker:
    """Runs the queued jobs of a store, `slots` at a time, each in a child process; `tasks` is the table of
    the functions a job may name, `drivers` those of its tasks that run in driver slots (as many again)."""

    def __init__(self, store: Store, slots: int, tasks: Mapping[str, Task], idle: float | None = None,
                 submitting: threading.Lock | None = None, drivers: Collection[str] = ()) -> None:
        """`idle`: stop after that many seconds without a job (an embedded worker), deciding under `submitting`,
        the lock its process's submitters hold from queueing a job to seeing that a worker serves it."""
        self.queue = JobQueue(store)
        self.slots, self.tasks, self.drivers = slots, dict(tasks), frozenset(drivers)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.idle, self.submitting = idle, submitting or threading.Lock()
        self._busy, self._last_busy = 0, time.monotonic()
        self._threads: list[threading.Thread] = []

    def start(self) -> Worker:
        """Serve in threads of this process (returns at once); `stop` ends them."""
        self.queue.beat(self.id, self.slots)
        self._threads = [threading.Thread(target=self._slot, args=(driving,), daemon=True,
                                          name=f"worker {'driver ' if driving else ''}slot {i}")
                         for driving in ((False, True) if self.drivers else (False,)) for i in range(self.slots)]
        self._threads.append(threading.Thread(target=self._beat, name="worker heartbeat", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("worker %s: %d slot(s) on the store at %s", self.id, self.slots, self.queue.store.root)
        return self

    def stop(self) -> None:
        """Stop serving: running jobs' children are stopped and their jobs put back in the queue."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(_GRACE + 5.0)
        self.queue.leave(self.id)

    def _beat(self) -> None:
        while not self.stopping.wait(HEARTBEAT):
            try:
                self.queue.beat(self.id, self.slots)
                self.queue.recover()
                if self._idle_long_enough():
                    log.info("worker %s: idle for %s s, stopped", self.id, self.idle)
            except CompressionError as exc:  # the store unusable for a moment: the next beat tries again
                log.warning("worker %s: %s", self.id, exc)

    def _idle_long_enough(self) -> bool:
        """Whether the worker has stopped for having had nothing to do for `idle` seconds (the queue empty)."""
        if self.idle is None:
            return False
        if self._busy:
            self._last_busy = time.monotonic()
            return False
        with self.submitting:
            if time.monotonic() - self._last_busy < self.idle or any(j.state == "queued" for j in self.queue.active()):
                return False
            self.stopping.set()
            self.queue.leave(self.id)
            return True

    def _slot(self, driving: bool) -> None:
        while not self.stopping.is_set():
            try:
                claimed = self.queue.claim(self.id, self.drivers, driving)
            except CompressionError as exc:
                log.warning("worker %s: %s", self.id, exc)
                claimed = None
            if claimed is None:
                self.stopping.wait(_POLL)
                continue
            self._busy += 1
            try:
                self._run(*claimed)
            finally:
                self._busy -= 1
                self._last_busy = time.monotonic()

    def _run(self, job: Job, args: tuple) -> None:
        """Run one claimed job to its end, or back to the queue if the worker stops meanwhile."""
        fn = self.tasks.get(job.task)
        try:
            if fn is None:
                raise CompressionError(f"this worker has no task {job.task!r}")
            outcome = _Runner(self, job).run(fn, args, time_limit(os.environ.get(TIMEOUT_ENV)))
        except _Interrupted:
            self.queue.requeue(job.key)
            log.info("job %s: back in the queue (its worker stopped)", job.key)
            return
        except CompressionError as exc:
            outcome = _Outcome(str(exc))
        except Exception as exc:  # noqa: BLE001 - the supervision's own failure
            outcome = _Outcome(_unexpected(exc), traceback.format_exc())
        if outcome.died and job.attempts < 2:
            self.queue.requeue(job.key, counted=True)
            log.warning("job %s: %s; queued once more", job.key, outcome.error)
            return
        if outcome.details:
            log.error("job %s (%s) failed:\n%s", job.key, job.label, outcome.details)
        self.queue.finish(job.key, outcome.error)


def embedded_worker(jobs: JobQueue, embedded: Worker | None, slots: Callable[[], int], tasks: Mapping[str, Task],
                    drivers: Collection[str] = (), idle: float | None = None,
                    submitting: threading.Lock | None = None) -> Worker | None:
    """The worker slots this process embeds for the store of `jobs`: `embedded` while it serves, or while a
    worker elsewhere serves the store (`make run`'s, one started by hand); else new ones, `slots()` of them
    (asked only then), started with the other arguments as `Worker`'s."""
    if (embedded is None or embedded.stopping.is_set()) and jobs.workers() == 0:
        return Worker(jobs.store, slots(), tasks, idle, submitting, drivers).start()
    return embedded


class _Runner:
    """One job's child process, supervised: its progress relayed into the job's row (at most every _POLL
    seconds, each message kept), its cancel request and time limit obeyed."""

    def __init__(self, worker: Worker, job: Job) -> None:
        self.worker, self.job = worker, job
        self.pending: list[str] = []
        self.written = 0.0
        self.training: tuple[str, int, float, float] | None = None  # stage, epochs, when and how far it began

    def run(self, fn: Task, args: tuple, limit: float) -> _Outcome:
        """Run `fn(*args, progress)` in a child process and return how it ended. No process of the job
        outlives this."""
        receive, send = _CONTEXT.Pipe(duplex=False)
        child = _CONTEXT.Process(target=_child_main, name=f"job {self.job.key}",
                                 args=(send, fn, args, dict(os.environ), os.getcwd(), self.worker.slots))
        with receive:
            try:
                child.start()
            finally:
                send.close()  # the child holds the only writing end now: its exit ends the pipe
            self.job.pid = child.pid
            log.info("job %s: process %d started", self.job.key, child.pid)
            try:
                outcome = self._relay(receive, child, limit)
                child.join(_GRACE)  # it is exiting: it sent its outcome, or its end of the pipe closed
            finally:
                _stop(child)  # whatever is left of it, and of the processes it started
        log.info("job %s: process %d exited with code %s", self.job.key, child.pid, child.exitcode)
        return outcome or _Outcome(_ended_without_result(child.exitcode, self.job.attempts), died=True)

    def _relay(self, receive: Connection, child: BaseProcess, limit: float) -> _Outcome | None:
        deadline = time.monotonic() + limit
        self._write()
        while True:
            if self.worker.stopping.is_set():
                _stop(child)
                raise _Interrupted
            left = deadline - time.monotonic()
            if left <= 0:
                _stop(child)
                log.warning("job %s: stopped at its time limit of %s s", self.job.key, limit)
                return _Outcome(f"Stopped: it ran past its time limit of {_duration(limit)} ({TIMEOUT_ENV}, in "
                                "seconds)")
            if time.monotonic() - self.written >= _POLL and self._write():
                _stop(child)
                return _Outcome(CANCELLED)
            if not receive.poll(min(_POLL, left)):
                continue
            try:
                message = receive.recv()
            except EOFError:  # the child is gone without a word: killed, or crashed in native code
                self._write()
                return None
            if isinstance(message, _Outcome):
                self._write()
                return message
            if isinstance(message, _Started):
                log.info("job %s: %d torch thread(s)", self.job.key, message.threads)
            else:
                self._progress(message)

    def _progress(self, event: _Step) -> None:
        """Take one of the work's progress events."""
        if event.message:
            self.pending.append(f"**{event.stage}** — {event.message}")
            self.job.step = f"{event.stage}: {event.message}"
        else:
            self.job.fraction = min(max(event.fraction, 0.0), 1.0)
            loss = f" · loss {event.loss:.3f}" if event.loss is not None else ""
            accuracy = f" · train accuracy {event.accuracy:.1%}" if event.accuracy is not None else ""
            self.job.step = f"{event.stage}: epoch {event.epoch}/{event.epochs}{loss}{accuracy}{self._left(event)}"

    def _left(self, event: _Step) -> str:
        """' · about 40 s left' of a training stage, from its pace so far (a stage that stops early on a
        validation plateau ends sooner), or '' until a few seconds of it have passed."""
        now = time.monotonic()
        if self.training is None or self.training[:2] != (event.stage, event.epochs):
            self.training = (event.stage, event.epochs, now, event.fraction)
        _, _, began, start = self.training
        done, spent = event.fraction - start, now - began
        if done <= 0 or spent < 3:
            return ""
        return f" · about {_duration(spent / done * (1 - event.fraction))} left"

    def _write(self) -> bool:
        """The job's progress into its row; True if its cancel was asked for."""
        self.written = time.monotonic()
        cancel = self.worker.queue.update(self.job.key, self.job.fraction, self.job.step, self.pending, self.job.pid)
        self.pending = []
        return cancel


def _stop(child: BaseProcess) -> None:
    """End `child` and every process it started (its process group): SIGTERM first, so that the work's
    `finally` blocks remove their temporary files, then SIGKILL whatever is left after a grace period. Cheap
    for a child that has ended already."""
    _signal(child, signal.SIGTERM)
    child.join(_GRACE)
    _signal(child, signal.SIGKILL)
    child.join()


def _signal(child: BaseProcess, signum: int) -> None:
    """Send `signum` to the child's process group, or to the child alone if it has no group (yet)."""
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:  # no such group: the child had not made it yet, or all of it is gone
        if child.exitcode is None:
            os.kill(child.pid, signum)


def _ended_without_result(exitcode: int | None, attempts: int) -> str:
    """A child's end without an outcome, in one line with its exit code (and signal), on its `attempts`-th
    try."""
    how = f", {signal.Signals(-exitcode).name}" if exitcode is not None and exitcode < 0 else ""
    again = " twice" if attempts > 1 else ""
    return f"The job's process ended without a result{again} (exit code {exitcode}{how})"


def _unexpected(exc: BaseException) -> str:
    """A bug as one line for the page; its traceback is in the worker's log."""
    first = str(exc).splitlines()[0] if str(exc).strip() else ""
    return f"Unexpected error ({type(exc).__name__}){': ' + first if first else ''} — details in the server log"


def _duration(seconds: float) -> str:
    """`seconds` in the unit a person reads best: '2 s', '1.5 min', '4 h'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def _child_main(send: Connection, fn: Task, args: tuple, environ: dict[str, str], cwd: str, slots: int) -> None:
    """The child process: the worker's environment and folder as they are now (the fork server's are as they
    were when it started), a process group of its own (a stop reaches every process it starts, e.g. a search's
    pool), SIGTERM as SystemExit (its `finally` blocks run), torch on the free cores (at most its share of a
    worker with `slots` slots), then `fn(*args, progress)`; its progress and outcome go to the supervisor
    through `send`."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    threading.Thread(target=_orphaned, args=(os.getppid(),), name="parent watch", daemon=True).start()
    with send:
        try:
            from compression.train import use_free_cores  # torch: imported in the child, not in the worker

            send.send(_Started(use_free_cores(slots)))
            fn(*args, lambda event: send.send(_Step.of(event)))
            outcome = _Outcome()
        except CompressionError as exc:
            outcome = _Outcome(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: one line for the page, its traceback for the log
            outcome = _Outcome(_unexpected(exc), traceback.format_exc())
        send.send(outcome)
    # The job ends when its process has exited, and the interpreter's last garbage collection over torch's
    # objects takes over a second: frozen objects are left to the operating system instead (~0.3 s).
    gc.freeze()


def _orphaned(parent: int) -> None:
    """In the child: SIGTERM itself once its parent (the fork server, which ends with its worker) is gone, so
    that a killed worker leaves no job running that nobody supervises."""
    while os.getppid() == parent:
        time.sleep(HEARTBEAT)
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_on_terminate(signum: int, _frame: Any) -> None:
    """SIGTERM (a cancel, the time limit) in the child: exit through SystemExit, so `finally` blocks run."""
    raise SystemExit(128 + signum)


def default_slots() -> int:
    """Jobs a worker runs at once by default: one a core."""
    return os.cpu_count() or 1


def serve(store: Store, slots: int, tasks: Mapping[str, Task], parent: int | None = None,
          drivers: Collection[str] = ()) -> None:
    """Run a worker on `store` until SIGINT/SIGTERM, or until the process `parent` is gone (the server that
    started it, killed): `python -m compression worker`. Its running jobs go back to the queue."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    warm()  # before the worker says it serves the store: its first jobs start at once, not seconds later
    worker = Worker(store, slots, tasks, drivers=drivers).start()
    try:
        while not stopping.wait(HEARTBEAT):
            if parent is not None and os.getppid() != parent:
                log.warning("worker %s: the process that started it (%d) is gone: stopping", worker.id, parent)
                break
    finally:
        worker.stop()
