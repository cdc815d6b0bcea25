"""The work jobs run (compression/jobs.py), one module-level function a kind of work, named in `TASKS`: a job
names its task and carries its arguments as JSON — recipes, a search's settings, an import request and the
store as its root path. Each task takes the job's progress callback last and runs in the job's child process:
torch and the pipeline load there, never in the server or the worker."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from compression import describe, folders
from compression import search as searches
from compression.imports import ImportRequest
from compression.recipe import Recipe
from compression.store import Store
from compression.jobs import ProgressFn


def run_recipe(recipe: Recipe, root: str, progress: ProgressFn) -> None:
    """Measure `recipe` and store its Result in the store at `root` (pipeline.run)."""
    from compression import pipeline

    pipeline.run(recipe, Store(root), progress)


def import_model(request: ImportRequest, seed: int, root: str, progress: ProgressFn) -> None:
    """Import the model file of `request` into the store at `root` (imports.import_model: every check one line,
    nothing stored unless all pass), then measure it as its data set's baseline on the split of `seed`."""
    from compression import imports, pipeline
    from compression.train import Progress

    store = Store(root)
    progress(Progress("import", f"checking {request.path.name}: it runs, converts to torch and fits the data"))
    imports.import_model(request, store)
    pipeline.run(folders.pinned(Recipe(dataset=request.dataset, model=request.name, seed=seed)), store, progress)


def run_recipes(recipes: list[Recipe], stage: str, root: str, progress: ProgressFn) -> None:
    """Measure each of `recipes` in turn into the store at `root`, each announced by its `stage` in words
    (e.g. the points of the Quantization page's accuracy-against-bit-width curve)."""
    from compression import pipeline
    from compression.train import Progress

    store = Store(root)
    for i, recipe in enumerate(recipes, 1):
        progress(Progress("curve", f"point {i}/{len(recipes)}: {describe.stage(recipe, stage)}"))
        pipeline.run(recipe, store, progress)


def sensitivity(recipe: Recipe, method: str, root: str, progress: ProgressFn) -> None:
    """Compute and store the per-layer pruning sensitivity of `recipe`'s baseline under `method`."""
    from compression import pipeline

    pipeline.sensitivity_table(recipe, method, Store(root), progress)


def profile(recipe_hash: str, root: str, progress: ProgressFn) -> None:
    """Profile the stored result of `recipe_hash` beside its baseline in onnxruntime and store the report
    (compression/profile.py)."""
    from compression import profile as profiles
    from compression.train import Progress

    progress(Progress("profile", "timing each node of the model and of its baseline, interleaved"))
    profiles.profile_and_store(Store(root), recipe_hash)


@dataclass(frozen=True)
class SearchSettings:
    """A search as a job's child receives it. A SearchRequest does not pickle (its space's fields hold
    functions), so the space travels as the JSON document that narrows the default (stages, fixed, ranges),
    and the request is rebuilt from it in the child and on the page alike."""

    base: Recipe
    objectives: tuple[str, ...]
    trials: int
    limits: searches.Limits
    sampler: str
    study: str | None
    space: str  # the JSON of search.Space.from_dict
    seed: int

    def request(self) -> searches.SearchRequest:
        """The SearchRequest (a bad space is a one-line CompressionError); not validated."""
        return searches.SearchRequest(self.base, self.objectives, self.trials, self.limits, self.sampler, self.study,
                                      None, searches.Space.from_json(self.space), self.seed)

    @property
    def key(self) -> str:
        """The job key of this search: one job for the same search, whatever its worker count."""
        settings = [self.base.hash, self.objectives, self.trials, asdict(self.limits), self.sampler, self.study,
                    self.space, self.seed]
        return "search:" + hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]


def search(settings: SearchSettings, workers: int, root: str, progress: ProgressFn) -> None:
    """Run the search of `settings`, `workers` trials at once as jobs of the store's queue, into the store at
    `root` (its study in the store's Optuna storage). A driver task: its worker runs it beside the slots its
    trials need. Each finished trial is relayed twice: as one step of the trials (the job's fraction, the
    page's bar) and as the search's progress line (the job's status)."""
    from compression.train import Progress

    def relay(event: searches.SearchProgress) -> None:
        progress(Progress("search", epoch=event.finished, epochs=event.total, batch=1, batches=1))
        progress(Progress("search", message=event.line.removeprefix("[search] ")))
    searches.run(settings.request(), Store(root), workers, relay)


def classic(experiment: str, setting: str, epochs_scale: float, seed: int, root: str, progress: ProgressFn) -> None:
    """Rerun a classic experiment (compression/classic.py) into the store at `root`: its recipes and its result."""
    from compression import classic as classics

    classics.run(classics.ClassicRequest(experiment, setting, epochs_scale, seed), Store(root), progress)


TASKS = {fn.__name__: fn for fn in (run_recipe, import_model, run_recipes, sensitivity, profile, search, classic)}
"""The tasks a job may name."""
DRIVERS = frozenset({search.__name__})
"""The tasks that queue jobs of their own and wait on them (a search's trials): a worker runs them in driver
slots, never in the slots their jobs need."""
