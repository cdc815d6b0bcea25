"""Experiment store: SQLite (WAL) in the data folder, one row per key, artifacts in a folder beside it.

A write is atomic: artifacts are copied into a private temporary folder, renamed into place, and only then is
the row committed. A crash at any point leaves either the old state or the new one: never a row without its
files. The first complete row of a key wins: a second process that computed the same recipe keeps what is
stored (the runs are deterministic) and deletes only its own copy, so an artifact another process may be
reading is never deleted under it. A row that cannot be read (not JSON, not a valid Result, artifacts gone)
is moved to the quarantine table with the reason, never silently dropped; `python -m compression store check
--repair` reports and mends the rest (compression/health.py). Every failure of the disk or the database is
one line (a StoreError) naming what failed and that nothing was half-stored.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compression import settings
from compression.errors import CompressionError
from compression.result import Result

_SCHEMA = ("""
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
)""", """
CREATE TABLE IF NOT EXISTS quarantine (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL
)""")
DATABASE = "results.sqlite"
REPAIR = "python -m compression store check --repair"
STAGING = ".tmp-"  # prefix of a write's private folder until it is renamed into place
log = logging.getLogger("compression.store")


class StoreError(CompressionError):
    """The store's folder or database could not be used; the message says what failed and what to do."""


class DamagedDatabase(StoreError):
    """The store's SQLite file is not a readable database."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """Results and analyses keyed by recipe hash, with their artifact files."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else settings.home()
        self.artifacts = self.root / "artifacts"
        with self._guard("opening the store"):
            self.artifacts.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                _use_wal(db)
                for statement in _SCHEMA:
                    db.execute(statement)

    # ------------------------------------------------------------------------------------------ failures

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn a disk or database failure while `doing` into one StoreError line."""
        try:
            yield
        except StoreError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._database_error(doing, exc) from None
        except OSError as exc:
            raise self._disk_error(doing, exc) from None

    def _disk_error(self, doing: str, exc: OSError) -> StoreError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return StoreError(f"no space left on the device of {self.root} while {doing}: nothing was stored, what "
                              "was stored before is unchanged")
        if isinstance(exc, (FileExistsError, NotADirectoryError)) or (self.root.exists() and not self.root.is_dir()):
            return StoreError(f"COMPRESSION_HOME {self.root} is not a folder: point COMPRESSION_HOME at a folder")
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            return StoreError(f"COMPRESSION_HOME {self.root} is not writable ({exc.strerror}): point "
                              "COMPRESSION_HOME at a folder you can write")
        return StoreError(f"the store at {self.root} failed while {doing}: {exc.strerror or exc}")

    def _database_error(self, doing: str, exc: sqlite3.DatabaseError) -> StoreError:
        text = str(exc)
        if "full" in text:
            return self._disk_error(doing, OSError(errno.ENOSPC, text))
        if isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text):
            return self._disk_error(doing, PermissionError(errno.EACCES, text))
        return DamagedDatabase(f"the store's database {self.root / DATABASE} is damaged ({text}) while {doing}: "
                               f"`{REPAIR}` sets it aside and starts a new one")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode: transactions are explicit (`_transaction`)."""
        with closing(sqlite3.connect(self.root / DATABASE, timeout=30, isolation_level=None)) as db:
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the database's write lock from its start (BEGIN IMMEDIATE): two
        writers of one key decide in turn."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --------------------------------------------------------------------------------------------- writes

    def _stage(self, key: str, files: dict[str, Path]) -> tuple[str, dict[str, str]]:
        """Copy `files` into a new artifact folder of their own (staged privately, then renamed into place);
        its name and the artifact paths relative to the store root."""
        folder = f"{key}-{uuid.uuid4().hex[:12]}"
        staging = self.artifacts / f"{STAGING}{folder}"
        staging.mkdir()
        try:
            for name, path in files.items():
                shutil.copy2(path, staging / name)
            staging.rename(self.artifacts / folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder, {name: f"artifacts/{folder}/{name}" for name in files}

    def put(self, kind: str, key: str, payload: dict[str, Any],
            files: dict[str, Path] | None = None) -> dict[str, Any]:
        """Store `payload` under (kind, key) with copies of `files` (name -> path), named in the payload's
        "artifacts" (paths relative to the store root), and return the payload stored. If a complete row of the
        key is stored already (another process finished first), that row is kept and returned, and this copy
        is discarded; a stored row whose artifacts are gone is quarantined and replaced."""
        payload = dict(payload)
        with self._guard(f"storing the {kind} {key}"):
            folder = None
            if files:
                folder, payload["artifacts"] = self._stage(key, files)
            try:
                with self._transaction() as db:
                    row = db.execute("SELECT payload FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
                    existing = self._readable(db, kind, key, row[0]) if row else None
                    if existing is not None:
                        kept = existing
                    else:
                        db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)",
                                   (kind, key, payload.get("dataset", ""), payload.get("model", ""),
                                    json.dumps(payload), _now()))
                        kept = payload
            except BaseException:
                if folder is not None:
                    shutil.rmtree(self.artifacts / folder, ignore_errors=True)
                raise
            if kept is not payload and folder is not None:
                shutil.rmtree(self.artifacts / folder, ignore_errors=True)  # nobody else names this copy
            return kept

    def put_result(self, result: Result, files: dict[str, Path]) -> Result:
        """Store a Result with its artifacts; returns the stored Result (another process's, if it finished the
        same recipe first), artifact paths relative to the store root."""
        return Result.from_dict(self.put("result", result.recipe_hash, result.to_dict(), files))

    # ---------------------------------------------------------------------------------------------- reads

    def _readable(self, db: sqlite3.Connection, kind: str, key: str, text: str) -> dict[str, Any] | None:
        """The payload of a row, or None after moving the row to the quarantine table (inside `db`'s
        transaction) if it is not JSON, not a valid Result, or names artifacts that are gone."""
        reason = damage(kind, text, self.root)
        if reason is None:
            return json.loads(text)
        db.execute("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?)", (kind, key, text, reason, _now()))
        db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))
        log.warning("quarantined the %s %s: %s (it is recomputed when needed; `%s` lists the quarantine)",
                    kind, key, reason, REPAIR.removesuffix(" --repair"))
        return None

    def _read(self, query: str, args: tuple) -> list[tuple]:
        with self._guard("reading the store"), self._connect() as db:
            return db.execute(query, args).fetchall()

    def _healthy(self, rows: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """The payloads of `rows` (kind, key, payload), the damaged ones quarantined and left out."""
        payloads, damaged = [], []
        for kind, key, text in rows:
            if damage(kind, text, self.root) is None:
                payloads.append(json.loads(text))
            else:
                damaged.append((kind, key))
        if damaged:
            with self._guard("quarantining damaged rows"), self._transaction() as db:
                for kind, key in damaged:
                    row = db.execute("SELECT payload FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
                    if row is not None:
                        self._readable(db, kind, key, row[0])
        return payloads

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The payload stored under (kind, key), or None (also for a damaged row, which is quarantined)."""
        rows = self._read("SELECT kind, key, payload FROM records WHERE kind = ? AND key = ?", (kind, key))
        payloads = self._healthy(rows)
        return payloads[0] if payloads else None

    def list(self, kind: str, dataset: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """All readable payloads of `kind`, oldest first, optionally for one dataset / model."""
        query, args = "SELECT kind, key, payload FROM records WHERE kind = ?", [kind]
        for column, value in (("dataset", dataset), ("model", model)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        return self._healthy(self._read(query + " ORDER BY created_at, rowid", tuple(args)))

    def get_result(self, recipe_hash: str) -> Result | None:
        """The stored Result for a recipe hash, if it and all its artifacts are present."""
        payload = self.get("result", recipe_hash)
        if payload is None:
            return None
        result = Result.from_dict(payload)
        result.from_store = True
        return result

    def results(self, dataset: str | None = None, model: str | None = None) -> list[Result]:
        """Every stored Result (optionally of one data set / model) with its artifacts present, oldest first."""
        results = [Result.from_dict(p) for p in self.list("result", dataset, model)]
        for result in results:
            result.from_store = True
        return results

    def rows(self) -> list[tuple[str, str, str]]:
        """Every row as stored (kind, key, payload text), damaged or not, without quarantining anything."""
        return self._read("SELECT kind, key, payload FROM records ORDER BY created_at, rowid", ())

    def path(self, result: Result, name: str) -> Path:
        """Absolute path of one of a result's artifacts."""
        return self.root / result.artifacts[name]

    def quarantine(self, kind: str, key: str, reason: str) -> None:
        """Move the row (kind, key) to the quarantine table with `reason` (its artifact is unusable: e.g. an
        ONNX file that does not load, weights that do not fit); the next run that needs it recomputes it."""
        with self._guard(f"quarantining the {kind} {key}"), self._transaction() as db:
            row = db.execute("SELECT payload FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
            if row is not None:
                db.execute("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?)", (kind, key, row[0], reason, _now()))
                db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))
                log.warning("quarantined the %s %s: %s (recomputed now)", kind, key, reason)

    def quarantined(self) -> list[dict[str, str]]:
        """The quarantined rows: kind, key, reason, when (their payloads are kept in the table)."""
        rows = self._read("SELECT kind, key, reason, quarantined_at FROM quarantine ORDER BY rowid", ())
        return [dict(zip(("kind", "key", "reason", "quarantined_at"), row)) for row in rows]

    # ---------------------------------------------------------------------------------------- housekeeping

    @contextmanager
    def workdir(self) -> Iterator[Path]:
        """A private work folder inside the store for one run (removed after it; one a killed run leaves is
        removed by the next `clean_orphans`)."""
        path = self.root / "work" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        with self._guard("making a work folder"):
            path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def orphans(self, min_age: float) -> list[Path]:
        """Folders no row names and no live run owns, untouched for `min_age` seconds: artifact folders of
        quarantined or abandoned writes, staging folders and work folders of killed runs."""
        rows = self._read("SELECT payload FROM records UNION ALL SELECT payload FROM quarantine", ())
        named = {Path(rel).parts[1] for (text,) in rows for rel in artifact_paths(text).values()
                 if len(Path(rel).parts) > 1}
        cutoff = time.time() - min_age
        found = [p for p in _children(self.artifacts) if p.name not in named and _older(p, cutoff)]
        found += [p for p in _children(self.root / "work") if not _alive(p.name) and _older(p, cutoff)]
        return found

    def clean_orphans(self, min_age: float = 3600.0) -> list[Path]:
        """Delete `orphans(min_age)` and return them."""
        found = self.orphans(min_age)
        for path in found:
            shutil.rmtree(path, ignore_errors=True)
        return found


def _use_wal(db: sqlite3.Connection, patience: float = 30.0) -> None:
    """Put the database in WAL mode (once for all connections). Switching needs the database to itself, which
    the busy timeout does not wait for: two processes opening a new store at once retry until one has done it."""
    deadline = time.monotonic() + patience
    while db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def damage(kind: str, text: str, root: Path) -> str | None:
    """Why a stored row cannot be used (not JSON, not a valid Result, an artifact gone), or None."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(payload, dict):
        return "not a JSON object"
    if kind == "result":
        try:
            Result.from_dict(payload)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            return f"not a valid Result ({type(exc).__name__}: {exc})".splitlines()[0]
    missing = [rel for rel in artifact_paths(text).values() if not (root / rel).is_file()]
    return f"artifact {missing[0]} is missing" if missing else None


def artifact_paths(text: str) -> dict[str, str]:
    """The artifacts a stored payload names (name -> path relative to the store root); none if unreadable."""
    try:
        artifacts = json.loads(text).get("artifacts", {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in artifacts.items()} if isinstance(artifacts, dict) else {}


def _children(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


def _alive(work_name: str) -> bool:
    """Whether the process that owns a work folder ('<pid>-<id>') still runs."""
    pid = work_name.partition("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
