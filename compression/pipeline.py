"""run(recipe) -> Result: train (or reuse) the baseline, apply the recipe's stages in order, export to
ONNX, measure by the DESIGN.md protocol and store. A recipe already in the store is never recomputed."""

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compression import data, models
from compression.data import Splits
from compression.export import export_onnx
from compression.measure import (count_flops, count_params, file_sizes, layer_sparsity, onnx_accuracy,
                                 provenance, time_interleaved)
from compression.prune import SENSITIVITY_RATIOS, check_structured_ratio, prune_model, sensitivity
from compression.recipe import Recipe, Result
from compression.store import Store
from compression.train import Progress, ProgressFn, evaluate, fit, seed_everything, silent

WEIGHTS = "model.pt"
ONNX = "model.onnx"


class StageClock:
    """Wall-clock seconds spent in each named stage of a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)


@lru_cache(maxsize=4)
def load_splits(dataset: str, seed: int) -> Splits:
    """The data set's splits for a seed, loaded once per process."""
    return data.load_dataset(dataset, seed=seed)


def baseline_model(store: Store, recipe: Recipe, splits: Splits, progress: ProgressFn = silent) -> nn.Module:
    """The trained baseline network of `recipe`: its stored weights (shared by every timing setup), or
    trained now and stored."""
    stored = store.get("weights", recipe.training_key)
    path = store.root / stored["artifacts"][WEIGHTS] if stored else None
    if path is not None and path.exists():
        progress(Progress("train", f"trained weights served from the store ({recipe.training_key})"))
        model = models.build_model(recipe.model, splits.input_shape, splits.num_classes)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    seed_everything(recipe.seed)
    model = models.build_model(recipe.model, splits.input_shape, splits.num_classes, recipe.pretrained)
    fit(model, splits.train, recipe.epochs, seed=recipe.seed, progress=progress)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model.state_dict(), Path(tmp) / WEIGHTS)
        store.put("weights", recipe.training_key, {"dataset": recipe.dataset, "model": recipe.model,
                                                   "recipe": recipe.to_dict()}, {WEIGHTS: Path(tmp) / WEIGHTS})
    return model.eval()


def _check_feasible(recipe: Recipe, splits: Splits) -> None:
    """Refuse, before any training, a recipe whose stages cannot apply to this model (one-line error)."""
    if recipe.prune is not None and recipe.prune.structured:
        check_structured_ratio(models.build_model(recipe.model, splits.input_shape, splits.num_classes),
                               recipe.prune.ratio, recipe.prune.round_to)


def _apply_stages(recipe: Recipe, model: nn.Module, splits: Splits, clock: StageClock,
                  progress: ProgressFn) -> nn.Module:
    """Apply the recipe's compression stages to `model`, in the recipe's order."""
    stages: dict[str, Callable[[nn.Module], nn.Module]] = {}
    if recipe.prune is not None:
        stages["prune"] = lambda m: prune_model(m, recipe.prune, splits, recipe.seed, progress)
    for name in recipe.order:
        if name in stages:
            with clock.stage(name):
                model = stages[name](model)
    return model


