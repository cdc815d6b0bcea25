"""What was measured: Result (one recipe's figures) and the typed records it carries — latency, per-layer
sparsity, the path stage by stage, the quantization and distillation reports, the measurement setup — as
dataclasses with a stable JSON form (keys are a public surface: extend, never rename). Import-light (no
torch), so that the CLI serves a stored result at once."""

import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from compression.catalog import RUNTIMES
from compression.recipe import Format, Recipe
from compression.stats import Interval, Noise, accuracy_interval, accuracy_noise, speedup_noise

T = TypeVar("T")


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """An instance of the dataclass `cls` from its JSON form: nested dataclasses (also in lists and optional
    fields) rebuilt from their dicts, keys `cls` does not know ignored (data written by a newer version)."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _typed(hints[f.name], data[f.name]) for f in fields(cls) if f.name in data})


def _typed(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
        return _typed(kinds[0], value) if len(kinds) == 1 else value
    if origin is list:
        (item,) = typing.get_args(annotation)
        return [_typed(item, v) for v in value]
    if is_dataclass(annotation):
        return from_json(annotation, value) if value else None  # {}: an empty record of an older version
    return value


@dataclass(frozen=True)
class Latency:
    """Latency of one ONNX model in onnxruntime: wall-clock percentiles over `runs` timed runs, and with one
    intra-op thread (the work then runs on the calling thread) that thread's CPU time too: on a shared machine
    it barely moves when other processes take the cores, where wall time swings by tens of percent."""

    p50: float
    p90: float
    batch: int
    threads: int
    runs: int
    cpu_p50: float | None = None  # ms of the calling thread's CPU time (one intra-op thread only)

    @property
    def clock(self) -> str:
        """Which clock speed-ups of this latency are taken from."""
        return "thread CPU time" if self.cpu_p50 is not None else "wall time"

    @property
    def clocked(self) -> float:
        """The p50 of that clock, in ms."""
        return self.cpu_p50 if self.cpu_p50 is not None else self.p50


def speedup(baseline: Latency, model: Latency) -> float:
    """How many times faster `model` runs than `baseline`, both timed interleaved: from the calling thread's
    CPU time where both have it, else from wall-clock p50."""
    if baseline.cpu_p50 is not None and model.cpu_p50 is not None and model.cpu_p50 > 0:
        return baseline.cpu_p50 / model.cpu_p50
    return baseline.p50 / model.p50


@dataclass(frozen=True)
class LayerSparsity:
    """Weights of one conv / linear layer of the exported model, and how many are non-zero; with round_to auto,
    the output channels the ratio asked it to keep and those kept (chosen on the measured latency staircase)."""

    name: str
    shape: list[int]
    weights: int
    nonzero: int
    channels_asked: int | None = None
    channels_kept: int | None = None


@dataclass(frozen=True)
class PruneRound:
    """One round of a pruning stage, scored in torch on the validation split: the fraction of weights (or
    channels) removed so far, and accuracy before the round's cut, right after it, and after fine-tuning."""

    removed: float
    before_cut: float
    after_cut: float
    after_finetune: float
    split: str = "validation"
    runtime: str = "torch"


@dataclass(frozen=True)
class StageRecord:
    """The model after one stage of a recipe (the first record is the baseline): deployed accuracy, size,
    work and seconds, so a path from the baseline to the final model can be drawn; a pruning stage also its
    rounds (accuracy right after each cut and after fine-tuning; empty where not recorded); for a stage whose
    training stopped on a validation plateau, the epochs it trained of its cap (summed over pruning rounds; for
    distillation, the KD student's) and the best epoch, whose weights it kept (of the last round)."""

    stage: str
    accuracy: float
    accuracy_source: str
    size_bytes: int
    size_source: str
    params_nonzero: int
    flops: int
    seconds: float
    rounds: list[PruneRound] = field(default_factory=list)
    epochs_run: int | None = None
    epochs_cap: int | None = None
    best_epoch: int | None = None

    @property
    def stopped_text(self) -> str | None:
        """'stopped at epoch 37 of at most 640 (best 25)', or None for a stage without a plateau stop."""
        if self.epochs_run is None:
            return None
        return f"stopped at epoch {self.epochs_run} of at most {self.epochs_cap} (best {self.best_epoch})"


