"""Multi-objective search over combined recipes: which stages run, in which order, and each stage's settings,
chosen by Optuna (multi-objective TPE, or NSGA-II) from one driver by ask-and-tell, each trial a Recipe measured
as a job of the store's queue (or a Ray task) and stored like any other result.

What the search steers by is measured on the validation split (accuracy) and on the deployable file (size,
latency, FLOPs); the test split scores only the final frontier. Constraints (--max-drop, --max-kb, --max-ms) are
Optuna constraints, not penalties. The study lives in Optuna's RDB storage (SQLite inside the store's folder by
default), so a stopped search resumes where it stopped: trials a killed driver left running are measured (or
served from the store) and told first. A recipe already stored is never recomputed.

The hypervolume of a front is taken in the space of (accuracy, cost ÷ the baseline's cost, …) with the reference
point at zero accuracy and the baseline's cost in every cost objective: a front that buys no cost reduction has
none, and 1.0 would be a perfect model that costs nothing."""

import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from compression import executors, pareto
from compression.catalog import (ALPHA, CALIBRATIONS, EPOCH_CHOICES, GRANULARITIES, PRUNE_METHODS, PRUNE_RATIO,
                                 QUANT_MODES, ROUND_TO_CHOICES, STAGES, TEMPERATURE, WIDTH)
from compression.errors import CompressionError
from compression.recipe import QuantSpec, Recipe
from compression.result import Result
from compression.store import Store
from compression.sweep import PRESENT, SweepInterrupted, recipe_of, typed_field

OBJECTIVES: tuple[str, ...] = ("accuracy", *pareto.METRICS)
SAMPLERS: tuple[str, ...] = ("tpe", "nsga2")
STORAGE_FILE = "searches.db"  # Optuna's SQLite storage inside the store's folder
FEASIBILITY_TRIALS = 8  # finished trials after which a search that met no constraint stops and says so
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class Param:
    """One searchable recipe field: `choices` (categorical), or a range [low, high] of ints or of floats on a
    `step` grid (log-scaled when `log`). `when` says on which recipes (stage settings chosen so far) it applies."""

    path: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    integer: bool = False
    log: bool = False
    when: Callable[[dict[str, Any]], bool] = lambda chosen: True

    def suggest(self, trial: Any) -> Any:
        """This field's value for an Optuna trial."""
        if self.choices:
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.path, int(self.low), int(self.high), log=self.log)
        return round(trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log), 6)

    def narrowed(self, given: Any) -> "Param":
        """This field over `given`: a list of choices, or [low, high] within its own range."""
        if self.choices:
            if not isinstance(given, list) or not given:
                raise CompressionError(f"search range of '{self.path}' must be a non-empty list of choices")
            values = [typed_field(self.path, value) for value in given]
            unknown = [v for v in values if v not in self.choices]
            if unknown:
                raise CompressionError(f"search range of '{self.path}': {json.dumps(unknown[0])} is not one of "
                                       f"{', '.join(map(json.dumps, self.choices))}")
            return replace(self, choices=tuple(dict.fromkeys(values)))
        if (not isinstance(given, list) or len(given) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given)):
            raise CompressionError(f"search range of '{self.path}' must be [low, high]")
        low, high = given
        if not self.low <= low <= high <= self.high:
            raise CompressionError(f"search range of '{self.path}' must lie within [{self.low:g}, {self.high:g}] "
                                   f"with low <= high, got [{low:g}, {high:g}]")
        return replace(self, low=low, high=high)


def _mode(chosen: dict[str, Any]) -> Any:
    return QUANT_MODES[chosen["quant.mode"]]


def _calibrates(chosen: dict[str, Any]) -> bool:
    return QuantSpec(chosen["quant.mode"], activations=True).calibrates


