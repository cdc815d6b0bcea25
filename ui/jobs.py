"""Background jobs: long work (training, a run, a sweep) in a thread of the server process, never in a page's
script thread, so that a rerun (a widget changed, another page opened, the browser reloaded) interrupts the
page, not the work, and the result is still measured and stored. Jobs run one at a time per server process
(torch's random generator is process-wide: two trainings at once would not repeat), in the order they were
asked for; a job for a key that is already running is joined, not started twice. No Streamlit here: what a
page shows of a job is ui/progress.py."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compression import settings
from compression.errors import CompressionError

ProgressFn = Callable[[Any], None]  # compression.train's, without importing torch here
log = logging.getLogger("compression.ui")


@dataclass
class Job:
    """One piece of long work in a background thread, with what a page needs to show its progress."""

    key: str
    label: str
    work: Callable[[ProgressFn], Any] | None
    done: threading.Event = field(default_factory=threading.Event)
    messages: list[str] = field(default_factory=list)
    fraction: float = 0.0
    step: str = ""
    state: str = "queued"
    error: str | None = None           # a CompressionError's one-line message
    crash: BaseException | None = None  # anything else (a bug): re-raised in the page that follows the job
    created: float = field(default_factory=time.monotonic)

    def progress(self, event: Any) -> None:
        """The ProgressFn the work reports to (a compression.train.Progress event)."""
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

    def run(self) -> None:
        try:
            with _COMPUTE:
                self.state = "running"
                from compression.train import use_free_cores  # torch: imported in the job's thread
                log.info("job %s: %d torch thread(s), one a free core", self.key, use_free_cores())
                self.work(self.progress)
            self.state = "done"
        except CompressionError as exc:
            self.error, self.state = str(exc), "failed"
        except BaseException as exc:  # noqa: BLE001 - shown by the page that follows the job
            self.crash, self.error, self.state = exc, f"{type(exc).__name__}: {exc}", "failed"
            log.error("job %s failed:\n%s", self.key, traceback.format_exc())
        finally:
            self.work = None
            self.done.set()


_JOBS: dict[str, Job] = {}
_JOBS_LOCK = threading.Lock()
_COMPUTE = threading.Lock()  # one experiment at a time in this server process
_KEEP_FINISHED = 200


def _scoped(key: str) -> str:
    """`key` within the store this process writes to now ($COMPRESSION_HOME): a recipe's job in one store is
    not another store's (one process serves one store, but a test run moves through several)."""
    return f"{settings.home()}|{key}"


def find_job(key: str) -> Job | None:
    """The latest job started under `key` for the current store in this server process (running or finished),
    if any."""
    with _JOBS_LOCK:
        return _JOBS.get(_scoped(key))


def start_job(key: str, label: str, work: Callable[[ProgressFn], Any]) -> Job:
    """Run `work(progress)` in a background thread under `key`; a job of that key still running is returned
    instead of starting a second one."""
    with _JOBS_LOCK:
        job = _JOBS.get(_scoped(key))
        if job is not None and job.running:
            return job
        job = _JOBS[_scoped(key)] = Job(key, label, work)
        finished = [k for k, j in _JOBS.items() if not j.running]
        for old in finished[:max(0, len(finished) - _KEEP_FINISHED)]:
            del _JOBS[old]
    threading.Thread(target=job.run, name=f"job {key}", daemon=True).start()
    return job