@dataclass(frozen=True)
class Histogram:
    """A pre-binned histogram: `counts[i]` values fell in [edges[i], edges[i + 1])."""

    counts: list[int]
    edges: list[float]


@dataclass(frozen=True)
class ActivationStats:
    """A layer's input on calibration images: the range observed, and the clip range, scale and zero point the
    quantizer chose (None where the file names none)."""

    observed_min: float
    observed_max: float
    clip_min: float | None = None
    clip_max: float | None = None
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class LayerQuant:
    """One conv / linear layer's weights under a quantization format: their range, the affine parameters of the
    whole-tensor range (per-channel scales too), the SQNR of the quantized weights, a histogram of the float
    weights, and its input's activation statistics where activations are quantized."""

    name: str
    kind: str
    shape: list[int]
    weight_min: float
    weight_max: float
    scale: float
    zero_point: int
    qmin: int
    qmax: int
    sqnr_db: float
    histogram: Histogram
    scales: list[float] | None = None
    activation: ActivationStats | None = None


@dataclass(frozen=True)
class LayoutTrial:
    """One INT8 layout as auto tried it: its validation accuracy in onnxruntime and its latency beside the float
    model's, timed interleaved (`clock`: thread CPU time with one intra-op thread, else wall time)."""

    layout: str
    val_accuracy: float
    latency_ms: float
    float_latency_ms: float
    clock: str

    @property
    def ratio(self) -> float:
        """Its time over the float model's (below 1: faster than float)."""
        return self.latency_ms / self.float_latency_ms


@dataclass(frozen=True)
class LayoutChoice:
    """Which INT8 layout the file has and why: the layouts tried (none when one was asked for by name), the
    session options the file needs (written into its metadata too), and the reason in words."""

    layout: str
    reason: str
    trials: list[LayoutTrial] = field(default_factory=list)
    disabled_optimizers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LayerQuantSensitivity:
    """One conv / matrix-product layer's INT8 sensitivity (measured: onnxruntime, validation split): accuracy with
    this layer alone quantized, and with every layer but this one quantized. `name` is the torch layer name
    (from its weight, e.g. features.0), `node` the ONNX node quantize_static names."""

    name: str
    node: str
    op: str
    alone_val_accuracy: float
    all_but_val_accuracy: float


@dataclass(frozen=True)
class MixedPrecision:
    """Mixed precision for a validation drop bound (measured in onnxruntime on the validation split): every
    layer's sensitivity, the layers kept in float (the most sensitive first, by the accuracy the model gains
    with that layer alone in float), the accuracy that reached, how many float layers the all-or-nothing
    choice (every layer int8, else none) needs for the same bound, and why."""

    max_drop: float  # validation accuracy points below the float model
    float_val_accuracy: float
    int8_val_accuracy: float
    layers: list[LayerQuantSensitivity]
    float_layers: list[str]
    val_accuracy: float
    all_or_nothing_float_layers: int
    reason: str
    split: str = "validation"
    runtime: str = "onnxruntime"

    @property
    def float_nodes(self) -> list[str]:
        """The ONNX node names of the layers kept in float (what quantize_static is told to exclude)."""
        return [layer.node for layer in self.layers if layer.name in self.float_layers]


@dataclass(frozen=True)
class LayerBits:
    """One layer's simulated bit width (torch, validation split): accuracy with this layer alone at the low
    width, the width assigned, and its weights' packed bytes at that width."""

    name: str
    low_bits_val_accuracy: float
    bits: int
    packed_bytes: int


