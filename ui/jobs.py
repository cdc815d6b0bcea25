"""Background jobs: long work (training, a run, a sweep) in a child process of the server, never in a page's
script thread, so that a rerun (a widget changed, another page opened, the browser reloaded) interrupts the
page, not the work, and the result is still measured and stored.

Each job has a thread in the server that supervises its child: it waits for the job's turn, starts the child,
relays the child's progress events into the Job, and records how it ended. The work runs in a process, not in
that thread, so that it can be stopped: past its time limit ($COMPRESSION_JOB_TIMEOUT) or when the session that
started it cancels it, the child and every process it started are terminated, and a bug, a hang or a crash of
the work never reaches the server or the jobs queued behind it. Every way a job ends is one line in
`Job.error`; a bug's traceback goes to the server log.

Jobs run one at a time per server process, in the order they were asked for (two trainings at once would share
the cores and time each other's latency); a job for a key that is already running is joined, not started
twice. No Streamlit here: what a page shows of a job is ui/progress.py."""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from compression import settings
from compression.errors import CompressionError

ProgressFn = Callable[[Any], None]  # compression.train's, without importing torch here
log = logging.getLogger("compression.ui")

TIMEOUT_ENV = "COMPRESSION_JOB_TIMEOUT"
DEFAULT_TIMEOUT = 4 * 3600.0  # seconds: room for a long fine-tuning of the largest model on a slow machine
CANCELLED = "cancelled"
_POLL = 0.2   # seconds between a supervisor's looks at its job's cancel request and time limit
_GRACE = 5.0  # seconds a stopped child has to run its `finally` blocks (temporary files) before it is killed


@dataclass(frozen=True)
class _Started:
    """The child's first word: how many torch threads it took."""

    threads: int


@dataclass(frozen=True)
class _Outcome:
    """The child's last word: its one-line error (None: the work succeeded) and, for a bug, its traceback."""

    error: str | None = None
    details: str = ""


@dataclass
class Job:
    """One piece of long work in a child process, with what a page needs to show its progress."""

    key: str
    label: str
    owner: str = ""  # the session that started the job, the only one that may cancel it ("": none may)
    done: threading.Event = field(default_factory=threading.Event)
    messages: list[str] = field(default_factory=list)
    fraction: float = 0.0
    step: str = ""
    state: str = "queued"
    error: str | None = None  # how it failed, in one line fit for the page
    pid: int | None = None    # the child process, once started
    created: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)  # cancel asked for

    def progress(self, event: Any) -> None:
        """Take one of the work's progress events (a compression.train.Progress)."""
        if event.message:
            self.messages.append(f"**{event.stage}** — {event.message}")
            self.step = f"{event.stage}: {event.message}"
        else:
            self.fraction = min(max(event.fraction, 0.0), 1.0)
            loss = f" · loss {event.loss:.3f}" if event.loss is not None else ""
            accuracy = f" · train accuracy {event.accuracy:.1%}" if event.accuracy is not None else ""
            self.step = f"{event.stage}: epoch {event.epoch}/{event.epochs}{loss}{accuracy}"

    def status_text(self) -> str:
        if self.state == "queued":
            return "queued: waiting for another experiment on this server to finish"
        return self.step or "starting…"

    def elapsed(self) -> float:
        return time.monotonic() - self.created

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def fail(self, error: str) -> None:
        """End in failure with the one-line `error`."""
        self.error, self.state = error, "failed"


_JOBS: dict[str, Job] = {}
_JOBS_LOCK = threading.Lock()
_COMPUTE = threading.Lock()  # one experiment at a time in this server process: held by the job that runs
_QUEUE: list[Job] = []       # the jobs waiting for their turn, in the order they were asked for
_TURN = threading.Condition()  # guards _QUEUE and taking _COMPUTE; notified whenever a turn may have come
_KEEP_FINISHED = 200
# Children are forked by a fork server: a single-threaded process started once, which has imported torch and
# the pipeline, so a job starts in milliseconds, not the seconds a spawned interpreter takes to import them.
# Not plain fork: a fork of the threaded web server can deadlock.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["compression.pipeline", "compression.sweep", "ui.tasks"])


