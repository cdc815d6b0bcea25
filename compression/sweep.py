"""Grid sweeps: every combination of chosen recipe values, measured as jobs of the one executor.

A grid is JSON: {"base": {...}, "grid": {...}}. Keys are recipe fields: top-level ones (dataset, model, seed,
epochs, pretrained, threads, batch, order) and dotted stage fields (prune.ratio, quant.mode, distill.temperature,
…); a stage name takes an object of its fields (`"quant": {"mode": "fake", "bits": 4}`). "base" gives one value
per key (stages may be nested objects), "grid" a list of values per key, crossed. In a grid point, null for a
stage, or for a stage field that cannot be null, means "no such stage". Every recipe is validated before
anything starts; duplicates (same recipe hash) run once.

Recipes already in the store are served from it (torch is not even imported when all are). The others run as
jobs of the store's queue (compression/executors.py: its workers, or worker slots of the sweep's own, each job
a process of its own on its share of the cores) or as Ray tasks; pipeline.run times latency under the
machine-wide benchmark lock, so timings never overlap, and stores each result as it finishes, so a stopped sweep
loses only unfinished recipes and the next run finishes the rest. No two workers ever compute the same model at
once: a recipe waits while a running one is producing its trained weights, baseline or a stage prefix it shares.
"""

import itertools
import json
import math
import os
import time
import typing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import MISSING, dataclass, fields
from typing import Any

from compression import executors, folders
from compression.errors import CompressionError
from compression.recipe import DistillSpec, PruneSpec, QuantSpec, Recipe
from compression.result import Result
from compression.store import Store

SPECS: dict[str, type] = {"prune": PruneSpec, "quant": QuantSpec, "distill": DistillSpec}
TOP_FIELDS: dict[str, Any] = {f.name: f.type for f in fields(Recipe) if f.name not in SPECS}
MAX_RECIPES = 5000  # a sweep beyond this is a mistake: at a minute a recipe it would run for days
PRESENT = "present"  # marks a stage given as an object, so that a stage of all-default fields exists


def _field_type(path: str) -> Any:
    """The type of a grid key, or a one-line error naming an unknown key."""
    stage, _, name = path.partition(".")
    if not name:
        if path in TOP_FIELDS:
            return TOP_FIELDS[path]
        if path in SPECS:
            return dict
        raise CompressionError(f"unknown grid field '{path}': fields are {', '.join([*TOP_FIELDS, *SPECS])} "
                               f"and dotted stage fields such as prune.ratio")
    if stage not in SPECS:
        raise CompressionError(f"unknown grid field '{path}': dotted fields begin with {', '.join(SPECS)}")
    types = {f.name: f.type for f in fields(SPECS[stage])}
    if name not in types:
        raise CompressionError(f"unknown grid field '{path}': {stage} fields are {', '.join(types)}")
    return types[name]


def _nullable(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def typed_field(path: str, value: Any) -> Any:
    """`value` checked against the type of field `path` (ints as floats where a float is wanted); null stays
    null for a stage or stage field (it removes the stage). A mismatch is a one-line error naming the field."""
    annotation = _field_type(path)
    if value is None and ("." in path or path in SPECS):
        return None
    if typing.get_origin(annotation) is tuple:  # order: a list of stage names or "a,b,c"
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            return tuple(item.strip() for item in items)
        raise CompressionError(f"grid field '{path}' must be a list of stage names, got {json.dumps(value)}")
    for kind in typing.get_args(annotation) or (annotation,):
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is dict and isinstance(value, dict):
            return {name: typed_field(f"{path}.{name}", item) for name, item in value.items()}
        if kind in (int, str, bool) and type(value) is kind:
            return value
    wanted = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
              dict: "an object of stage fields or null"}
    names = [wanted[k] for k in typing.get_args(annotation) or (annotation,) if k in wanted]
    raise CompressionError(f"grid field '{path}' must be {' or '.join(names)}, got {json.dumps(value)}")


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Field assignments with stage objects spread into dotted fields (the stage key marks it present)."""
    flat: dict[str, Any] = {}
    for path, value in values.items():
        if path in SPECS and isinstance(value, dict):
            flat[path] = PRESENT
            flat.update({f"{path}.{name}": item for name, item in value.items()})
        else:
            flat[path] = value
    return flat


def _stage(stage: str, values: dict[str, Any]) -> Any:
    """The stage's spec from the point's field values, or None when the point has no such stage."""
    spec = SPECS[stage]
    given = {path.partition(".")[2]: value for path, value in values.items() if path.startswith(stage + ".")}
    nullable = {f.name for f in fields(spec) if _nullable(f.type)}
    if stage in values and values[stage] is None:
        return None
    if stage not in values and not given:
        return None
    if any(value is None and name not in nullable for name, value in given.items()):
        return None
    missing = [f.name for f in fields(spec) if f.default is MISSING and f.name not in given]
    if missing:
        raise CompressionError(f"grid: the {stage} stage needs '{stage}.{missing[0]}'")
    return spec(**given)


def recipe_of(values: dict[str, Any]) -> Recipe:
    """The validated Recipe of one grid point's field values."""
    top = {path: value for path, value in values.items() if path in TOP_FIELDS}
    recipe = Recipe(**top, **{stage: _stage(stage, values) for stage in SPECS})
    recipe.validate()
    return recipe