@dataclass(frozen=True)
class BitAssignment:
    """Simulated per-layer bit widths (fake quantization in torch, not a runtime format): each layer at `low`
    bits where that alone costs at most `max_drop` validation points, else at `high` (raised one by one, most
    sensitive first, while the layers at `low` together cost more); the model with every layer
    at its width, its packed size beside all layers at `high`."""

    max_drop: float
    low: int
    high: int
    float_val_accuracy: float
    layers: list[LayerBits]
    val_accuracy: float
    test_accuracy: float
    packed_bytes: int
    high_packed_bytes: int
    source: str = "simulated (torch fake quantization); size computed, packed"


@dataclass(frozen=True)
class QuantReport:
    """What the quant stage did: its settings, the weight format it stored, for INT8 the op types of the graph
    onnxruntime runs (integer compute ops, float Conv / MatMul / Gemm left, whether none are), and per layer."""

    mode: str
    bits: int
    scheme: str
    granularity: str
    calibration: str
    calib_samples: int
    qat_epochs: int
    activations: bool
    weight_format: Format | None
    integer_ops: dict[str, int] | None = None
    float_compute_ops: dict[str, int] | None = None
    runs_integer: bool | None = None
    layers: list[LayerQuant] = field(default_factory=list)
    layout: str | None = None  # the layout asked for (int8-static only)
    calib_samples_used: int | None = None  # the train images calibration read (at most the train split's size)
    layout_choice: LayoutChoice | None = None  # the layout the file has, and why
    max_drop: float | None = None  # the mixed-precision bound asked for (int8-static only)
    mixed_precision: MixedPrecision | None = None  # the layers kept in float, and why
    qat_patience: int = 0  # QAT's plateau stop (0: exactly qat_epochs; the stage record says where it stopped)


@dataclass(frozen=True)
class TrainingCurve:
    """A model's training, epoch by epoch: the loss it was trained on and its accuracy, each the running mean
    over the epoch's batches of the train split (as training saw them, the weights moving)."""

    epochs: list[int]
    loss: list[float]
    accuracy: list[float]
    split: str = "train"


@dataclass(frozen=True)
class DistillReport:
    """A distillation: the student and its settings, and the KD student against the same student trained on the
    labels alone (the control: same init, batches and epochs) and the teacher, each deployed the same way."""

    teacher_accuracy: float
    control_accuracy: float
    control_val_accuracy: float
    student: str
    width: float
    temperature: float
    alpha: float
    epochs: int
    student_params: int
    teacher_params: int
    student_accuracy: float
    kd_gain: float  # student_accuracy - control_accuracy, in accuracy fractions
    kd_p_value: float | None = None  # McNemar's exact test, KD student vs control on the test images
    student_curve: TrainingCurve | None = None  # None: computed before curves were recorded
    control_curve: TrainingCurve | None = None

    def kd_noise(self, test_images: int | None) -> Noise | None:
        """Whether the KD gain is within noise: McNemar on the two students' test predictions, else (a report
        from before they were compared) their Wilson intervals on `test_images`."""
        student, control = (accuracy_interval(round(a * test_images), test_images) if test_images else None
                            for a in (self.student_accuracy, self.control_accuracy))
        return accuracy_noise(self.kd_p_value, student, control)


@dataclass(frozen=True)
class Provenance:
    """Where and how the numbers were measured: runtime, threads, batch, CPU and its vector extensions, library
    versions."""

    runtime: str
    threads: int
    batch: int
    cpu: str
    cpu_count: int | None
    cpu_flags: dict[str, bool]
    python: str
    versions: dict[str, str]
    training_device: str = "cpu"  # where this run trained or fine-tuned (measurement is on the runtime's CPU)
    computed_on: str = ""  # the CPU of the Ray worker that computed it, when that is not the machine that timed it

    @property
    def flags_on(self) -> str:
        """The CPU's vector extensions that matter for onnxruntime, e.g. 'avx2, avx512f', or 'none'."""
        return ", ".join(flag for flag, on in self.cpu_flags.items() if on) or "none"


