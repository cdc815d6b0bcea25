"""Recipe (what to do) and Result (what was measured), as plain dataclasses with a stable JSON form."""

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from compression.catalog import (MAX_PRUNE_RATIO, PRUNE_METHODS, STAGES, STRUCTURED_METHODS, check_dataset,
                                 check_model)
from compression.errors import CompressionError



def _digest(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `data`, 16 hex digits."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PruneSpec:
    """How to prune: method, final fraction removed, prune/fine-tune rounds, λ for activation importance,
    and (structured only) a multiple that every pruned layer's channel count is rounded down to."""

    method: str
    ratio: float
    steps: int = 1
    finetune_epochs: int = 10
    lam: float = 0.5
    round_to: int = 1

    def validate(self) -> None:
        """Raise a one-line CompressionError for a method, ratio, step count or λ out of range."""
        if self.method not in PRUNE_METHODS:
            raise CompressionError(f"unknown prune method '{self.method}': choose one of {', '.join(PRUNE_METHODS)}")
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
        if sorted(self.order) != sorted(STAGES):
            raise CompressionError(f"order must name each of {', '.join(STAGES)} once, got {','.join(self.order)}")
        if self.prune is not None:
            self.prune.validate()

    @property
    def is_baseline(self) -> bool:
        return self.prune is None

    def baseline(self) -> "Recipe":
        """The uncompressed recipe this one is compared against (same data, model, training, timing)."""
        return replace(self, prune=None, order=STAGES)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON-ready data (what the store and the Result keep)."""
        return {**asdict(self), "order": list(self.order)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        prune = data.get("prune")
        return cls(**{**data, "prune": PruneSpec(**prune) if prune else None, "order": tuple(data["order"])})

    @property
    def training_key(self) -> str:
        """Key of the trained baseline weights: only what training depends on (not the timing setup)."""
        fields_ = {"dataset": self.dataset, "model": self.model, "seed": self.seed, "epochs": self.epochs,
                   "pretrained": self.pretrained}
        return _digest(fields_)

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
    latency_ms: Latency
    latency_ms_single: Latency
    latency_measured: bool
    speedup_vs_baseline: float
    size_ratio_vs_baseline: float
    stage_seconds: dict[str, float]
    created_at: str
    baseline_latency_ms: Latency
    layers: list[LayerSparsity] = field(default_factory=list)
    val_accuracy: float = 0.0
    flops_ratio_vs_baseline: float = 1.0
    size_gzip_ratio_vs_baseline: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    from_store: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("latency_ms", "latency_ms_single", "baseline_latency_ms"):
            values[key] = Latency(**values[key])
        values["layers"] = [LayerSparsity(**layer) for layer in values.get("layers", [])]
        return cls(**values)