@dataclass(frozen=True)
class Grid:
    """A sweep: `base` field values shared by every recipe, and per axis the values to cross (both keyed by
    field path, type-checked)."""

    base: dict[str, Any]
    axes: dict[str, list[Any]]

    @classmethod
    def from_dict(cls, data: Any, base: dict[str, Any] | None = None) -> "Grid":
        """The grid of `{"base": {...}, "grid": {...}}`, with `base` values (e.g. command-line flags) over the
        document's base. Raises a one-line CompressionError naming the first bad field."""
        if not isinstance(data, dict) or not isinstance(data.get("grid"), dict):
            raise CompressionError('a grid is an object {"base": {...}, "grid": {"field": [values, ...]}}')
        unknown = set(data) - {"base", "grid"}
        if unknown:
            raise CompressionError(f"unknown grid key '{sorted(unknown)[0]}': a grid has base and grid")
        given = data.get("base", {})
        if not isinstance(given, dict):
            raise CompressionError("grid base must be an object of field values")
        merged = {**given, **(base or {})}
        axes = {}
        for path, values in data["grid"].items():
            if not isinstance(values, list) or not values:
                raise CompressionError(f"grid field '{path}' needs a non-empty list of values")
            axes[path] = [typed_field(path, value) for value in values]
        return cls({path: typed_field(path, value) for path, value in merged.items()}, axes)

    @classmethod
    def from_json(cls, text: str, base: dict[str, Any] | None = None) -> "Grid":
        """The grid of a JSON document (see from_dict)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CompressionError(f"grid is not valid JSON: {exc}") from None
        except RecursionError:
            raise CompressionError("grid is nested too deeply to be a grid") from None
        return cls.from_dict(data, base)

    def recipes(self) -> list[Recipe]:
        """Every validated recipe of the grid, in grid order, each once (the first of equal hashes); a grid of
        more than MAX_RECIPES combinations is refused before any is built."""
        combinations = math.prod(len(values) for values in self.axes.values())
        if combinations > MAX_RECIPES:
            raise CompressionError(f"the grid makes {combinations:,} combinations: a sweep takes at most "
                                   f"{MAX_RECIPES:,}; split it into smaller grids")
        unique: dict[str, Recipe] = {}
        fingerprints: dict[str, str] = {}
        for combination in itertools.product(*self.axes.values()):
            values = {**_flatten(self.base), **_flatten(dict(zip(self.axes, combination)))}
            recipe = folders.pinned(recipe_of(values), fingerprints)
            unique.setdefault(recipe.hash, recipe)
        return list(unique.values())


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands: `done` of `total` results landed, `from_store` of them served from the store;
    `result` is the one that just landed (None for a plain `message`). `seconds_left` is estimated from the
    rate of computed results (None before the first)."""

    done: int
    total: int
    from_store: int
    seconds_left: float | None
    result: Result | None = None
    message: str = ""

    @property
    def line(self) -> str:
        """One progress line, e.g. '[sweep] 7/24 done, 1 from store, ~52 s left'."""
        if self.message:
            return f"[sweep] {self.message}"
        left = f", ~{self.seconds_left:.0f} s left" if self.seconds_left is not None else ""
        return f"[sweep] {self.done}/{self.total} done, {self.from_store} from store{left}"


SweepFn = Callable[[SweepProgress], None]


def silent(_: SweepProgress) -> None:
    """A sweep progress callback that ignores everything."""


class SweepStopped(RuntimeError):
    """The sweep could not finish (a worker died or recipes failed); finished results are stored."""


class SweepInterrupted(SweepStopped):
    """The user stopped the sweep (Ctrl-C); its message says how much is stored."""


