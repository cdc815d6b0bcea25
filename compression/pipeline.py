"""run(recipe) -> Result: train (or reuse) the baseline, apply the recipe's stages in order, export to
ONNX, measure by the protocol of docs/ARCHITECTURE.md and store. A recipe already in the store is never
recomputed."""

import pickle
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compression import classes, data, distill, folders, imports, models, quantize, staircase
from compression.classes import PREDICTIONS
from compression.catalog import MODELS, ROUND_TO_AUTO
from compression.data import Splits
from compression.export import export_named, save_deployable
from compression.measure import (Counts, Timing, check_runtime, count_params, file_sizes, onnx_accuracy, onnx_counts,
                                 onnx_predictions, provenance, session,
                                 time_interleaved, time_rounds, torch_counts)
from compression.prune import SENSITIVITY_RATIOS, check_structured_ratio, prune_model, sensitivity
from compression.errors import CompressionError
from compression.recipe import QuantSpec, Recipe
from compression.result import (DistillReport, LayerSparsity, QuantReport, Result, SensitivityTable, StageRecord,
                                from_json, speedup)
from compression.stats import mcnemar
from compression.store import Store
from compression.train import (Progress, ProgressFn, Stopped, evaluate, fit, seed_everything, silent,
                              training_device)

WEIGHTS = "model.pt"
ONNX = "model.onnx"
NAMED_ONNX = "exported.onnx"
CHECKPOINT = "model-state.pt"  # a stage's model as its state_dict: tensors only, loaded with weights_only
PICKLED_CHECKPOINT = "model.pkl"  # what older versions stored (a pickled module): never loaded, recomputed
# The layers whose shapes structured pruning changes, and the attributes that give their tensors' shapes.
SHAPE_ATTRIBUTES: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.Linear: ("in_features", "out_features"),
    nn.BatchNorm2d: ("num_features",),
}
# What loading a damaged or hostile checkpoint raises: a file that is not tensors, or tensors of another model.
_UNLOADABLE = (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, TypeError, ValueError,
               AttributeError)


