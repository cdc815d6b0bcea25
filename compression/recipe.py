"""Recipe (what to do): the stage specs and the Recipe that combines them, frozen dataclasses with a stable JSON
form and one hash per model. What was measured is compression.result."""

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from compression.catalog import (ALPHA, BITS, CALIBRATIONS, GRANULARITIES, INT8_LAYOUTS, MAX_BATCH, MAX_CALIB_SAMPLES, MAX_DROP,
                                 MAX_EPOCHS, MAX_PRUNE_STEPS, MAX_ROUND_TO, MODELS, PATIENCE, PRUNE_LAMBDA, PRUNE_METHODS, PRUNE_RATIO,
                                 PROVIDERS, QUANT_MODES, ROUND_TO_AUTO, RUNTIMES, QUANT_SCHEMES, SEEDS, STAGES, TEMPERATURE, WIDTH, Bounds, max_threads, PruneMethod, QuantMode, check_dataset, check_model)
from compression.errors import CompressionError


# Defaults of the trainings after a cut (bench/default_chain.py chose them on the validation split, seeds 0-4:
# patience 25 / 50 / 100 × labels / KD; its longest stop was 313 epochs, so the caps only bound a run's time).
DEFAULT_PATIENCE = 100  # plateau stop of fine-tuning, distillation and QAT
FINETUNE_CAP = 1280     # at most this many fine-tuning epochs a pruning round
DISTILL_CAP = 1280      # at most this many student epochs
PRUNE_KD = True         # pruning fine-tunes on the KD loss against the unpruned model (the baseline in a chain)