# The default space: every stage's settings within ranges worth searching (the catalog's bounds are wider), on
# the values the app's widgets offer, so that any trial opens on the Pipeline page. Quantization offers the
# formats a user can ship; "fake" (simulated widths) is added by naming it in a range.
PARAMS: tuple[Param, ...] = (
    Param("distill.width", low=WIDTH.low, high=WIDTH.high / 2 + WIDTH.low, step=WIDTH.step),
    Param("distill.temperature", low=1.0, high=8.0, step=TEMPERATURE.step),
    Param("distill.alpha", low=0.1, high=0.9, step=ALPHA.step),
    Param("distill.epochs", choices=tuple(e for e in EPOCH_CHOICES if 10 <= e <= 160)),
    Param("prune.method", choices=PRUNE_METHODS.names),
    Param("prune.ratio", low=0.1, high=0.9, step=PRUNE_RATIO.step),
    Param("prune.steps", low=1, high=3, integer=True),
    Param("prune.round_to", choices=ROUND_TO_CHOICES, when=lambda c: PRUNE_METHODS[c["prune.method"]].structured),
    Param("prune.finetune_epochs", choices=tuple(e for e in EPOCH_CHOICES if e <= 40)),
    Param("prune.kd", choices=(False, True)),
    Param("quant.mode", choices=QUANT_MODES.where(simulated=False)[1:]),  # not fp32: that is no quantization
    Param("quant.bits", low=2, high=8, integer=True, when=lambda c: _mode(c).simulated),
    Param("quant.granularity", choices=GRANULARITIES, when=lambda c: _mode(c).uses_granularity),
    Param("quant.calibration", choices=CALIBRATIONS, when=_calibrates),
    Param("quant.qat_epochs", low=0, high=10, integer=True, when=lambda c: _mode(c).supports_qat),
)
_ALL_MODES = QUANT_MODES.names[1:]  # what a range of quant.mode may name, fake included


def pipelines(stages: Sequence[str]) -> tuple[str, ...]:
    """Every non-empty ordered subset of `stages`, as 'distill>prune>quant' strings."""
    return tuple(">".join(p) for n in range(1, len(stages) + 1) for p in itertools.permutations(stages, n))


@dataclass(frozen=True)
class Space:
    """What a search may choose: the stage pipelines (subsets and orders), each field's choices or range, and
    fields fixed to one value. Narrowed from the default by JSON: {"stages": [...], "fixed": {field: value},
    "ranges": {field: [choices] or [low, high]}}."""

    pipelines: tuple[str, ...] = pipelines(STAGES)
    params: tuple[Param, ...] = PARAMS
    fixed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> "Space":
        """The space `data` narrows the default to; one line naming the first bad key or value."""
        if not isinstance(data, dict):
            raise CompressionError('a search space is an object {"stages": [...], "fixed": {...}, "ranges": {...}}')
        unknown = set(data) - {"stages", "fixed", "ranges"}
        if unknown:
            raise CompressionError(f"unknown search space key '{sorted(unknown)[0]}': a space has stages, fixed "
                                   "and ranges")
        stages = data.get("stages", list(STAGES))
        if not isinstance(stages, list) or not stages or not set(stages) <= set(STAGES) or len(set(stages)) < len(stages):
            raise CompressionError(f"search stages must be a non-empty list of distinct stages from {', '.join(STAGES)}")
        fixed, ranges = data.get("fixed", {}), data.get("ranges", {})
        if not isinstance(fixed, dict) or not isinstance(ranges, dict):
            raise CompressionError("search space fixed and ranges must be objects keyed by field")
        fixed = dict(fixed)  # the caller's document stays as given
        allowed = pipelines([s for s in STAGES if s in stages])
        if "order" in fixed:
            order = typed_field("order", fixed.pop("order"))
            if ">".join(order) not in allowed:
                raise CompressionError(f"fixed order {','.join(order)} uses a stage the space leaves out")
            allowed = (">".join(order),)
        by_path = {p.path: p for p in PARAMS}
        for path in [*fixed, *ranges]:
            if path not in by_path:
                raise CompressionError(f"'{path}' is not a searched field: they are order, "
                                       f"{', '.join(by_path)}")
        params = []
        for param in PARAMS:
            if param.path == "quant.mode":
                param = replace(param, choices=_ALL_MODES if "quant.mode" in ranges else param.choices)
            params.append(param.narrowed(ranges[param.path]) if param.path in ranges else param)
        return cls(allowed, tuple(params), {path: typed_field(path, value) for path, value in fixed.items()})

    @classmethod
    def from_json(cls, text: str) -> "Space":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise CompressionError(f"search space is not valid JSON: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The space as plain data (what a study records, to refuse a resumed study with another space)."""
        ranges = {p.path: list(p.choices) if p.choices else [p.low, p.high] for p in self.params}
        return {"pipelines": list(self.pipelines), "ranges": ranges, "fixed": self.fixed}

    def suggest(self, trial: Any, base: Recipe) -> Recipe:
        """The recipe an Optuna trial proposes over `base` (the baseline recipe); a combination no run could
        use is a CompressionError."""
        stages = trial.suggest_categorical("stages", list(self.pipelines)).split(">")
        chosen: dict[str, Any] = {"order": stages}
        for param in self.params:
            if param.path.partition(".")[0] not in stages:
                continue
            if param.path in self.fixed:
                chosen[param.path] = self.fixed[param.path]
            elif param.when(chosen | self.fixed):
                chosen[param.path] = param.suggest(trial)
        chosen["order"] = (*stages, *[s for s in STAGES if s not in stages])
        top = {"dataset": base.dataset, "model": base.model, "seed": base.seed, "epochs": base.epochs,
               "pretrained": base.pretrained, "threads": base.threads, "batch": base.batch,
               "provider": base.provider, "runtime": base.runtime, "data_version": base.data_version}
        return recipe_of({**top, **{stage: PRESENT for stage in stages}, **chosen})


@dataclass(frozen=True)
class Limits:
    """The constraints: accuracy points below the baseline's (validation), ONNX KB, latency ms (None: none)."""

    max_drop: float | None = None
    max_kb: float | None = None
    max_ms: float | None = None

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and (not math.isfinite(value) or value < 0):
                raise CompressionError(f"--{name.replace('_', '-')} must be a non-negative number, got {value:g}")

    def violations(self, result: Result, baseline: Result) -> list[float]:
        """Optuna's constraint values of `result`: each at most 0 when met."""
        values = []
        if self.max_drop is not None:
            values.append((baseline.val_accuracy - result.val_accuracy) * 100 - self.max_drop)
        if self.max_kb is not None:
            values.append(result.size_bytes / 1024 - self.max_kb)
        if self.max_ms is not None:
            latency = pareto.metric_value(result, "latency", baseline)
            values.append(math.inf if latency is None else latency - self.max_ms)
        return values

    @property
    def text(self) -> str:
        return ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in asdict(self).items() if v is not None)