def _scoped(key: str) -> str:
    """`key` within the store this process writes to now ($COMPRESSION_HOME): a recipe's job in one store is
    not another store's (one process serves one store, but a test run moves through several)."""
    return f"{settings.home()}|{key}"


def warm() -> None:
    """Start the fork server now (it takes seconds: it imports torch), so that the first job starts at once."""
    from multiprocessing import forkserver

    forkserver.ensure_running()


def find_job(key: str) -> Job | None:
    """The latest job started under `key` for the current store in this server process (running or finished),
    if any."""
    with _JOBS_LOCK:
        return _JOBS.get(_scoped(key))


def start_job(key: str, label: str, fn: Callable[..., Any], *args: Any, owner: str = "") -> Job:
    """Run `fn(*args, progress)` in a child process under `key`, once the jobs asked for before it have ended;
    a job of that key still running is returned instead of starting a second one. `fn` is a module-level
    function and `args` are picklable (the child imports `fn` by name and unpickles `args`);
    `owner` may cancel the job. Its time limit is $COMPRESSION_JOB_TIMEOUT as it is now."""
    with _JOBS_LOCK:
        job = _JOBS.get(_scoped(key))
        if job is not None and job.running:
            return job
        job = _JOBS[_scoped(key)] = Job(key, label, owner)
        finished = [k for k, j in _JOBS.items() if not j.running]
        for old in finished[:max(0, len(finished) - _KEEP_FINISHED)]:
            del _JOBS[old]
        with _TURN:
            _QUEUE.append(job)
    limit = os.environ.get(TIMEOUT_ENV)
    threading.Thread(target=_supervise, args=(job, fn, args, limit), name=f"job {key}", daemon=True).start()
    return job


def cancel(key: str, owner: str) -> bool:
    """Stop the running job of `key` if `owner` started it, and return True once it has ended (failed with the
    error "cancelled", the queue moving on); False, stopping nothing, for any other owner or no running job."""
    job = find_job(key)
    if job is None or not job.running or not owner or job.owner != owner:
        return False
    _ask_to_stop(job)
    job.done.wait(_GRACE + 1.0)
    return True


def _ask_to_stop(job: Job) -> None:
    """Have `job` stopped by its supervisor: at once if it waits for its turn, within _POLL if it runs."""
    job.stop.set()
    with _TURN:
        _TURN.notify_all()


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


def _supervise(job: Job, fn: Callable[..., Any], args: tuple, limit: str | None) -> None:
    """The job's thread in the server: wait for the job's turn, run it in a child process, record its end."""
    try:
        if not _wait_turn(job):
            job.fail(CANCELLED)
            return
        try:
            job.state = "running"
            _record(job, _run_child(job, fn, args, time_limit(limit)))
        finally:
            with _TURN:
                _COMPUTE.release()
                _TURN.notify_all()
    except CompressionError as exc:
        job.fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - the supervision's own failure, e.g. arguments that cannot pickle
        job.fail(_unexpected(exc))
        log.exception("job %s could not run", job.key)
    finally:
        job.done.set()


def _wait_turn(job: Job) -> bool:
    """Wait until every job asked for before this one has ended, then hold _COMPUTE (True); False, not holding
    it, if the job was cancelled while it waited."""
    with _TURN:
        while not job.stop.is_set() and (_QUEUE[0] is not job or _COMPUTE.locked()):
            _TURN.wait()
        _QUEUE.remove(job)
        _TURN.notify_all()  # the next in line may be at the head now
        if job.stop.is_set():
            return False
        return _COMPUTE.acquire()