@dataclass(frozen=True)
class LayerSensitivity:
    """Validation accuracy with one layer alone pruned at each ratio."""

    name: str
    channels: int
    weights: int
    accuracy: list[float]


@dataclass(frozen=True)
class SensitivityTable:
    """Per-layer pruning sensitivity of a baseline: each layer pruned alone by `method` at `ratios`, no
    fine-tuning, scored in torch on the validation split."""

    dataset: str
    model: str
    method: str
    baseline_hash: str
    split: str
    runtime: str
    baseline_val_accuracy: float
    ratios: list[float]
    layers: list[LayerSensitivity]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_measured(record: "Result | StageRecord") -> bool:
    """Whether the accuracy of a result (or of one stage of its path) comes from running its deployable file in
    a runtime (onnxruntime, openvino), rather than from a simulation in torch."""
    return record.accuracy_source in RUNTIMES


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
    provenance: Provenance | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    from_store: bool = False
    size_source: str = "onnx file"
    technique: str = "baseline"
    stages: list[StageRecord] = field(default_factory=list)
    quant: QuantReport | None = None
    distill: DistillReport | None = None
    counts_source: str = "torch"  # what parameters and FLOPs were counted from: torch, or a runtime-only ONNX graph
    test_images: int | None = None  # the test split's size (None: measured before it was recorded)
    accuracy_p_value: float | None = None  # McNemar's exact test vs the baseline on paired test predictions
    speedup_interval: Interval | None = None  # 95 % interval of speedup_vs_baseline (stats.ratio_interval)

    def _interval(self, accuracy: float) -> "Interval | None":
        return None if self.test_images is None else accuracy_interval(round(accuracy * self.test_images),
                                                                        self.test_images)

    @property
    def accuracy_interval(self) -> "Interval | None":
        """The 95 % Wilson interval of the test accuracy, from the test split's size (where recorded)."""
        return self._interval(self.accuracy)

    def accuracy_noise(self, reference: "Result | None" = None) -> Noise | None:
        """Whether the accuracy delta against `reference` (default: its baseline) is within noise
        (stats.accuracy_noise): McNemar's p stored at measurement for its baseline, else the Wilson intervals;
        None for a baseline against itself."""
        if reference is None and self.technique == "baseline":
            return None
        if reference is None or reference.recipe_hash == self.baseline_hash:
            return accuracy_noise(self.accuracy_p_value, self.accuracy_interval,
                                  self._interval(self.baseline_accuracy))
        return accuracy_noise(None, self.accuracy_interval, reference.accuracy_interval)

    @property
    def baseline_hash(self) -> str:
        """The recipe hash of the baseline it was compressed from (its own for a baseline)."""
        return Recipe.from_dict(self.recipe).baseline().hash

    @property
    def speedup_noise(self) -> Noise | None:
        """Whether its timed speed-up over its baseline is within noise (its interval contains 1; without one, the
        narrowest interval around it); None for the baseline itself and an untimed result."""
        if not self.latency_measured or self.technique == "baseline":
            return None
        return speedup_noise(self.speedup_interval, self.speedup_vs_baseline)

    @property
    def predicted_speedup(self) -> float | None:
        """The speed-up over the baseline its FLOPs predict (the FLOPs ratio inverted), beside the timed one."""
        return 1 / self.flops_ratio_vs_baseline if self.flops_ratio_vs_baseline > 0 else None

    @property
    def file_gzip_bytes(self) -> int | None:
        """The gzip size of the deployable file; None for a simulated format, which has no file (its
        `size_gzip_bytes` repeats the computed packed size)."""
        return self.size_gzip_bytes if self.size_source == "onnx file" else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        return from_json(cls, data)