def _measure(recipe: Recipe, model: nn.Module, splits: Splits, onnx_path: Path, base: Result | None,
             base_onnx: Path | None, clock: StageClock, progress: ProgressFn) -> Result:
    """Measure the exported model; latency is timed interleaved with the baseline's ONNX when there is one."""
    progress(Progress("measure", "accuracy in onnxruntime"))
    with clock.stage("measure"):
        accuracy = onnx_accuracy(onnx_path, splits.test)
        val_accuracy = onnx_accuracy(onnx_path, splits.val)
        paths = [onnx_path] if base_onnx is None else [onnx_path, base_onnx]
        progress(Progress("measure", f"latency: batch {recipe.batch} and 1, {recipe.threads} thread(s)"))
        batched = time_interleaved(paths, splits.input_shape, recipe.batch, recipe.threads)
        single = time_interleaved(paths, splits.input_shape, 1, recipe.threads)
        size, size_gzip = file_sizes(onnx_path)
        total, nonzero = count_params(model)
        flops = count_flops(model, splits.input_shape)
    baseline_latency = batched[-1]
    return Result(
        recipe=recipe.to_dict(), recipe_hash=recipe.hash, dataset=recipe.dataset, model=recipe.model,
        accuracy=accuracy, accuracy_source="onnxruntime",
        baseline_accuracy=base.accuracy if base else accuracy,
        params_total=total, params_nonzero=nonzero, sparsity=1 - nonzero / total,
        size_bytes=size, size_gzip_bytes=size_gzip, flops=flops,
        latency_ms=batched[0], latency_ms_single=single[0], latency_measured=True,
        speedup_vs_baseline=baseline_latency.p50 / batched[0].p50,
        size_ratio_vs_baseline=size / base.size_bytes if base else 1.0,
        stage_seconds=clock.seconds, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        baseline_latency_ms=baseline_latency, layers=layer_sparsity(model), val_accuracy=val_accuracy,
        flops_ratio_vs_baseline=flops / base.flops if base else 1.0,
        size_gzip_ratio_vs_baseline=size_gzip / base.size_gzip_bytes if base else 1.0,
        provenance=provenance(recipe.threads, recipe.batch),
    )


def run(recipe: Recipe, store: Store | None = None, progress: ProgressFn = silent) -> Result:
    """The measured Result of `recipe`: from the store if it is there, else computed and stored."""
    recipe.validate()
    store = store or Store()
    cached = store.get_result(recipe.hash)
    if cached is not None:
        progress(Progress("store", f"served from the store ({recipe.hash})"))
        return cached
    clock = StageClock()
    with clock.stage("load"):
        splits = load_splits(recipe.dataset, recipe.seed)
    _check_feasible(recipe, splits)
    base = None if recipe.is_baseline else run(recipe.baseline(), store, progress)
    with clock.stage("train"):
        model = baseline_model(store, recipe.baseline(), splits, progress)
    model = _apply_stages(recipe, model, splits, clock, progress)
    with tempfile.TemporaryDirectory() as tmp:
        progress(Progress("export", "ONNX export"))
        with clock.stage("export"):
            onnx_path = export_onnx(model, splits.input_shape, Path(tmp) / ONNX)
        result = _measure(recipe, model, splits, onnx_path, base, store.path(base, ONNX) if base else None,
                          clock, progress)
        return store.put_result(result, {ONNX: onnx_path})


def compressed_variants(base: Recipe, store: Store) -> list[Result]:
    """Stored results compressed from the baseline recipe `base` (same data, model, training, timing), oldest first."""
    results = [Result.from_dict(payload) for payload in store.list("result", base.dataset, base.model)]
    return [r for r in results if (rec := Recipe.from_dict(r.recipe)) != base and rec.baseline() == base]


def sensitivity_table(recipe: Recipe, method: str, store: Store | None = None,
                      progress: ProgressFn = silent) -> dict[str, Any]:
    """Per-layer pruning sensitivity of the recipe's baseline on the validation split (stored, never redone)."""
    recipe.validate()
    store = store or Store()
    key = recipe.sensitivity_key(method)
    cached = store.get("sensitivity", key)
    if cached is not None:
        progress(Progress("store", f"served from the store ({key})"))
        return cached
    base = run(recipe.baseline(), store, progress)
    splits = load_splits(recipe.dataset, recipe.seed)
    model = baseline_model(store, recipe.baseline(), splits, progress)
    table = sensitivity(model, splits, method, recipe.seed, progress=progress)
    payload = {
        "dataset": recipe.dataset, "model": recipe.model, "method": method, "baseline_hash": base.recipe_hash,
        "split": "validation", "runtime": "torch (no fine-tuning)",
        "baseline_val_accuracy": evaluate(model, splits.val),
        "ratios": list(SENSITIVITY_RATIOS), "layers": [vars(row) for row in table],
    }
    store.put("sensitivity", key, payload)
    return payload