def digest(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `data`, 16 hex digits."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PruneSpec:
    """How to prune: method, final fraction removed, prune/fine-tune rounds, λ for activation importance,
    (structured only) a multiple that every pruned layer's channel count is rounded down to (ROUND_TO_AUTO, 0:
    each layer's count chosen on this CPU's measured latency staircase, compression.staircase), and whether
    fine-tuning learns from the baseline as teacher (`kd`: the KD loss at DistillSpec's default T and α)
    rather than from the labels alone. With `patience`, each round fine-tunes for at most `finetune_epochs`,
    stopping once validation has not improved for `patience` epochs (train.Plateau); 0: exactly
    `finetune_epochs`, on a one-cycle schedule."""

    method: str
    ratio: float
    steps: int = 1
    finetune_epochs: int = FINETUNE_CAP
    lam: float = 0.5
    round_to: int = 1
    kd: bool = PRUNE_KD
    patience: int = DEFAULT_PATIENCE

    def __post_init__(self) -> None:
        if self.round_to == "auto":  # as a sweep's grid may name it
            object.__setattr__(self, "round_to", ROUND_TO_AUTO)

    def validate(self) -> None:
        """Raise a one-line CompressionError for a method, ratio, step count or λ out of range."""
        PRUNE_METHODS[self.method]
        _within("prune ratio", self.ratio, PRUNE_RATIO)
        if self.steps < 1:
            raise CompressionError(f"prune steps must be at least 1, got {self.steps}")
        _at_most("prune steps", self.steps, MAX_PRUNE_STEPS)
        if self.finetune_epochs < 0:
            raise CompressionError(f"fine-tune epochs must not be negative, got {self.finetune_epochs}")
        _at_most("fine-tune epochs", self.finetune_epochs, MAX_EPOCHS)
        _patience("fine-tune", self.patience)
        _within("prune lambda", self.lam, PRUNE_LAMBDA)
        if self.round_to < 0:
            raise CompressionError(f"prune round-to must be auto or at least 1, got {self.round_to}")
        _at_most("prune round-to", self.round_to, MAX_ROUND_TO)
        if self.round_to != 1 and not self.structured:
            raise CompressionError(f"prune round-to applies to channel pruning only, not to {self.method}")

    @property
    def structured(self) -> bool:
        """Whether the method removes whole channels (the tensors shrink) rather than zeroing weights."""
        method = PRUNE_METHODS.get(self.method)
        return method is not None and method.structured

    @property
    def technique(self) -> PruneMethod:
        """The registered method (its capabilities and implementation)."""
        return PRUNE_METHODS[self.method]

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data; `patience` (added later) left out at 0, so fixed-length specs keep their
        hashes."""
        return _without_zero_patience(asdict(self), "patience")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PruneSpec":
        """The spec of `data`; one stored before `patience` existed fine-tuned for a fixed length (0)."""
        return cls(**{"patience": 0, **data})


def _choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a one-line CompressionError unless `value` is one of `choices`."""
    if value not in choices:
        raise CompressionError(f"unknown {what} '{value}': choose one of {', '.join(choices)}")


def _within(what: str, value: float, bounds: Bounds) -> None:
    """Raise a one-line CompressionError unless bounds.low <= value <= bounds.high (NaN is never within)."""
    if not bounds.low <= value <= bounds.high:
        raise CompressionError(f"{what} must be within {bounds.text()}, got {value}")


def _patience(what: str, value: int) -> None:
    """Raise a one-line CompressionError unless `value` is a patience of PATIENCE's range (0: no plateau stop)."""
    if not PATIENCE.low <= value <= PATIENCE.high:
        raise CompressionError(f"{what} patience must be within {PATIENCE.text()} epochs (0: no plateau stop), "
                               f"got {value}")


def _without_zero_patience(data: dict[str, Any], name: str) -> dict[str, Any]:
    """`data` without its patience field `name` where it is 0: a spec from before patience existed, whose hash
    must not change."""
    if not data[name]:
        del data[name]
    return data


def _at_most(what: str, value: int, limit: int) -> None:
    """Raise a one-line CompressionError if `value` exceeds the hard `limit`."""
    if value > limit:
        raise CompressionError(f"{what} must be at most {limit:,}, got {value:,}")


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize. int8-static / int8-dynamic / fp16 are real formats run by onnxruntime; fake simulates
    `bits`-bit weights (and optionally activations) in torch. `scheme` is the affine mapping of what is
    quantized (for int8-static: of the activations; weights are symmetric int8, as the runtime's fast
    kernels need); calibration chooses activation ranges on `calib_samples` train images; `qat_epochs`
    fine-tunes with fake quantization and a straight-through gradient first; `layout` (int8-static) shapes the
    file for onnxruntime's CPU kernels (catalog.INT8_LAYOUTS; auto: timed, the fastest that keeps accuracy);
    `max_drop` (int8-static, mixed precision) keeps the most sensitive layers in float until the validation
    accuracy is at most this many points below the float model's (None: every layer in int8). With
    `qat_patience`, QAT runs for at most `qat_epochs`, stopped on a validation plateau (train.Plateau; 0: exactly
    `qat_epochs`); without QAT it is 0."""

    mode: str
    bits: int = 8
    scheme: str = "asymmetric"
    granularity: str = "per-channel"
    calibration: str = "minmax"
    calib_samples: int = 256
    qat_epochs: int = 0
    activations: bool = False
    layout: str = "auto"
    max_drop: float | None = None
    qat_patience: int = DEFAULT_PATIENCE

    def __post_init__(self) -> None:
        """Settings the mode does not use are set to their defaults, so that one model has one recipe (and
        one stored result) whatever they were given as; settings that contradict the mode are left for
        validate() to refuse."""
        mode = QUANT_MODES.get(self.mode)
        used = {"scheme": mode is not None and mode.uses_scheme,
                "granularity": mode is not None and mode.uses_granularity,
                "activations": mode is not None and mode.activations == "optional",
                "layout": mode is not None and mode.uses_layout,
                "calibration": self.calibrates, "calib_samples": self.calibrates}
        for name, kept in used.items():
            if not kept:
                object.__setattr__(self, name, getattr(type(self), name))
        if not self.qat_epochs:  # no QAT, nothing to stop: the recipe (and hash) of post-training quantization
            object.__setattr__(self, "qat_patience", 0)

    @property
    def technique(self) -> QuantMode:
        """The registered mode (its capabilities and implementation)."""
        return QUANT_MODES[self.mode]

    @property
    def calibrates(self) -> bool:
        """Whether activation ranges are calibrated on train images (and the calibration settings apply)."""
        mode = QUANT_MODES.get(self.mode)
        return mode is not None and (mode.activations == "always" or (mode.activations == "optional"
                                                                      and self.activations))

    def validate(self) -> None:
        """Raise a one-line CompressionError for a mode, bit width or setting no quantizer can use."""
        mode = self.technique
        _choice("quantization scheme", self.scheme, QUANT_SCHEMES)
        _choice("quantization granularity", self.granularity, GRANULARITIES)
        _choice("calibration method", self.calibration, CALIBRATIONS)
        _choice("INT8 layout", self.layout, tuple(INT8_LAYOUTS))
        _within("bits", self.bits, BITS)
        if not mode.simulated and self.bits != QuantSpec.bits:
            raise CompressionError(f"--bits {self.bits} needs --quant fake: {self.mode} has a fixed width")
        if self.calib_samples < 1:
            raise CompressionError(f"calibration samples must be at least 1, got {self.calib_samples}")
        _at_most("calibration samples", self.calib_samples, MAX_CALIB_SAMPLES)
        if self.qat_epochs < 0:
            raise CompressionError(f"QAT epochs must not be negative, got {self.qat_epochs}")
        _at_most("QAT epochs", self.qat_epochs, MAX_EPOCHS)
        _patience("QAT", self.qat_patience)
        if self.max_drop is not None:
            if not mode.mixed_precision:
                raise CompressionError(f"--max-drop (mixed precision) applies to "
                                       f"{' and '.join(QUANT_MODES.where(mixed_precision=True))}, not to {self.mode}")
            _within("--max-drop (validation accuracy points)", self.max_drop, MAX_DROP)
        if self.qat_epochs and not mode.supports_qat:
            raise CompressionError(f"QAT applies to {' and '.join(QUANT_MODES.where(supports_qat=True))}, "
                                   f"not to {self.mode}")

    @property
    def simulated(self) -> bool:
        """Whether the quantized model exists only as a torch simulation (no runtime format)."""
        return self.technique.simulated

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data: `layout` and `max_drop`, added later, only where the mode uses them (and
        `max_drop` only when set, `qat_patience` only when not 0), so the recipes of other modes and settings
        keep their keys (and hashes)."""
        data = asdict(self)
        if not (self.mode in QUANT_MODES and QUANT_MODES[self.mode].uses_layout):
            del data["layout"]
        if self.max_drop is None:
            del data["max_drop"]
        return _without_zero_patience(data, "qat_patience")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantSpec":
        """The spec of `data`; an int8-static spec stored before layouts existed was converted plain, one stored
        before `qat_patience` existed ran its QAT for a fixed length (0)."""
        return cls(**{"layout": "plain", "qat_patience": 0, **data})


@dataclass(frozen=True)
class DistillSpec:
    """How to distil: a student of the teacher's family at `width`, or the named `student` model, trained for
    `epochs` on α · T² · KL(teacher_T ‖ student_T) + (1 − α) · CE(student, labels); with `patience`, for at
    most `epochs`, stopped on a validation plateau (train.Plateau; 0: exactly `epochs`, one-cycle)."""

    width: float = 0.25
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = DISTILL_CAP
    student: str | None = None
    patience: int = DEFAULT_PATIENCE

    def validate(self, teacher: str) -> None:
        """Raise a one-line CompressionError for a width, temperature, α or student no run could use."""
        _within("distill width", self.width, WIDTH)
        _within("distill temperature", self.temperature, TEMPERATURE)
        _within("distill alpha", self.alpha, ALPHA)
        if self.epochs < 1:
            raise CompressionError(f"distill epochs must be at least 1, got {self.epochs}")
        _at_most("distill epochs", self.epochs, MAX_EPOCHS)
        _patience("distill", self.patience)
        student = self.student or teacher
        if self.student is not None:
            check_model(self.student)
            if MODELS[self.student].runtime_only:
                raise CompressionError(f"student {self.student} runs in onnxruntime only: a student trains in torch")
        elif MODELS[teacher].imported:
            raise CompressionError(f"an imported model distils into a built-in student: name one of "
                                   f"{', '.join(MODELS.where(scalable=True))} (--distill-student)")
        if self.width != 1.0 and not MODELS[student].scalable:
            raise CompressionError(f"a width multiplier applies to {', '.join(MODELS.where(scalable=True))}; for {student} "
                                   f"name a smaller student model instead")

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data; `patience` (added later) left out at 0, so fixed-length specs keep their
        hashes."""
        return _without_zero_patience(asdict(self), "patience")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistillSpec":
        """The spec of `data`; one stored before `patience` existed trained for a fixed length (0)."""
        return cls(**{"patience": 0, **data})


@dataclass(frozen=True)
class Format:
    """How a tensor kind (weights or activations) is quantized: bit width, affine scheme, granularity."""

    bits: int
    scheme: str
    granularity: str = "per-tensor"


def _canonical_order(order: tuple[str, ...], present: tuple[str, ...]) -> tuple[str, ...]:
    """The stages present, in the given order, then the absent ones in the default order (so that two
    orders that differ only in absent stages are the same recipe)."""
    if sorted(set(order)) != sorted(order) or not set(order) <= set(STAGES) or not set(present) <= set(order):
        return tuple(order)  # invalid: left as given for validate() to name
    return (*[s for s in order if s in present], *[s for s in STAGES if s not in present])


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a result: data, model, training, compression stages, timing setup."""

    dataset: str = "digits"
    model: str = "cnn"
    seed: int = 0
    epochs: int = 20
    pretrained: bool = False
    prune: PruneSpec | None = None
    order: tuple[str, ...] = STAGES
    threads: int = 1
    batch: int = 32
    quant: QuantSpec | None = None
    distill: DistillSpec | None = None
    provider: str = "cpu"  # onnxruntime's execution provider latency is timed on (a key of PROVIDERS)
    runtime: str = "onnxruntime"  # what the deployed file is measured in, accuracy and latency (a key of RUNTIMES)
    data_version: str | None = None  # an image folder's contents when the recipe was made (folders.pinned)

    def __post_init__(self) -> None:
        present = tuple(s for s, spec in self._specs.items() if spec is not None)
        object.__setattr__(self, "order", _canonical_order(tuple(self.order), present))
        if self.distill is not None and self.distill.student == self.model:  # the default student, named
            object.__setattr__(self, "distill", replace(self.distill, student=None))
        family = MODELS.get(self.model)
        if family is not None and family.imported:  # measured as given: no baseline training to vary
            object.__setattr__(self, "epochs", 0)
            object.__setattr__(self, "pretrained", False)

    @property
    def _specs(self) -> dict[str, Any]:
        return {"distill": self.distill, "prune": self.prune, "quant": self.quant}

    @property
    def stages(self) -> tuple[str, ...]:
        """The compression stages this recipe applies, in the order they run."""
        return tuple(s for s in self.order if self._specs.get(s) is not None)

    def validate(self) -> None:
        """Raise a one-line CompressionError for values no run could use (cheap; loads nothing)."""
        check_dataset(self.dataset)
        check_model(self.model, self.pretrained)
        if self.epochs < 0:
            raise CompressionError(f"epochs must not be negative, got {self.epochs}")
        _at_most("epochs", self.epochs, MAX_EPOCHS)
        _within("seed", self.seed, SEEDS)
        if self.threads < 1:
            raise CompressionError(f"threads must be at least 1, got {self.threads}")
        _at_most("threads (4 per core of this machine)", self.threads, max_threads())
        if self.batch < 1:
            raise CompressionError(f"latency batch must be at least 1, got {self.batch}")
        _at_most("latency batch", self.batch, MAX_BATCH)
        _choice("execution provider", self.provider, tuple(PROVIDERS))
        _choice("runtime", self.runtime, tuple(RUNTIMES))
        if self.runtime != Recipe.runtime and self.provider != Recipe.provider:
            raise CompressionError(f"--provider {self.provider} is onnxruntime's: --runtime {self.runtime} runs on "
                                   "its own CPU plugin")
        self._validate_order()
        self._validate_runtime_only()
        if self.prune is not None:
            self.prune.validate()
        if self.quant is not None:
            self.quant.validate()
        if self.distill is not None:
            self.distill.validate(self.model)

    def _validate_runtime_only(self) -> None:
        """Refuse what needs a torch form for a model onnxruntime alone runs (an ONNX graph onnx2torch cannot
        convert): only its post-training formats apply."""
        reason = MODELS[self.model].runtime_only
        if reason is None:
            return
        needs_torch = [s for s in ("prune", "distill") if self._specs[s] is not None]
        if self.quant is not None and self.quant.simulated:
            needs_torch.append(f"--quant {self.quant.mode}")
        elif self.quant is not None and self.quant.qat_epochs:
            needs_torch.append("QAT")
        if needs_torch:
            formats = ", ".join(QUANT_MODES.where(simulated=False))
            raise CompressionError(f"{self.model} runs in onnxruntime only ({reason}): {needs_torch[0]} needs a "
                                   f"torch form; its post-training formats apply (--quant {formats})")

    def _validate_order(self) -> None:
        unknown = [s for s in self.order if s not in STAGES]
        if unknown:
            raise CompressionError(f"unknown stage '{unknown[0]}' in order: stages are {', '.join(STAGES)}")
        if len(set(self.order)) != len(self.order):
            raise CompressionError(f"order names a stage twice: {','.join(self.order)}")
        missing = [s for s, spec in self._specs.items() if spec is not None and s not in self.order]
        if missing:
            raise CompressionError(f"order {','.join(self.order)} leaves out the {missing[0]} stage the recipe uses")

    @property
    def is_baseline(self) -> bool:
        return not self.stages

    @property
    def technique(self) -> str:
        """What was done, for legends: 'baseline' or the stages joined by '+' in their order."""
        return "+".join(self.stages) or "baseline"

    def baseline(self) -> "Recipe":
        """The uncompressed recipe this one is compared against (same data, model, training, timing)."""
        return replace(self, prune=None, quant=None, distill=None, order=STAGES)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON-ready data (what the store and the Result keep). The provider, the runtime and the
        data version, added later, are left out at their defaults: results stored before them keep their keys."""
        data = {**asdict(self), "order": list(self.order)}
        for name, spec in self._specs.items():
            if spec is not None:
                data[name] = spec.to_dict()
        for name in ("provider", "runtime", "data_version"):
            if data[name] == getattr(Recipe, name):
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        specs = {"prune": PruneSpec.from_dict, "quant": QuantSpec.from_dict, "distill": DistillSpec.from_dict}
        values = {**data, "order": tuple(data["order"])}
        for name, spec in specs.items():
            values[name] = spec(data[name]) if data.get(name) else None
        return cls(**values)

    @property
    def training_key(self) -> str:
        """Key of the trained baseline weights: only what training depends on (not the timing setup)."""
        fields_ = {"dataset": self.dataset, "model": self.model, "seed": self.seed, "epochs": self.epochs,
                   "pretrained": self.pretrained}
        if self.data_version is not None:
            fields_["data_version"] = self.data_version
        return digest(fields_)

    def stage_key(self, index: int) -> str:
        """Key of the model after the first `index` + 1 stages: recipes that begin alike share it."""
        prefix = [[name, self._specs[name].to_dict()] for name in self.stages[:index + 1]]
        data: dict[str, Any] = {"training": self.training_key, "stages": prefix}
        if "prune" in self.stages[:index + 1] and self.prune.round_to == ROUND_TO_AUTO:  # counts follow the timing
            data["timing"] = [self.threads, self.batch, self.provider]
        return digest(data)

    def sensitivity_key(self, method: str) -> str:
        """Store key of the per-layer sensitivity table of this recipe's baseline under `method`."""
        return f"{self.baseline().hash}-{method}"

    @property
    def hash(self) -> str:
        """Stable key of this recipe: sha256 of its canonical JSON, 16 hex digits."""
        return digest(self.to_dict())


