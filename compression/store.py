"""Experiment store: SQLite (WAL) in the data folder, one row per key, artifacts in a folder beside it.

A write is atomic: artifacts are copied into a private temporary folder, renamed into place, and
only then is the row committed. A crash at any point leaves either the old state or the new one:
never a row without its files.
"""

import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compression import settings
from compression.result import Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


class Store:
    """Results and analyses keyed by recipe hash, with their artifact files."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else settings.home()
        self.artifacts = self.root / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and rolls back on error."""
        with closing(sqlite3.connect(self.root / "results.sqlite", timeout=30)) as db:
            with db:
                yield db

    def put(self, kind: str, key: str, payload: dict[str, Any],
            files: dict[str, Path] | None = None) -> dict[str, Any]:
        """Store `payload` under (kind, key) with copies of `files` (name -> path) in a folder of their own,
        named in the stored payload's "artifacts" (paths relative to the store root). Every write gets a new
        folder, so concurrent writers of one key never collide; the folder a replaced row named is removed."""
        payload = dict(payload)
        if files:
            folder = f"{key}-{uuid.uuid4().hex[:12]}"
            staging = self.artifacts / f".tmp-{folder}"
            staging.mkdir()
            try:
                for name, path in files.items():
                    shutil.copy2(path, staging / name)
            except OSError:
                shutil.rmtree(staging)
                raise
            staging.rename(self.artifacts / folder)
            payload["artifacts"] = {name: f"artifacts/{folder}/{name}" for name in files}
        previous = self.get(kind, key)
        row = (kind, key, payload.get("dataset", ""), payload.get("model", ""), json.dumps(payload),
               datetime.now(timezone.utc).isoformat(timespec="seconds"))
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)", row)
        self._remove_unreferenced(previous, payload)
        return payload

    def _remove_unreferenced(self, previous: dict[str, Any] | None, current: dict[str, Any]) -> None:
        """Delete the artifact folder of a replaced payload, unless the new payload still names it."""
        kept = {Path(rel).parent for rel in current.get("artifacts", {}).values()}
        for rel in (previous or {}).get("artifacts", {}).values():
            folder = Path(rel).parent
            if folder not in kept:
                shutil.rmtree(self.root / folder, ignore_errors=True)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The payload stored under (kind, key), or None."""
        with self._connect() as db:
            row = db.execute("SELECT payload FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str, dataset: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """All payloads of `kind`, oldest first, optionally for one dataset / model."""
        query, args = "SELECT payload FROM records WHERE kind = ?", [kind]
        for column, value in (("dataset", dataset), ("model", model)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created_at, rowid", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def put_result(self, result: Result, files: dict[str, Path]) -> Result:
        """Store a Result with its artifacts; returns it with artifact paths relative to the store root."""
        result.artifacts = self.put("result", result.recipe_hash, result.to_dict(), files)["artifacts"]
        return result

    def get_result(self, recipe_hash: str) -> Result | None:
        """The stored Result for a recipe hash, if it and all its artifacts are present."""
        payload = self.get("result", recipe_hash)
        if payload is None:
            return None
        result = Result.from_dict(payload)
        if not all((self.root / rel).exists() for rel in result.artifacts.values()):
            return None
        result.from_store = True
        return result

    def path(self, result: Result, name: str) -> Path:
        """Absolute path of one of a result's artifacts."""
        return self.root / result.artifacts[name]