class StageClock:
    """Wall-clock seconds spent in each named stage of a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)


@dataclass(frozen=True)
class DataView:
    """How a model sees a data set: image folders resized to `size` (height, width; default 32 × 32), inputs
    normalised with `norm` (default: the train split's statistics). Built-in models take the defaults; an
    imported model its own."""

    size: tuple[int, int] | None = None
    norm: data.Normalisation | None = None


def data_view(model: str) -> DataView:
    """The DataView of the model called `model`."""
    found = None if model in MODELS else imports.stored(model)  # an import never takes a built-in name
    return view_of(found) if found is not None else DataView()


def view_of(imported: imports.Imported) -> DataView:
    """How the imported model sees data: at its input size, with its normalisation (if it has one)."""
    norm = data.Normalisation(imported.mean, imported.std) if imported.mean is not None else None
    return DataView(imported.input_shape[1:], norm)


@lru_cache(maxsize=4)
def load_splits(dataset: str, seed: int, view: DataView = DataView(), data_version: str | None = None) -> Splits:
    """The data set's splits for a seed as a model with `view` sees them, loaded once per process for each
    version of an image folder's contents."""
    return data.load_dataset(dataset, seed=seed, image_size=view.size or 32, norm=view.norm)


def splits_for(recipe: Recipe) -> Splits:
    """The splits `recipe` runs on: its data set and seed, as its model sees them."""
    return load_splits(recipe.dataset, recipe.seed, data_view(recipe.model), recipe.data_version)


def train_baseline(recipe: Recipe, splits: Splits, progress: ProgressFn = silent) -> nn.Module:
    """`recipe`'s baseline network trained now on `splits.train` (deterministic for the recipe's seed)."""
    seed_everything(recipe.seed)
    model = models.build_model(recipe.model, splits.input_shape, splits.num_classes, recipe.pretrained)
    return fit(model, splits.train, recipe.epochs, seed=recipe.seed, progress=progress)


def stored_weights(store: Store, recipe: Recipe) -> Path | None:
    """The file of `recipe`'s trained baseline weights in the store (shared by every timing setup), or None
    while they are not trained."""
    stored = store.get("weights", recipe.training_key)
    path = store.root / stored["artifacts"][WEIGHTS] if stored else None
    return path if path is not None and path.exists() else None


def baseline_model(store: Store, recipe: Recipe, splits: Splits, progress: ProgressFn = silent) -> nn.Module:
    """The trained baseline network of `recipe`: its stored weights (shared by every timing setup), or
    trained now and stored."""
    path = stored_weights(store, recipe)
    if path is not None:
        model = models.build_model(recipe.model, splits.input_shape, splits.num_classes)
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
        except _UNLOADABLE as err:  # damaged, or weights of another architecture: trained again below
            store.quarantine("weights", recipe.training_key, f"weights do not load ({type(err).__name__})")
        else:
            progress(Progress("train", f"trained weights served from the store ({recipe.training_key})"))
            return model.eval()
    model = train_baseline(recipe, splits, progress)
    with store.workdir() as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        store.put("weights", recipe.training_key, {"dataset": recipe.dataset, "model": recipe.model,
                                                   "recipe": recipe.to_dict()}, {WEIGHTS: tmp / WEIGHTS})
    return model.eval()


def check_feasible(recipe: Recipe, splits: Splits) -> None:
    """Refuse, before any training, a recipe whose stages cannot apply to this model (one-line error)."""
    if MODELS[recipe.model].runtime_only:  # no torch form: Recipe.validate admits post-training formats only
        return
    arch = models.build_model(recipe.model, splits.input_shape, splits.num_classes)
    for name in recipe.stages:
        if name == "distill":
            arch = distill.build_student(recipe.model, recipe.distill, splits.input_shape, splits.num_classes)
        elif name == "prune" and recipe.prune.structured:
            check_structured_ratio(arch, recipe.prune.ratio, recipe.prune.round_to)


@dataclass
class Deployed:
    """A model in the form a user would ship, with its deployed accuracy and size. A simulated format has
    no file (`onnx` None): its accuracy is computed in torch and its size from the packed bit width."""

    onnx: Path | None
    accuracy: float
    val_accuracy: float
    accuracy_source: str
    size_bytes: int
    size_gzip_bytes: int
    size_source: str
    quant_report: QuantReport | None = None
    predictions: np.ndarray | None = None  # the class predicted for each test image (a runnable file's)

    @property
    def runnable(self) -> bool:
        return self.onnx is not None


def deploy(model: nn.Module | None, quant: QuantSpec | None, splits: Splits, workdir: Path,
           float_onnx: Path | None = None, timing: Timing = Timing()) -> Deployed:
    """Export `model` to ONNX (or take the float file `float_onnx` of a runtime-only import, `model` None),
    convert it by `quant` (if any; an auto INT8 layout is timed under `timing`), and measure its accuracy on
    the test and validation splits: in the timing's runtime for a runnable file, in torch (simulated) otherwise."""
    workdir.mkdir(parents=True, exist_ok=True)
    if quant is not None and quant.simulated:
        fake = quantize.convert(model, None, quant, splits, workdir)
        return Deployed(None, fake.simulated_accuracy, fake.simulated_val_accuracy, "torch-simulated",
                        fake.size_bytes, fake.size_bytes, fake.size_source, fake.report)
    named = float_onnx or export_named(model, splits.input_shape, workdir / NAMED_ONNX)
    converted = quantize.convert(model, named, quant, splits, workdir, timing) if quant is not None else None
    path = converted.onnx if converted is not None else save_deployable(named, workdir / ONNX)
    size, size_gzip = file_sizes(path)
    runtime = timing.runtime
    predictions = onnx_predictions(path, splits.test, runtime)
    return Deployed(path, float((predictions == splits.test.y.numpy()).mean()), onnx_accuracy(path, splits.val, runtime),
                    runtime, size, size_gzip, "onnx file", converted.report if converted else None, predictions)


def timing_of(recipe: Recipe) -> Timing:
    """The recipe's timing setup: batch, threads, provider and runtime."""
    return Timing(recipe.batch, recipe.threads, recipe.provider, recipe.runtime)


def _record(stage: str, deployed: Deployed, counts: Counts, seconds: float,
            stops: Sequence[Stopped] = ()) -> StageRecord:
    """The stage's point on the path from the baseline to the final model, with how its plateau-stopped
    training ended (`stops`, as fit reported them: a pruning round each; the KD student, then its control)."""
    stops = stops[:1] if stage == "distill" else stops
    training = {"epochs_run": sum(s.epochs_run for s in stops), "epochs_cap": sum(s.cap for s in stops),
                "best_epoch": stops[-1].best_epoch} if stops else {}
    return StageRecord(stage=stage, accuracy=deployed.accuracy, accuracy_source=deployed.accuracy_source,
                       size_bytes=deployed.size_bytes, size_source=deployed.size_source,
                       params_nonzero=counts.params_nonzero, flops=counts.flops, seconds=round(seconds, 3), **training)


class StopLog:
    """A progress callback that passes every event on and keeps the plateau stops fit reports (Progress.stopped)."""

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress
        self.stops: list[Stopped] = []

    def __call__(self, event: Progress) -> None:
        if event.stopped is not None:
            self.stops.append(event.stopped)
        self.progress(event)


def _baseline_record(base: Result) -> StageRecord:
    return StageRecord(stage="baseline", accuracy=base.accuracy, accuracy_source=base.accuracy_source,
                       size_bytes=base.size_bytes, size_source=base.size_source,
                       params_nonzero=base.params_nonzero, flops=base.flops, seconds=0.0)


CONTROL_PREDICTIONS = "control_predictions"  # in the distill stage's report until the student is deployed


def _distill(recipe: Recipe, teacher: nn.Module, teacher_record: StageRecord, splits: Splits, quant: QuantSpec | None,
             workdir: Path, progress: ProgressFn) -> tuple[nn.Module, dict[str, Any]]:
    """The KD student of `teacher`, and the report comparing it with the same student trained on labels only
    (same init, epochs and seed), both deployed the same way."""
    spec, curves = recipe.distill, []
    student, trained_control = distill.student_and_control(recipe.model, teacher, splits.train, spec, recipe.seed,
                                                           splits.input_shape, splits.num_classes, progress,
                                                           curves=curves, val=splits.val)
    control = deploy(trained_control, quant, splits, workdir / "control", timing=timing_of(recipe))
    report = {"teacher_accuracy": teacher_record.accuracy, "control_accuracy": control.accuracy,
              "control_val_accuracy": control.val_accuracy, "student": spec.student or recipe.model,
              "width": spec.width, "temperature": spec.temperature, "alpha": spec.alpha, "epochs": spec.epochs,
              "student_params": count_params(student)[0], "teacher_params": count_params(teacher)[0],
              "student_curve": asdict(curves[0]), "control_curve": asdict(curves[1]),
              CONTROL_PREDICTIONS: control.predictions}
    return student, report


def _kd_compared(report: dict[str, Any], student: Deployed, splits: Splits) -> dict[str, Any]:
    """The distill stage's report with McNemar's p-value of the deployed KD student against the control on
    the test images (None for a simulated format), the control's predictions dropped (never stored)."""
    control = report.pop(CONTROL_PREDICTIONS, None)
    labels = splits.test.y.numpy()
    paired = control is not None and student.predictions is not None
    return {**report, "kd_p_value": mcnemar(student.predictions == labels, control == labels).p_value
            if paired else None}


def _prune(recipe: Recipe, model: nn.Module, baseline: nn.Module, splits: Splits, store: Store,
           progress: ProgressFn) -> tuple[nn.Module, dict[str, Any] | None]:
    """The pruned model and a report of its rounds (validation accuracy right after each cut and after
    fine-tuning); with round_to auto, its counts chosen on the measured staircase, and in the report the
    channels each layer was asked to keep and kept."""
    spec, rounds = recipe.prune, []
    if not (spec.structured and spec.round_to == ROUND_TO_AUTO):
        model = prune_model(model, spec, splits, recipe.seed, progress, teacher=baseline, rounds=rounds)
        return model, {"rounds": [asdict(r) for r in rounds]}
    timing = staircase.Timing(recipe.threads, recipe.batch, recipe.provider)
    choices = staircase.choose_counts(model, spec.ratio, splits.input_shape, timing, store, progress)
    model = prune_model(model, spec, splits, recipe.seed, progress, teacher=baseline,
                        kept={c.name: c.kept for c in choices}, rounds=rounds)
    return model, {"channels": [asdict(c) for c in choices], "rounds": [asdict(r) for r in rounds]}


def _transform(name: str, recipe: Recipe, model: nn.Module, baseline: nn.Module, previous: StageRecord,
               splits: Splits, store: Store, workdir: Path,
               progress: ProgressFn) -> tuple[nn.Module, dict[str, Any] | None]:
    """Apply one compression stage to `model` in torch (the baseline teaches pruning's fine-tuning when the
    recipe asks for KD); distillation also returns its KD-vs-control report, pruning with round_to auto its
    channel choices."""
    if name == "distill":
        return _distill(recipe, model, previous, splits, _quant_so_far(recipe, "distill"), workdir, progress)
    if name == "prune":
        return _prune(recipe, model, baseline, splits, store, progress)
    return quantize.quantize_stage(model, recipe.quant, splits, recipe.seed, progress), None


def _quant_so_far(recipe: Recipe, stage: str) -> QuantSpec | None:
    """The quantization a model deployed after `stage` carries: the recipe's, once its quant stage has run."""
    done = recipe.stages[:recipe.stages.index(stage) + 1]
    return recipe.quant if "quant" in done else None


def _shape_attributes(module: nn.Module) -> tuple[str, ...]:
    """The shape attributes of `module` if it is a layer structured pruning resizes, else ()."""
    return next((names for kind, names in SHAPE_ATTRIBUTES.items() if isinstance(module, kind)), ())


def layer_shapes(model: nn.Module) -> dict[str, dict[str, int]]:
    """Every conv, linear and batch-norm layer of `model` by name, with its shape attributes: what rebuilds a
    structurally pruned model's architecture from the one it started as."""
    return {name: {attr: getattr(module, attr) for attr in attrs} for name, module in model.named_modules()
            if (attrs := _shape_attributes(module))}


def _tensor_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """The shapes a layer's parameters and buffers take for its shape attributes."""
    if isinstance(module, nn.Conv2d):
        return {"weight": (module.out_channels, module.in_channels // module.groups, *module.kernel_size),
                "bias": (module.out_channels,)}
    if isinstance(module, nn.Linear):
        return {"weight": (module.out_features, module.in_features), "bias": (module.out_features,)}
    features = (module.num_features,)
    return {"weight": features, "bias": features, "running_mean": features, "running_var": features}


def _reshape(model: nn.Module, shapes: dict[str, dict[str, int]]) -> None:
    """Give each recorded layer of `model` its recorded shape attributes, and empty parameters and buffers of
    the shapes those imply, for load_state_dict to fill (and to refuse tensors of any other shape)."""
    for name, recorded in shapes.items():
        module = model.get_submodule(name)
        attrs = _shape_attributes(module)
        if set(recorded) != set(attrs):
            raise ValueError(f"layer {name} is not a layer of this architecture")
        for attr in attrs:
            setattr(module, attr, int(recorded[attr]))
        for tensor, shape in _tensor_shapes(module).items():
            old = getattr(module, tensor)
            if old is not None:
                new = torch.empty(shape, dtype=old.dtype)
                setattr(module, tensor, nn.Parameter(new, old.requires_grad) if isinstance(old, nn.Parameter) else new)


def _stage_architecture(recipe: Recipe, index: int, splits: Splits) -> nn.Module:
    """A fresh model of the architecture the recipe's first `index` + 1 stages start from: the student once a
    distill stage has run, else the baseline. Its random init is drawn from a forked generator (the checkpoint
    overwrites it), so loading a checkpoint leaves torch's global generator as it found it."""
    with torch.random.fork_rng(devices=[]):
        if "distill" in recipe.stages[:index + 1]:
            return distill.build_student(recipe.model, recipe.distill, splits.input_shape, splits.num_classes)
        return models.build_model(recipe.model, splits.input_shape, splits.num_classes)


def _load_checkpoint(store: Store, key: str, recipe: Recipe, index: int,
                     splits: Splits) -> tuple[nn.Module, StageRecord, dict[str, Any] | None] | None:
    """The stored model after the recipe's first `index` + 1 stages (key `key`), with its stage record and report,
    if present: its architecture rebuilt from the recipe and the recorded layer shapes, its tensors loaded
    with weights_only (nothing in the file can run). A row that cannot give that (an old pickled module, a
    file that does not load) is quarantined, so the stage is computed again and stored anew."""
    stored = store.get("checkpoint", key)
    if stored is None:
        return None
    if CHECKPOINT not in stored.get("artifacts", {}):
        store.quarantine("checkpoint", key, f"an old pickled checkpoint ({PICKLED_CHECKPOINT}): never unpickled")
        return None
    try:
        model = _stage_architecture(recipe, index, splits)
        _reshape(model, stored["layer_shapes"])
        model.load_state_dict(torch.load(store.root / stored["artifacts"][CHECKPOINT], weights_only=True),
                              strict=True)
        record = from_json(StageRecord, stored["record"])
    except _UNLOADABLE as err:
        store.quarantine("checkpoint", key, f"checkpoint does not load ({type(err).__name__})")
        return None
    return model.eval(), record, stored["report"]


def stage_model(recipe: Recipe, stage: str, store: Store) -> nn.Module | None:
    """The stored model of `recipe` after its stages up to `stage` (the KD student, after distill), or None while
    it is not stored. A fresh copy: the caller may change it."""
    index = recipe.stages.index(stage)
    loaded = _load_checkpoint(store, recipe.stage_key(index), recipe, index, splits_for(recipe))
    return loaded[0] if loaded is not None else None


def _save_checkpoint(store: Store, key: str, recipe: Recipe, model: nn.Module, record: StageRecord,
                     report: dict[str, Any] | None, workdir: Path) -> None:
    """Store the model after a stage prefix: its state_dict, and in the row its layer shapes, record and report."""
    torch.save(model.state_dict(), workdir / CHECKPOINT)
    store.put("checkpoint", key, {"dataset": recipe.dataset, "model": recipe.model, "record": asdict(record),
                                  "report": report, "layer_shapes": layer_shapes(model)},
              {CHECKPOINT: workdir / CHECKPOINT})


@dataclass
class Compressed:
    """The outcome of a recipe's stages: the final model's counts, how it deploys, and the path there."""

    counts: Counts
    deployed: Deployed
    records: list[StageRecord]
    distill_report: dict[str, Any] | None  # as a checkpoint stores it: without the student's own accuracy


def _apply_stages(recipe: Recipe, model: nn.Module, base: Result, splits: Splits, store: Store, workdir: Path,
                  clock: StageClock, progress: ProgressFn) -> Compressed:
    """Apply the recipe's stages in order. The model after each stage prefix is stored, so recipes that begin
    alike (the same pruning, quantized three ways) compute the shared stages once. `model` is the baseline."""
    baseline, records, report, deployed, channels = model, [_baseline_record(base)], None, None, None
    for index, name in enumerate(recipe.stages):
        key = recipe.stage_key(index)
        loaded = _load_checkpoint(store, key, recipe, index, splits)
        if loaded is not None:
            progress(Progress(name, f"model after {'+'.join(recipe.stages[:index + 1])} served from the store"))
            model, record, stage_report, deployed = *loaded, None
        else:
            started, log = time.perf_counter(), StopLog(progress)
            with clock.stage(name):
                model, stage_report = _transform(name, recipe, model, baseline, records[-1], splits, store,
                                                 workdir / name, log)
            seconds = time.perf_counter() - started
            progress(Progress(name, "export and measure the stage's deployable model"))
            with clock.stage("export"):
                deployed = deploy(model, _quant_so_far(recipe, name), splits, workdir / name, timing=timing_of(recipe))
            record = _record(name, deployed, quantize.stored_counts(model, _quant_so_far(recipe, name),
                                                                   splits.input_shape), seconds, log.stops)
            if name == "prune":
                record = from_json(StageRecord, {**asdict(record), "rounds": stage_report["rounds"]})
            stage_report = _kd_compared(stage_report, deployed, splits) if name == "distill" else stage_report
            _save_checkpoint(store, key, recipe, model, record, stage_report, workdir / name)
        records.append(record)
        report = stage_report if name == "distill" else report
        channels = stage_report.get("channels") if name == "prune" and stage_report else channels
    if deployed is None:
        with clock.stage("export"):
            deployed = deploy(model, recipe.quant, splits, workdir / "final", timing=timing_of(recipe))
    counts = quantize.stored_counts(model, recipe.quant, splits.input_shape)
    return Compressed(replace(counts, layers=_with_choices(counts.layers, channels)), deployed, records, report)


def _with_choices(layers: list[LayerSparsity], channels: list[dict[str, Any]] | None) -> list[LayerSparsity]:
    """`layers` with the channels round_to auto asked each to keep and kept, where it chose them."""
    chosen = {c["name"]: c for c in channels or []}
    return [replace(layer, channels_asked=chosen[layer.name]["asked"], channels_kept=chosen[layer.name]["kept"])
            if layer.name in chosen else layer for layer in layers]


def _in_runtime(recipe: Recipe, source: Path, base: Result | None, splits: Splits, workdir: Path,
                clock: StageClock, progress: ProgressFn) -> Compressed:
    """A runtime-only import (no torch form): its own file as the baseline, or the file its quant stage's
    converter makes of it; counted from the float graph, which quantization does not change."""
    counts = onnx_counts(source, splits.input_shape)
    if base is None:
        with clock.stage("export"):
            return Compressed(counts, deploy(None, None, splits, workdir, source, timing_of(recipe)), [], None)
    progress(Progress("quant", f"convert the ONNX file to {recipe.quant.mode} with onnxruntime's tools"))
    started = time.perf_counter()
    with clock.stage("quant"):
        deployed = deploy(None, recipe.quant, splits, workdir / "quant", float_onnx=source, timing=timing_of(recipe))
    records = [_baseline_record(base), _record("quant", deployed, counts, time.perf_counter() - started)]
    return Compressed(counts, deployed, records, None)


def _measure(recipe: Recipe, counts: Counts, splits: Splits, deployed: Deployed, base: Result | None,
             base_onnx: Path | None, clock: StageClock, progress: ProgressFn) -> Result:
    """Measure the deployed model; latency is timed interleaved with the baseline's ONNX when there is one,
    and not at all for a simulated format (no runtime executes it)."""
    batched = single = [None, None]
    interval = None
    if deployed.runnable:
        paths = [deployed.onnx] if base_onnx is None else [deployed.onnx, base_onnx]
        where = recipe.provider if recipe.runtime == Recipe.runtime else recipe.runtime
        progress(Progress("measure", f"latency on {where}: batch {recipe.batch} and 1, {recipe.threads} thread(s)"))
        with clock.stage("measure"):
            rounds = time_rounds(paths, splits.input_shape, recipe.batch, recipe.threads,
                                 provider=recipe.provider, runtime=recipe.runtime)
            single = time_interleaved(paths, splits.input_shape, 1, recipe.threads, provider=recipe.provider,
                                      runtime=recipe.runtime)
        batched = rounds.latencies
        interval = rounds.speedup_interval(0, 1) if base_onnx is not None else None
    total, nonzero, flops = counts.params_total, counts.params_nonzero, counts.flops
    baseline_latency = batched[-1]
    return Result(
        recipe=recipe.to_dict(), recipe_hash=recipe.hash, dataset=recipe.dataset, model=recipe.model,
        accuracy=deployed.accuracy, accuracy_source=deployed.accuracy_source,
        baseline_accuracy=base.accuracy if base else deployed.accuracy,
        params_total=total, params_nonzero=nonzero, sparsity=1 - nonzero / total,
        size_bytes=deployed.size_bytes, size_gzip_bytes=deployed.size_gzip_bytes, flops=flops,
        latency_ms=batched[0], latency_ms_single=single[0], latency_measured=deployed.runnable,
        speedup_vs_baseline=speedup(baseline_latency, batched[0]) if deployed.runnable else None,
        size_ratio_vs_baseline=deployed.size_bytes / base.size_bytes if base else 1.0,
        stage_seconds=clock.seconds, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        baseline_latency_ms=baseline_latency, layers=counts.layers, val_accuracy=deployed.val_accuracy,
        flops_ratio_vs_baseline=flops / base.flops if base else 1.0,
        size_gzip_ratio_vs_baseline=deployed.size_gzip_bytes / base.size_gzip_bytes if base else 1.0,
        provenance=provenance(recipe.threads, recipe.batch, recipe.provider, recipe.runtime),
        size_source=deployed.size_source,
        technique=recipe.technique, quant=deployed.quant_report, counts_source=counts.source,
        test_images=len(splits.test.y), speedup_interval=interval,
    )


def run(recipe: Recipe, store: Store | None = None, progress: ProgressFn = silent) -> Result:
    """The measured Result of `recipe` (an image folder's keyed by its contents now: folders.pinned): from the
    store if it is there, else computed and stored."""
    recipe.validate()
    recipe = folders.pinned(recipe)
    store = store or Store()
    cached = store.get_result(recipe.hash)
    if cached is not None:
        progress(Progress("store", f"served from the store ({recipe.hash})"))
        return cached
    training_device()  # a device asked for and not present: one line before any work
    check_runtime(recipe.runtime, recipe.provider)
    _clean_once(store)
    clock = StageClock()
    with clock.stage("load"):
        splits = splits_for(recipe)
    check_feasible(recipe, splits)
    base = None if recipe.is_baseline else _timeable_baseline(recipe, store, progress)
    source = imports.runtime_source(recipe.model, store)
    with store.workdir() as tmp:
        if source is not None:
            compressed = _in_runtime(recipe, source, base, splits, tmp, clock, progress)
        else:
            compressed = _in_torch(recipe, base, splits, store, tmp, clock, progress)
        progress(Progress("measure", "latency, size, FLOPs"))
        result = _measure(recipe, compressed.counts, splits, compressed.deployed, base,
                          store.path(base, ONNX) if base else None, clock, progress)
        result.stages, result.distill = compressed.records, _distill_result(compressed)
        result.accuracy_p_value = _paired_p_value(store, base, compressed.deployed, splits)
        files = {}
        if compressed.deployed.runnable:
            files = {ONNX: compressed.deployed.onnx, PREDICTIONS: tmp / PREDICTIONS}
            np.save(files[PREDICTIONS], compressed.deployed.predictions.astype(np.int32), allow_pickle=False)
        return store.put_result(result, files)


def _paired_p_value(store: Store, base: Result | None, deployed: Deployed, splits: Splits) -> float | None:
    """McNemar's exact p-value of the deployed model against its baseline on the test images, from their
    predictions (None for the baseline itself, a simulated format, or a baseline stored without predictions)."""
    if base is None or deployed.predictions is None or PREDICTIONS not in base.artifacts:
        return None
    labels = splits.test.y.numpy()
    return mcnemar(classes.stored_predictions(store, base) == labels, deployed.predictions == labels).p_value


def _in_torch(recipe: Recipe, base: Result | None, splits: Splits, store: Store, workdir: Path, clock: StageClock,
              progress: ProgressFn) -> Compressed:
    """The trained (or imported) baseline in torch, deployed as it is or through the recipe's stages."""
    with clock.stage("train"):
        model = baseline_model(store, recipe.baseline(), splits, progress)
    if base is None:
        with clock.stage("export"):
            return Compressed(torch_counts(model, splits.input_shape),
                              deploy(model, None, splits, workdir, timing=timing_of(recipe)), [], None)
    return _apply_stages(recipe, model, base, splits, store, workdir, clock, progress)


@lru_cache(maxsize=None)
def _cleaned(root: Path) -> list[Path]:
    return Store(root).clean_orphans()


def _clean_once(store: Store) -> None:
    """Remove what killed runs left in the store (old staging and work folders, unnamed artifact folders),
    once per process and store: the next computing run is what tidies up after a crash."""
    _cleaned(store.root.resolve())


def _timeable_baseline(recipe: Recipe, store: Store, progress: ProgressFn) -> Result:
    """The baseline Result of `recipe`, its ONNX file checked to load in onnxruntime (the compressed model is
    timed beside it): a stored one whose file does not load is quarantined and measured again."""
    base = run(recipe.baseline(), store, progress)
    try:
        session(store.path(base, ONNX))
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own error types for a file it cannot run
        store.quarantine("result", base.recipe_hash, f"{ONNX} does not load in onnxruntime ({type(err).__name__})")
        base = run(recipe.baseline(), store, progress)
    return base


def _distill_result(compressed: Compressed) -> DistillReport | None:
    """The distillation report with the KD student's own accuracy and its gain over the label-only control."""
    report = compressed.distill_report
    if report is None:
        return None
    student = next(r for r in compressed.records if r.stage == "distill")
    return from_json(DistillReport, {**report, "student_accuracy": student.accuracy,
                                     "kd_gain": student.accuracy - report["control_accuracy"]})


def sensitivity_table(recipe: Recipe, method: str, store: Store | None = None,
                      progress: ProgressFn = silent) -> SensitivityTable:
    """Per-layer pruning sensitivity of the recipe's baseline on the validation split (stored, never redone)."""
    recipe.validate()
    store = store or Store()
    cached = stored_sensitivity(recipe, method, store)
    if cached is not None:
        progress(Progress("store", f"served from the store ({recipe.sensitivity_key(method)})"))
        return cached
    base = run(recipe.baseline(), store, progress)
    splits = splits_for(recipe)
    model = baseline_model(store, recipe.baseline(), splits, progress)
    table = SensitivityTable(
        dataset=recipe.dataset, model=recipe.model, method=method, baseline_hash=base.recipe_hash,
        split="validation", runtime="torch (no fine-tuning)", baseline_val_accuracy=evaluate(model, splits.val),
        ratios=list(SENSITIVITY_RATIOS), layers=sensitivity(model, splits, method, recipe.seed, progress=progress))
    store.put("sensitivity", recipe.sensitivity_key(method), table.to_dict())
    return table


def stored_sensitivity(recipe: Recipe, method: str, store: Store) -> SensitivityTable | None:
    """The stored sensitivity table of the recipe's baseline under `method`, or None (nothing is computed)."""
    stored = store.get("sensitivity", recipe.sensitivity_key(method))
    return from_json(SensitivityTable, stored) if stored is not None else None


def class_view(store: Store, result: Result) -> classes.ClassView:
    """Per-class accuracy and the confusion matrix of a stored result's deployed file on its test split."""
    splits = splits_for(Recipe.from_dict(result.recipe))
    return classes.view(classes.stored_predictions(store, result), splits.test.y.numpy(), splits.classes)


def compare_results(store: Store, reference: Result, other: Result) -> classes.Comparison:
    """Two stored results compared image by image on their shared test split (one line where they do not
    share one: another data set, seed or input size)."""
    split_of = [(r.dataset, r.recipe["seed"], data_view(r.model)) for r in (reference, other)]
    if split_of[0] != split_of[1]:
        raise CompressionError("the two results were scored on different test splits (data set, seed or input "
                               "size differ): compare results of one workspace")
    splits = splits_for(Recipe.from_dict(reference.recipe))
    return classes.compare(classes.stored_predictions(store, reference), classes.stored_predictions(store, other),
                           splits.test.y.numpy(), splits.classes)