@dataclass(frozen=True)
class SearchRequest:
    """A search: the baseline recipe, objectives (accuracy first, then costs), trials in the study, limits,
    sampler, study name and storage URL (None: defaults), space, and the sampler's seed."""

    base: Recipe
    objectives: tuple[str, ...] = ("accuracy", "size")
    trials: int = 24
    limits: Limits = Limits()
    sampler: str = "tpe"
    study: str | None = None
    storage: str | None = None
    space: Space = Space()
    seed: int = 0

    def validate(self) -> None:
        """One line for objectives, trials, limits or a sampler no search could use."""
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown:
            raise CompressionError(f"unknown objective '{unknown[0]}': choose from {', '.join(OBJECTIVES)}")
        if self.objectives[:1] != ("accuracy",) or len(self.objectives) < 2 or len(set(self.objectives)) < len(self.objectives):
            raise CompressionError("objectives are accuracy, then one or more of size, latency, flops, each once "
                                   "(e.g. accuracy,size)")
        if not 1 <= self.trials <= MAX_TRIALS:
            raise CompressionError(f"trials must be within 1 … {MAX_TRIALS:,}, got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise CompressionError(f"unknown sampler '{self.sampler}': choose {' or '.join(SAMPLERS)}")
        self.limits.validate()
        self.base.validate()

    @property
    def study_name(self) -> str:
        """--study, or a name of the setup: data set, model, objectives and a digest of the rest (baseline,
        limits, space), so that another setup is another study rather than a refusal."""
        digest = hashlib.sha256(json.dumps(self.setup(), sort_keys=True).encode()).hexdigest()[:8]
        return self.study or f"{self.base.dataset}-{self.base.model}-{'-'.join(self.objectives)}-{digest}"

    def setup(self) -> dict[str, Any]:
        """What a study is bound to: resuming it with anything else is refused."""
        return {"baseline": self.base.hash, "objectives": list(self.objectives), "limits": asdict(self.limits),
                "space": self.space.to_dict()}


@dataclass(frozen=True)
class Point:
    """One trial on the front: its validation objectives, and the result (test accuracy beside them)."""

    trial: int
    values: list[float]
    result: dict[str, Any]


@dataclass(frozen=True)
class SearchProgress:
    """Where a search stands after a trial: `finished` of `total`, the front's size and hypervolume."""

    finished: int
    total: int
    front: int
    hypervolume: float
    message: str

    @property
    def line(self) -> str:
        return f"[search] {self.finished}/{self.total} {self.message}; front {self.front}, hypervolume {self.hypervolume:.4f}"


def silent(_: SearchProgress) -> None:
    """A search progress callback that ignores everything."""


@dataclass
class SearchReport:
    """What a search found: the study, trial counts, the baseline, the frontier (validation objectives, each
    point's test accuracy) and the hypervolume after each finished trial."""

    study: str
    storage: str
    objectives: list[str]
    trials: int
    complete: int
    failed: int
    feasible: int
    baseline: dict[str, Any]
    frontier: list[Point]
    hypervolume: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def objective_values(result: Result, baseline: Result, objectives: Sequence[str]) -> list[float] | None:
    """The trial's values: validation accuracy, then each cost in its own unit (bytes, ms, FLOPs); None when a
    cost was not measured (latency of a simulated format)."""
    values = [result.val_accuracy]
    for metric in objectives[1:]:
        value = pareto.metric_value(result, metric, baseline)
        if value is None:
            return None
        values.append(value)
    return values


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The hypervolume of (accuracy, cost, …) points with costs divided by the `reference` costs (the
    baseline's): reference point at accuracy 0 and cost ratio 1."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG (pinned version)

    losses = [[-p[0], *(c / r for c, r in zip(p[1:], reference[1:]))] for p in points]
    kept = [loss for loss in losses if loss[0] < 0 and all(c < 1 for c in loss[1:])]
    if not kept:
        return 0.0
    return float(compute_hypervolume(np.array(kept), np.array([0.0, *[1.0] * (len(reference) - 1)])))


def _storage_url(request: SearchRequest, store: Store) -> str:
    return request.storage or f"sqlite:///{store.root / STORAGE_FILE}"


def _study(request: SearchRequest, store: Store) -> Any:
    """The request's Optuna study, created or loaded (refused if it was started with another setup)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's `group`
    constraints = (lambda t: t.user_attrs.get("constraints", [])) if request.limits.text else None
    if request.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=request.seed, constraints_func=constraints,
                                                population_size=max(4, min(50, request.trials // 4)))
    else:
        sampler = optuna.samplers.TPESampler(seed=request.seed, constraints_func=constraints, multivariate=True,
                                             group=True, n_startup_trials=min(10, max(2, request.trials // 4)))
    directions = ["maximize", *["minimize"] * (len(request.objectives) - 1)]
    try:
        study = optuna.create_study(storage=_storage_url(request, store), study_name=request.study_name,
                                    directions=directions, sampler=sampler, load_if_exists=True)
    except ValueError as exc:
        raise CompressionError(f"study {request.study_name}: {exc}".splitlines()[0]) from None
    except Exception as exc:  # SQLAlchemy's errors for an unreachable or malformed --storage
        raise CompressionError(f"search storage {_storage_url(request, store)}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0]}") from None
    setup = json.loads(json.dumps(request.setup()))
    if "setup" not in study.user_attrs:
        study.set_user_attr("setup", setup)
    elif study.user_attrs["setup"] != setup:
        raise CompressionError(f"study {request.study_name} was started with other settings (baseline, objectives, "
                               "limits or space): name another with --study to search these")
    return study


class _Driver:
    """The ask-and-tell loop: at most `workers` trials in flight on its executor, each told as its result lands."""

    def __init__(self, request: SearchRequest, store: Store, executor: Any, progress: Callable[[SearchProgress], None]):
        self.request, self.store, self.executor, self.progress = request, store, executor, progress
        self.workers = executor.workers if executor is not None else 0
        self.study = _study(request, store)
        self.baseline: Result | None = None
        self.running: dict[Future, list[Any]] = {}  # a future and the trials waiting on its recipe
        self.recipes: dict[int, Recipe] = {}

    def _trials(self, *states: Any) -> list[Any]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def finished(self) -> int:
        """Finished trials toward the budget (a trial a killed driver left running, failed and asked again
        under a new number, counts once)."""
        return len(_counted(self._trials()))

    def run(self) -> SearchReport:
        try:
            self.baseline = self.store.get_result(self.request.base.hash) or self.executor.land(self.executor.submit(self.request.base).result())
            self._resume()
            while self.running or self.finished() + self._in_flight() < self.request.trials:
                while self.finished() + self._in_flight() < self.request.trials and self._in_flight() < self.workers:
                    self._ask()  # told at once when its recipe is stored
                    self._check_feasible_at_all()
                if self.running:
                    self._collect(wait(self.running, return_when=FIRST_COMPLETED)[0])
                self._check_feasible_at_all()
        except KeyboardInterrupt:
            self.executor.stop()
            raise SweepInterrupted(f"{self.finished()} finished trial(s) are stored; run the same search again to "
                                   "resume it") from None
        except BaseException:  # stopped by its constraints, or a store that cannot be written: no worker left
            self.executor.stop()
            raise
        finally:
            self.executor.close()
        return self._report()

    def _in_flight(self) -> int:
        return sum(len(trials) for trials in self.running.values())

    def _resume(self) -> None:
        """Trials a killed driver left running: each failed and asked again with its parameters (its recipe
        then served from the store if its result landed)."""
        from optuna.trial import TrialState

        for stale in self._trials(TrialState.RUNNING):
            self.study.tell(stale.number, state=TrialState.FAIL)
            if "recipe" in stale.user_attrs:
                self.study.enqueue_trial(stale.params, user_attrs={"resumes": stale.number})

    def _ask(self) -> None:
        from optuna.trial import TrialState

        trial = self.study.ask()
        try:
            recipe = self.request.space.suggest(trial, self.request.base)
        except CompressionError as exc:
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=TrialState.FAIL)
            self._report_progress(f"trial {trial.number} proposes no valid recipe: {exc}")
            return
        trial.set_user_attr("recipe", recipe.to_dict())
        trial.set_user_attr("recipe_hash", recipe.hash)
        self._start(trial, recipe)

    def _start(self, trial: Any, recipe: Recipe) -> None:
        """Tell `trial` its stored result, or wait on the worker computing its recipe, or start one."""
        self.recipes[trial.number] = recipe
        stored = self.store.get_result(recipe.hash)
        if stored is not None:
            self._tell(trial, stored, "from the store")
            return
        same = next((f for f, trials in self.running.items()
                     if self.recipes[trials[0].number].hash == recipe.hash), None)
        if same is not None:
            self.running[same].append(trial)
        else:
            self.running[self.executor.submit(recipe)] = [trial]

    def _collect(self, done: set[Future]) -> None:
        for future in done:
            trials = self.running.pop(future)
            try:
                result = self.executor.land(future.result())
            except Exception as exc:  # one trial's failure (a recipe that cannot apply, a bug) ends that trial only
                for trial in trials:
                    self._fail(trial, f"{type(exc).__name__}: {exc}".splitlines()[0])
                continue
            for trial in trials:
                self._tell(trial, result, "measured")

    def _fail(self, trial: Any, message: str) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("error", message)
        self.study.tell(trial, state=TrialState.FAIL)
        self._report_progress(f"trial {trial.number} failed: {message}")

    def _tell(self, trial: Any, result: Result, how: str) -> None:
        values = objective_values(result, self.baseline, self.request.objectives)
        if values is None:
            self._fail(trial, f"{result.technique} has no measured latency (a simulated format)")
            return
        trial.set_user_attr("constraints", self.request.limits.violations(result, self.baseline))
        self.study.tell(trial, values)
        costs = ", ".join(f"{m} {pareto.metric_value(result, m, self.baseline) / pareto.UNITS[m][1]:.4g} "
                          f"{pareto.UNITS[m][0]}" for m in self.request.objectives[1:])
        self._report_progress(f"trial {trial.number} {how}: {result.technique}, val {result.val_accuracy:.2%}, {costs}")

    def _report_progress(self, message: str) -> None:
        front = _front_of(self._trials(), self.request.limits)
        self.progress(SearchProgress(self.finished(), self.request.trials, len(front),
                                     self._hypervolume(front), message))

    def _hypervolume(self, front: list[Any]) -> float:
        reference = objective_values(self.baseline, self.baseline, self.request.objectives)
        return hypervolume([t.values for t in front], reference)

    def _check_feasible_at_all(self) -> None:
        """Stop a search whose constraints no trial meets after FEASIBILITY_TRIALS finished trials."""
        finished = self.finished()
        if (self.request.limits.text and finished >= min(FEASIBILITY_TRIALS, self.request.trials)
                and not _feasible(self._trials(), self.request.limits)):
            raise CompressionError(f"no recipe met {self.request.limits.text} in {finished} trial(s): loosen the "
                                   "limits or narrow the space toward smaller models")

    def _report(self) -> SearchReport:
        from optuna.trial import TrialState

        trials = self._trials()
        counted = _counted(trials)
        history, done = [], []
        for trial in sorted(counted, key=lambda t: t.datetime_complete):
            done.append(trial)
            history.append(self._hypervolume(_front_of(done, self.request.limits)))
        front = sorted(_front_of(trials, self.request.limits), key=lambda t: t.values[1])
        points = [Point(t.number, list(t.values), pareto.summary(self.store.get_result(t.user_attrs["recipe_hash"]),
                                                                  self.baseline)) for t in front]
        return SearchReport(self.request.study_name, _storage_url(self.request, self.store),
                            list(self.request.objectives), self.finished(),
                            sum(t.state == TrialState.COMPLETE for t in counted),
                            sum(t.state == TrialState.FAIL for t in counted),
                            len(_feasible(trials, self.request.limits)), pareto.summary(self.baseline), points, history)


def _counted(trials: Sequence[Any]) -> list[Any]:
    """The finished trials, less those a killed driver left running (failed on resume and asked again)."""
    abandoned = {t.user_attrs["resumes"] for t in trials if "resumes" in t.user_attrs}
    return [t for t in trials if t.state.is_finished() and t.number not in abandoned]


def _feasible(trials: Sequence[Any], limits: Limits) -> list[Any]:
    """The complete trials that meet every limit."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state == TrialState.COMPLETE
            and all(v <= 0 for v in t.user_attrs.get("constraints", []))]


def _front_of(trials: Sequence[Any], limits: Limits) -> list[Any]:
    """The non-dominated feasible trials among `trials` (accuracy maximised, costs minimised); of equal
    points, the first."""
    feasible = _feasible(trials, limits)

    def dominates(a: Any, b: Any) -> bool:
        return (a.values[0] >= b.values[0] and all(x <= y for x, y in zip(a.values[1:], b.values[1:]))
                and a.values != b.values)

    front: list[Any] = []
    for trial in feasible:
        if not any(dominates(o, trial) for o in feasible) and all(o.values != trial.values for o in front):
            front.append(trial)
    return front


def run(request: SearchRequest, store: Store | None = None, workers: int = 1,
        progress: Callable[[SearchProgress], None] = silent, ray_address: str | None = None) -> SearchReport:
    """Search until the study holds `request.trials` finished trials (resuming a stopped one), `workers` of them
    at once: as jobs of the store's queue (compression/executors.py: its workers, or as many worker slots of its
    own while none serves the store), or as tasks of the Ray cluster at `ray_address` (this process alone writes
    the store and times latency); the report of its frontier. Bad settings are a one-line CompressionError."""
    request.validate()
    store = store or Store()
    return _Driver(request, store, executors.make(store, workers, ray_address), progress).run()


def report(request: SearchRequest, store: Store | None = None) -> SearchReport | None:
    """The report of the request's study as stored: no trial is asked and no worker starts. None until its
    baseline is stored."""
    request.validate()
    store = store or Store()
    baseline = store.get_result(request.base.hash)
    if baseline is None:
        return None
    driver = _Driver(request, store, None, silent)
    driver.baseline = baseline
    return driver._report()