def _run_child(job: Job, fn: Callable[..., Any], args: tuple, limit: float) -> _Outcome:
    """Run `fn(*args, progress)` in a child process, relaying its progress into `job`, and return how it ended.
    The time limit counts from the child's start (its imports too). No process of the job outlives this."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child_main, args=(send, fn, args, dict(os.environ), os.getcwd()),
                             name=f"job {job.key}")
    with receive:
        try:
            child.start()
        finally:
            send.close()  # the child holds the only writing end now: its exit ends the pipe
        job.pid = child.pid
        log.info("job %s: process %d started", job.key, child.pid)
        try:
            outcome = _relay(job, receive, child, limit)
            child.join(_GRACE)  # it is exiting: it sent its outcome, or its end of the pipe closed
        finally:
            _stop(child)  # whatever is left of it, and of the processes it started
    log.info("job %s: process %d exited with code %s", job.key, child.pid, child.exitcode)
    return outcome or _Outcome(_ended_without_result(child.exitcode))


def _relay(job: Job, receive: Connection, child: BaseProcess, limit: float) -> _Outcome | None:
    """Relay the child's messages into `job` until its outcome arrives, or until the child is cancelled or runs
    `limit` seconds (then stopped, and the outcome says so); None if it ended without an outcome."""
    deadline = time.monotonic() + limit
    while True:
        if job.stop.is_set():
            _stop(child)
            return _Outcome(CANCELLED)
        left = deadline - time.monotonic()
        if left <= 0:
            _stop(child)
            log.warning("job %s: stopped at its time limit of %s s", job.key, limit)
            return _Outcome(f"Stopped: it ran past its time limit of {_duration(limit)} "
                            f"({TIMEOUT_ENV}, in seconds)")
        if not receive.poll(min(_POLL, left)):
            continue
        try:
            message = receive.recv()
        except EOFError:  # the child is gone without a word: killed, or crashed in native code
            return None
        if isinstance(message, _Outcome):
            return message
        if isinstance(message, _Started):
            log.info("job %s: %d torch thread(s), one a free core", job.key, message.threads)
        else:
            job.progress(message)


def _record(job: Job, outcome: _Outcome) -> None:
    """Set the job's end from the child's `outcome`; a bug's traceback goes to the server log."""
    if outcome.error is None:
        job.state = "done"
        return
    if outcome.details:
        log.error("job %s (%s) failed:\n%s", job.key, job.label, outcome.details)
    job.fail(outcome.error)


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


def _ended_without_result(exitcode: int | None) -> str:
    """A child's end without an outcome, in one line with its exit code (and signal)."""
    how = f", {signal.Signals(-exitcode).name}" if exitcode is not None and exitcode < 0 else ""
    return f"The job's process ended without a result (exit code {exitcode}{how})"


def _unexpected(exc: BaseException) -> str:
    """A bug as one line for the page; its traceback is in the server log."""
    first = str(exc).splitlines()[0] if str(exc).strip() else ""
    return f"Unexpected error ({type(exc).__name__}){': ' + first if first else ''} — details in the server log"


def _duration(seconds: float) -> str:
    """`seconds` in the unit a person reads best: '2 s', '1.5 min', '4 h'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def _child_main(send: Connection, fn: Callable[..., Any], args: tuple, environ: dict[str, str], cwd: str) -> None:
    """The child process: the server's environment and folder as they are now (the fork server's are as they
    were when it started), a process group of its own (a stop reaches every process it starts, e.g. a sweep's
    workers), SIGTERM as SystemExit (its `finally` blocks run), torch on the free cores, then
    `fn(*args, progress)`; its progress and outcome go to the supervisor through `send`."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    with send:
        try:
            from compression.train import use_free_cores  # torch: imported in the child, not in the server

            send.send(_Started(use_free_cores()))
            fn(*args, send.send)
            outcome = _Outcome()
        except CompressionError as exc:
            outcome = _Outcome(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: one line for the page, its traceback for the log
            outcome = _Outcome(_unexpected(exc), traceback.format_exc())
        send.send(outcome)
    # The job ends when its process has exited, and the interpreter's last garbage collection over torch's
    # objects takes over a second: frozen objects are left to the operating system instead (~0.3 s).
    gc.freeze()


def _exit_on_terminate(signum: int, _frame: Any) -> None:
    """SIGTERM (a cancel, the time limit) in the child: exit through SystemExit, so `finally` blocks run."""
    raise SystemExit(128 + signum)


def _stop_all() -> None:
    """At the server's exit, stop every running job: multiprocessing would otherwise wait for their children
    (a sweep's child cannot be a daemon: it starts processes of its own)."""
    running = [job for job in list(_JOBS.values()) if job.running]
    for job in running:
        _ask_to_stop(job)
    for job in running:
        job.done.wait(_GRACE + 1.0)


# registered after multiprocessing's own exit handler (multiprocessing.connection imported it): atexit runs the
# later one first, so the children are stopped before multiprocessing waits for them
atexit.register(_stop_all)