class _Tally:
    """Counts landed results and reports each to the progress callback."""

    def __init__(self, total: int, progress: SweepFn) -> None:
        self.total, self.progress = total, progress
        self.done = self.from_store = 0
        self.computing_since: float | None = None

    def _event(self, result: Result | None = None, message: str = "") -> SweepProgress:
        now, computed = time.monotonic(), self.done - self.from_store
        left = None
        if self.computing_since is not None and computed:
            left = (now - self.computing_since) / computed * (self.total - self.done)
        return SweepProgress(self.done, self.total, self.from_store, left, result, message)

    def landed(self, result: Result) -> None:
        self.done += 1
        self.from_store += result.from_store
        self.progress(self._event(result))

    def computing(self, message: str) -> None:
        self.computing_since = time.monotonic()
        self.progress(self._event(message=message))


def claims_of(recipe: Recipe, store: Store) -> set[str]:
    """The models computing `recipe` would produce that are not stored yet: trained weights, the baseline
    result and the model after each stage prefix."""
    needs = [("weights", recipe.training_key), ("result", recipe.baseline().hash)]
    needs += [("checkpoint", recipe.stage_key(i)) for i in range(len(recipe.stages))]
    return {key for kind, key in needs if store.get(kind, key) is None}


def _compute(recipes: list[Recipe], store: Store, executor: Any, tally: _Tally) -> dict[str, Result]:
    """Measure `recipes` on `executor`, `executor.workers` at a time, at most one computing any given model."""
    results: dict[str, Result] = {}
    failures: list[str] = []
    tally.computing(f"{len(recipes)} recipe(s) to compute, {min(executor.workers, len(recipes))} at a time "
                    f"({executor.name})")
    pending, running = list(recipes), {}
    try:
        while pending or running:
            busy = set().union(*running.values())
            for recipe in list(pending):
                claims = claims_of(recipe, store)
                if len(running) < executor.workers and not claims & busy:
                    pending.remove(recipe)
                    running[executor.submit(recipe)] = claims
                    busy |= claims
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                _collect(future, executor, results, failures, tally)
    except KeyboardInterrupt:
        executor.close()  # its jobs cancelled and ended: what is stored now stays so
        stored = tally.total - len(recipes) + stored_count(recipes, store)  # also what a worker stored just now
        raise SweepInterrupted(f"{stored} of {tally.total} results are stored; run the same sweep again to "
                               "finish the rest") from None
    finally:
        executor.close()
    if failures:
        raise SweepStopped(f"{len(failures)} recipe(s) failed, the others are stored; run the same sweep again to "
                           f"finish the rest; first: {failures[0]}")
    return results


def _collect(future: Future, executor: Any, results: dict[str, Result], failures: list[str], tally: _Tally) -> None:
    """Take a finished recipe's Result, or note its failure (one recipe's failure does not stop the others)."""
    try:
        result = executor.land(future.result())
    except Exception as exc:
        text = str(exc) if isinstance(exc, CompressionError) else f"{type(exc).__name__}: {exc}"
        failures.append(text.splitlines()[0] if text.strip() else type(exc).__name__)
        return
    results[result.recipe_hash] = result
    tally.landed(result)


def run(recipes: Sequence[Recipe], store: Store | None = None, workers: int | None = None,
        progress: SweepFn = silent, ray_address: str | None = None) -> list[Result]:
    """The Result of every recipe, in order: stored ones served first, the rest computed `workers` at a time
    (default: the machine's cores) as jobs of the store's queue, or as tasks of the Ray cluster at `ray_address`
    (compression/executors.py), and stored as each finishes. `progress` hears of every result as it lands.
    Raises CompressionError (before any work) for a recipe that cannot run, SweepStopped if recipes fail."""
    store = store or Store()
    unique = list({r.hash: r for r in recipes}.values())
    tally = _Tally(len(unique), progress)
    results: dict[str, Result] = {}
    for recipe in unique:
        stored = store.get_result(recipe.hash)
        if stored is not None:
            results[recipe.hash] = stored
            tally.landed(stored)
    missing = [r for r in unique if r.hash not in results]
    if missing:
        _check_feasible(missing)
        results.update(_compute(missing, store, executors.make(store, workers or os.cpu_count() or 1, ray_address),
                                tally))
    return [results[r.hash] for r in recipes]


def _check_feasible(recipes: list[Recipe]) -> None:
    """The pipeline's one-line CompressionError for a recipe that cannot apply to its data or model."""
    from compression import pipeline

    for recipe in recipes:
        pipeline.check_feasible(recipe, pipeline.splits_for(recipe))


def stored_count(recipes: Sequence[Recipe], store: Store) -> int:
    """How many of `recipes` the store already holds (they will not be recomputed)."""
    return sum(store.get_result(r.hash) is not None for r in recipes)
