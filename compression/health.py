"""The store's health, for `python -m compression store check [--repair]`: the database opens, every row is
readable, every artifact is present and loads (ONNX files pass the checker, weight files hold tensors only),
no folder is left over by a killed run. With repair: a damaged database is set aside and a new one started,
damaged rows are quarantined (kept, with the reason, never dropped), leftover folders removed. Nothing here
unpickles anything: weight files are read with torch.load(weights_only=True)."""

import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from compression.store import DATABASE, DamagedDatabase, Store, artifact_paths, damage

REPAIR_MIN_AGE = 60.0  # seconds: a younger leftover folder may belong to a write still in progress


@dataclass
class Health:
    """What `check` found and, with repair, did."""

    root: str
    database: str = "ok"
    rows: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    quarantined: int = 0
    repaired: bool = False

    @property
    def healthy(self) -> bool:
        return self.database == "ok" and not self.problems and not self.orphans

    def summary(self) -> str:
        """One line: what is wrong, or that nothing is."""
        if self.healthy:
            return f"store {self.root}: healthy ({self.rows} rows, {self.quarantined} quarantined)"
        found = [f"{len(self.problems)} damaged row(s)"] * bool(self.problems) + \
            [f"{len(self.orphans)} leftover folder(s)"] * bool(self.orphans) + \
            [f"database {self.database}"] * (self.database != "ok")
        verb = "repaired" if self.repaired else "found (run `python -m compression store check --repair`)"
        return f"store {self.root}: {', '.join(found)} {verb}"


def _artifact_problem(path: Path) -> str | None:
    """Why an artifact file is unusable (its content), or None."""
    try:
        if path.suffix == ".onnx":
            import onnx

            onnx.checker.check_model(str(path))
        elif path.suffix == ".pt":
            import torch

            with warnings.catch_warnings():  # a hostile file's pickle protocol draws a warning before the refusal
                warnings.simplefilter("ignore")
                state = torch.load(path, weights_only=True)
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                return f"{path.name} is not a dict of tensors"
        elif path.suffix == ".npy":
            import numpy as np

            if np.load(path, allow_pickle=False).dtype.kind not in "iu":
                return f"{path.name} is not an array of class indices"
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return f"{path.name} does not load ({type(exc).__name__}: {exc})".splitlines()[0][:300]
    return None


def _row_problem(store: Store, kind: str, text: str) -> str | None:
    reason = damage(kind, text, store.root)
    if reason is not None:
        return reason
    for rel in artifact_paths(text).values():
        if (problem := _artifact_problem(store.root / rel)) is not None:
            return problem
    return None


def _set_aside_database(root: Path) -> str:
    """Rename the damaged database (and its WAL files) out of the way; the name it now has."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for suffix in ("", "-wal", "-shm"):
        path = root / f"{DATABASE}{suffix}"
        if path.exists():
            shutil.move(path, root / f"{DATABASE}.damaged-{stamp}{suffix}")
    return f"{DATABASE}.damaged-{stamp}"


def check(root: Path, repair: bool = False) -> Health:
    """Examine the store at `root` (and, with `repair`, mend it)."""
    health = Health(str(root), repaired=repair)
    try:
        store = Store(root)
    except DamagedDatabase:
        if not repair:
            health.database = "damaged"
            return health
        health.database = f"damaged: set aside as {_set_aside_database(Path(root))}, a new one started"
        store = Store(root)
    rows = store.rows()
    health.rows = len(rows)
    for kind, key, text in rows:
        if (reason := _row_problem(store, kind, text)) is not None:
            health.problems.append({"kind": kind, "key": key, "problem": reason})
            if repair:
                store.quarantine(kind, key, reason)
    if repair:
        health.orphans = [str(p.relative_to(root)) for p in store.clean_orphans(REPAIR_MIN_AGE)]
    else:
        health.orphans = [str(p.relative_to(root)) for p in store.orphans(0.0)]
    health.quarantined = len(store.quarantined())
    return health
