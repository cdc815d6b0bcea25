"""Test helper: kill the process of a job a real worker runs, found in the store's jobs table."""

import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path


def kill_a_job(home: Path, key: str | None = None, not_pid: int | None = None, timeout: float = 300) -> tuple[str, int]:
    """SIGKILL the process of a running job of the store at `home` (of `key` if given, once its process is
    not `not_pid`); its key and pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(home / "results.sqlite")) as db:
            running = db.execute("SELECT key, pid FROM jobs WHERE state = 'running' AND pid IS NOT NULL").fetchall()
        for found, pid in running:
            if key in (None, found) and pid != not_pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # it ended as we looked
                    continue
                return found, pid
        time.sleep(0.1)
    raise AssertionError(f"no running job {key or ''} to kill within {timeout} s")


def attempts(home: Path, key: str) -> tuple[str, int]:
    """The state and attempt count of the job of `key`."""
    with closing(sqlite3.connect(home / "results.sqlite")) as db:
        return db.execute("SELECT state, attempts FROM jobs WHERE key = ?", (key,)).fetchone()
