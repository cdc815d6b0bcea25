"""Recipe (what to do) and Result (what was measured), as plain dataclasses with a stable JSON form."""

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from compression.catalog import (CALIBRATIONS, GRANULARITIES, INT8_MODES, MAX_BITS, MAX_PRUNE_RATIO,
                                 MAX_TEMPERATURE, MAX_WIDTH, MIN_BITS, MIN_TEMPERATURE, MIN_WIDTH, PRUNE_METHODS,
                                 QAT_MODES, QUANT_MODES, QUANT_SCHEMES, STAGES, STRUCTURED_METHODS, WIDTH_MODELS,
                                 check_dataset, check_model)
from compression.errors import CompressionError

def _digest(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `data`, 16 hex digits."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PruneSpec:
    """How to prune: method, final fraction removed, prune/fine-tune rounds, λ for activation importance,
    (structured only) a multiple that every pruned layer's channel count is rounded down to, and whether
    fine-tuning learns from the baseline as teacher (`kd`: the KD loss at DistillSpec's default T and α)
    rather than from the labels alone."""

    method: str
    ratio: float
    steps: int = 1
    finetune_epochs: int = 10
    lam: float = 0.5
    round_to: int = 1
    kd: bool = False

    def validate(self) -> None:
        """Raise a one-line CompressionError for a method, ratio, step count or λ out of range."""
        _choice("prune method", self.method, PRUNE_METHODS)
        if not 0.0 <= self.ratio <= MAX_PRUNE_RATIO:
            raise CompressionError(f"prune ratio must be within 0 … {MAX_PRUNE_RATIO}, got {self.ratio}")
        if self.steps < 1:
            raise CompressionError(f"prune steps must be at least 1, got {self.steps}")
        if self.finetune_epochs < 0:
            raise CompressionError(f"fine-tune epochs must not be negative, got {self.finetune_epochs}")
        if not 0.0 <= self.lam <= 1.0:
            raise CompressionError(f"prune lambda must be within 0 … 1, got {self.lam}")
        if self.round_to < 1:
            raise CompressionError(f"prune round-to must be at least 1, got {self.round_to}")
        if self.round_to > 1 and not self.structured:
            raise CompressionError(f"prune round-to applies to channel pruning only, not to {self.method}")

    @property
    def structured(self) -> bool:
        return self.method in STRUCTURED_METHODS


def _choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a one-line CompressionError unless `value` is one of `choices`."""
    if value not in choices:
        raise CompressionError(f"unknown {what} '{value}': choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize. int8-static / int8-dynamic / fp16 are real formats run by onnxruntime; fake simulates
    `bits`-bit weights (and optionally activations) in torch. `scheme` is the affine mapping of what is
    quantized (for int8-static: of the activations; weights are symmetric int8, as the runtime's fast
    kernels need); calibration chooses activation ranges on `calib_samples` train images; `qat_epochs`
    fine-tunes with fake quantization and a straight-through gradient first."""

    mode: str
    bits: int = 8
    scheme: str = "asymmetric"
    granularity: str = "per-channel"
    calibration: str = "minmax"
    calib_samples: int = 256
    qat_epochs: int = 0
    activations: bool = False

    def __post_init__(self) -> None:
        """Settings the mode does not use are set to their defaults, so that one model has one recipe (and
        one stored result) whatever they were given as; settings that contradict the mode are left for
        validate() to refuse."""
        fake, static = self.mode == "fake", self.mode == "int8-static"
        calibrates = static or (fake and self.activations)
        defaults = {"scheme": fake or static, "granularity": fake or self.mode in INT8_MODES,
                    "activations": fake, "calibration": calibrates, "calib_samples": calibrates}
        for name, used in defaults.items():
            if not used:
                object.__setattr__(self, name, getattr(type(self), name))

    def validate(self) -> None:
        """Raise a one-line CompressionError for a mode, bit width or setting no quantizer can use."""
        _choice("quantization mode", self.mode, QUANT_MODES)
        _choice("quantization scheme", self.scheme, QUANT_SCHEMES)
        _choice("quantization granularity", self.granularity, GRANULARITIES)
        _choice("calibration method", self.calibration, CALIBRATIONS)
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise CompressionError(f"bits must be within {MIN_BITS} … {MAX_BITS}, got {self.bits}")
        if self.mode != "fake" and self.bits != 8:
            raise CompressionError(f"--bits {self.bits} needs --quant fake: {self.mode} has a fixed width")
        if self.calib_samples < 1:
            raise CompressionError(f"calibration samples must be at least 1, got {self.calib_samples}")
        if self.qat_epochs < 0:
            raise CompressionError(f"QAT epochs must not be negative, got {self.qat_epochs}")
        if self.qat_epochs and self.mode not in QAT_MODES:
            raise CompressionError(f"QAT applies to {' and '.join(QAT_MODES)}, not to {self.mode}")

    @property
    def simulated(self) -> bool:
        """Whether the quantized model exists only as a torch simulation (no runtime format)."""
        return self.mode == "fake"


@dataclass(frozen=True)
class DistillSpec:
    """How to distil: a student of the teacher's family at `width`, or the named `student` model, trained for
    `epochs` on α · T² · KL(teacher_T ‖ student_T) + (1 − α) · CE(student, labels)."""

    width: float = 0.25
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 80  # the best KD student by 5-fold cross-validation of 40 / 80 / 160 (bench/distillation_epochs.py)
    student: str | None = None

    def validate(self, teacher: str) -> None:
        """Raise a one-line CompressionError for a width, temperature, α or student no run could use."""
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise CompressionError(f"distill width must be within {MIN_WIDTH} … {MAX_WIDTH}, got {self.width}")
        if not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE:
            raise CompressionError(f"distill temperature must be within {MIN_TEMPERATURE:g} … "
                                   f"{MAX_TEMPERATURE:g}, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise CompressionError(f"distill alpha must be within 0 … 1, got {self.alpha}")
        if self.epochs < 1:
            raise CompressionError(f"distill epochs must be at least 1, got {self.epochs}")
        student = self.student or teacher
        if self.student is not None:
            check_model(self.student)
        if self.width != 1.0 and student not in WIDTH_MODELS:
            raise CompressionError(f"a width multiplier applies to {', '.join(WIDTH_MODELS)}; for {student} "
                                   f"name a smaller student model instead")


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

    def __post_init__(self) -> None:
        present = tuple(s for s, spec in self._specs.items() if spec is not None)
        object.__setattr__(self, "order", _canonical_order(tuple(self.order), present))
        if self.distill is not None and self.distill.student == self.model:  # the default student, named
            object.__setattr__(self, "distill", replace(self.distill, student=None))

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
        if self.threads < 1:
            raise CompressionError(f"threads must be at least 1, got {self.threads}")
        if self.batch < 1:
            raise CompressionError(f"latency batch must be at least 1, got {self.batch}")
        self._validate_order()
        if self.prune is not None:
            self.prune.validate()
        if self.quant is not None:
            self.quant.validate()
        if self.distill is not None:
            self.distill.validate(self.model)

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
        """The recipe as JSON-ready data (what the store and the Result keep)."""
        return {**asdict(self), "order": list(self.order)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        specs = {"prune": PruneSpec, "quant": QuantSpec, "distill": DistillSpec}
        values = {**data, "order": tuple(data["order"])}
        for name, spec in specs.items():
            values[name] = spec(**data[name]) if data.get(name) else None
        return cls(**values)

    @property
    def training_key(self) -> str:
        """Key of the trained baseline weights: only what training depends on (not the timing setup)."""
        fields_ = {"dataset": self.dataset, "model": self.model, "seed": self.seed, "epochs": self.epochs,
                   "pretrained": self.pretrained}
        return _digest(fields_)

    def stage_key(self, index: int) -> str:
        """Key of the model after the first `index` + 1 stages: recipes that begin alike share it."""
        prefix = [[name, asdict(self._specs[name])] for name in self.stages[:index + 1]]
        return _digest({"training": self.training_key, "stages": prefix})

    def sensitivity_key(self, method: str) -> str:
        """Store key of the per-layer sensitivity table of this recipe's baseline under `method`."""
        return f"{self.baseline().hash}-{method}"

    @property
    def hash(self) -> str:
        """Stable key of this recipe: sha256 of its canonical JSON, 16 hex digits."""
        return _digest(self.to_dict())


@dataclass(frozen=True)
class Latency:
    """Latency of one ONNX model in onnxruntime: percentiles over `runs` timed runs."""

    p50: float
    p90: float
    batch: int
    threads: int
    runs: int


@dataclass(frozen=True)
class LayerSparsity:
    """Weights of one conv / linear layer of the exported model, and how many are non-zero."""

    name: str
    shape: list[int]
    weights: int
    nonzero: int


@dataclass(frozen=True)
class StageRecord:
    """The model after one stage of a recipe (the first record is the baseline): deployed accuracy, size,
    work and seconds, so a path from the baseline to the final model can be drawn."""

    stage: str
    accuracy: float
    accuracy_source: str
    size_bytes: int
    size_source: str
    params_nonzero: int
    flops: int
    seconds: float


@dataclass
class Result:
    """What was measured for one recipe. JSON keys are a stable surface: extend, never rename."""

    recipe: dict[str, Any]
    recipe_hash: str
    dataset: str
    model: str
    accuracy: float
    accuracy_source: str
    baseline_accuracy: float
    params_total: int
    params_nonzero: int
    sparsity: float
    size_bytes: int
    size_gzip_bytes: int
    flops: int
    latency_ms: Latency | None
    latency_ms_single: Latency | None
    latency_measured: bool
    speedup_vs_baseline: float | None
    size_ratio_vs_baseline: float
    stage_seconds: dict[str, float]
    created_at: str
    baseline_latency_ms: Latency | None
    layers: list[LayerSparsity] = field(default_factory=list)
    val_accuracy: float = 0.0
    flops_ratio_vs_baseline: float = 1.0
    size_gzip_ratio_vs_baseline: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    from_store: bool = False
    size_source: str = "onnx file"
    technique: str = "baseline"
    stages: list[StageRecord] = field(default_factory=list)
    quant: dict[str, Any] | None = None
    distill: dict[str, Any] | None = None

    @property
    def file_gzip_bytes(self) -> int | None:
        """The gzip size of the deployable file; None for a simulated format, which has no file (its
        `size_gzip_bytes` repeats the computed packed size)."""
        return self.size_gzip_bytes if self.size_source == "onnx file" else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("latency_ms", "latency_ms_single", "baseline_latency_ms"):
            values[key] = Latency(**values[key]) if values.get(key) else None
        values["layers"] = [LayerSparsity(**layer) for layer in values.get("layers", [])]
        values["stages"] = [StageRecord(**record) for record in values.get("stages", [])]
        return cls(**values)
