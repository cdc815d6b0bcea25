"""Quantization: the article's affine mapping and fake quantization with a straight-through gradient,
weight reports for the app, quantization-aware training, and conversion of a float ONNX export to the
deployable formats (onnxruntime INT8 static QDQ and dynamic, FP16) or a simulated k-bit model."""

import contextlib
import copy
import io
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      create_calibrator, quant_pre_process, quantize_dynamic, quantize_static,
                                      save_tensors_data)
from onnxruntime.quantization.calibrate import HistogramCollector
from onnxruntime.transformers.float16 import convert_float_to_float16
from torch import nn
from torch.nn.utils import parametrize

from compression.data import Split, Splits
from compression.export import save_deployable
from compression.measure import (Counts, Timing, TimingPlan, onnx_accuracy, prunable_layers, time_interleaved,
                                 torch_counts)
from compression import layouts
from compression.catalog import BITS, INT8_LAYOUTS
from compression.recipe import Format, QuantSpec, Recipe
from compression.result import (ActivationStats, Histogram, LayerQuant, LayoutChoice, LayoutTrial, QuantReport,
                                Result, is_measured)
from compression.train import LEARNING_RATE, Plateau, Progress, ProgressFn, evaluate, fit, silent

PTQ_BITS: tuple[int, ...] = (16, 8, 6, 4, 3, 2)
QAT_CURVE_EPOCHS = 2  # QAT epochs of the accuracy-against-bits curve when the chosen setting is 0
QAT_LEARNING_RATE = LEARNING_RATE / 10  # fine-tuning a trained model: a tenth of the training peak
PERCENTILE = 99.99  # percentile calibration keeps this share of activation values inside the range
HISTOGRAM_BINS = 512  # histogram of activation values that entropy and percentile calibration choose from
CALIBRATION_BATCH = 64
LAYOUT_TIMING = TimingPlan(warmup=10, min_runs=50, min_seconds=0.5)  # auto's timing of each INT8 layout
ORT_CALIBRATION = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}
FLOAT_COMPUTE_OPS = frozenset({"Conv", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm"})
INTEGER_COMPUTE_OPS = frozenset({"QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat",
                                 "DynamicQuantizeMatMul", "DynamicQuantizeLinear"})


@dataclass(frozen=True)
class AffineParams:
    """The affine mapping q = clamp(round(x / scale) + zero_point, qmin, qmax) of one tensor or channel."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int


@dataclass
class Quantized:
    """The quant stage's deployable form: an ONNX file (None when simulated), simulated accuracies (fake
    only), the size when it is computed rather than measured on a file, and its report."""

    onnx: Path | None
    simulated_accuracy: float | None
    simulated_val_accuracy: float | None
    size_bytes: int | None
    size_source: str
    report: QuantReport | None = None  # set by convert() once the stage's parts are known


def _qrange(bits: int, scheme: str) -> tuple[int, int]:
    """Integer range of a `bits`-wide grid: 0 … 2^b − 1 asymmetric, ±(2^(b−1) − 1) symmetric."""
    if scheme == "symmetric":
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def _affine(lo: torch.Tensor, hi: torch.Tensor, bits: int, scheme: str) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Scales and zero points for ranges [lo, hi] (element-wise), by the article's mapping."""
    qmin, qmax = _qrange(bits, scheme)
    if scheme == "symmetric":
        scale = 2 * torch.maximum(lo.abs(), hi.abs()) / (qmax - qmin)
    else:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)  # the grid must hold 0 exactly
        scale = (hi - lo) / (qmax - qmin)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # a constant-zero tensor: any scale is exact
    zero_point = torch.zeros_like(scale) if scheme == "symmetric" else torch.round(-lo / scale).clamp(qmin, qmax)
    return scale, zero_point, qmin, qmax


def affine_params(x_min: float, x_max: float, bits: int, scheme: str) -> AffineParams:
    """Scale, zero point and integer range that map [x_min, x_max] onto a `bits`-wide grid."""
    scale, zero_point, qmin, qmax = _affine(torch.tensor(float(x_min)), torch.tensor(float(x_max)), bits, scheme)
    return AffineParams(float(scale), int(zero_point), qmin, qmax)


class _FakeQuantize(torch.autograd.Function):
    """Quantize-dequantize forward; clipped straight-through backward (gradient 1 where q was not clamped)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int,
                qmax: int) -> torch.Tensor:
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return (q.clamp(qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def _along_dim0(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-channel parameter vector shaped to broadcast along dim 0 of an `ndim`-dimensional tensor."""
    return t.reshape(-1, *[1] * (ndim - 1)) if t.numel() > 1 else t.reshape(())


def fake_quantize(x: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int, qmin: int,
                  qmax: int) -> torch.Tensor:
    """(clamp(round(x / scale) + zero_point, qmin, qmax) − zero_point) · scale, per-channel along dim 0 when
    `scale` is a vector. Backward is the clipped straight-through estimator of a torch.autograd.Function:
    gradient 1 where x lies inside the clipping range, 0 outside."""
    scale = _along_dim0(torch.as_tensor(scale, dtype=x.dtype), x.dim())
    zero_point = _along_dim0(torch.as_tensor(zero_point, dtype=x.dtype), x.dim())
    return _FakeQuantize.apply(x, scale, zero_point, qmin, qmax)


def _weight_grid(weight: torch.Tensor, fmt: Format) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Scale and zero point vectors of `weight` (one entry per output channel, or one for the tensor)."""
    w = weight.detach()
    rows = w.flatten(1) if fmt.granularity == "per-channel" and w.dim() > 1 else w.reshape(1, -1)
    return _affine(rows.amin(1), rows.amax(1), fmt.bits, fmt.scheme)


def quantize_weights(weight: torch.Tensor, bits: int, scheme: str, granularity: str
                     ) -> tuple[torch.Tensor, list[AffineParams]]:
    """`weight` fake-quantized (differentiable, straight-through) and its affine parameters: one per
    output channel (dim 0) for per-channel, one for per-tensor."""
    scale, zero_point, qmin, qmax = _weight_grid(weight, Format(bits, scheme, granularity))
    params = [AffineParams(float(s), int(z), qmin, qmax) for s, z in zip(scale.tolist(), zero_point.tolist())]
    return fake_quantize(weight, scale, zero_point, qmin, qmax), params


def sqnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio 10 · log10(Σx² / Σ(x − x̂)²) in dB; inf for an exact copy."""
    signal = float(x.double().pow(2).sum())
    noise = float((x.double() - x_hat.double()).pow(2).sum())
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-300) / noise)


def _histogram(x: torch.Tensor, bins: int) -> Histogram:
    counts, edges = torch.histogram(x.detach().flatten().float(), bins=bins)
    return Histogram([int(c) for c in counts.tolist()], edges.tolist())


def weight_report(model: nn.Module, bits: int, scheme: str, granularity: str, bins: int = 60) -> list[LayerQuant]:
    """Per conv / linear layer: weight range, affine parameters (of the whole-tensor range; per-channel
    scales too), SQNR of the quantized weights and a histogram of the float weights. Cheap enough to
    recompute as a bit-width slider moves."""
    report = []
    for name, layer in prunable_layers(model):
        w = layer.weight.detach()
        quantized, params = quantize_weights(w, bits, scheme, granularity)
        whole = affine_params(float(w.min()), float(w.max()), bits, scheme)
        report.append(LayerQuant(
            name, "conv" if isinstance(layer, nn.Conv2d) else "linear", list(w.shape), float(w.min()),
            float(w.max()), **asdict(whole), sqnr_db=sqnr_db(w, quantized), histogram=_histogram(w, bins),
            scales=[p.scale for p in params] if granularity == "per-channel" else None))
    return report


@dataclass(frozen=True)
class GridView:
    """The affine mapping of one layer's weights (or one output channel's) drawn for teaching: the values'
    range, the range the grid covers (asymmetric: widened to hold 0; symmetric: ±max|x|), the affine
    parameters, the values' histogram, the clipping range and, when there are few enough to draw, the levels
    a weight can take."""

    fmt: Format
    x_min: float
    x_max: float
    lo: float
    hi: float
    params: AffineParams
    histogram: Histogram
    clip_min: float
    clip_max: float
    levels: int
    grid: list[float] | None
    outside: int = 0  # values beyond [clip_min, clip_max]: each maps to the nearer end level

    @property
    def outside_by(self) -> float:
        """How far the grid's end levels fall inside the values' range: the zero point is rounded to an integer,
        which shifts the grid by up to half a step (asymmetric); 0 for symmetric and whenever none lie outside."""
        return max(self.clip_min - self.x_min, self.x_max - self.clip_max, 0.0)


GRID_DRAWN_LEVELS = 64  # a finer grid is too dense to draw as ticks


def grid_view(model: nn.Module, layer: str, fmt: Format, channel: int | None = None) -> GridView:
    """The mapping of the weights of `model`'s conv / linear `layer` (all of them, or output channel `channel`)
    onto `fmt`'s grid: one range for the values shown, as per-tensor quantization (or per-channel, for one
    channel) ranges them."""
    weight = model.get_submodule(layer).weight
    values = (weight[channel] if channel is not None else weight).detach().flatten()
    x_min, x_max = float(values.min()), float(values.max())
    p = affine_params(x_min, x_max, fmt.bits, fmt.scheme)
    if fmt.scheme == "asymmetric":
        lo, hi = min(x_min, 0.0), max(x_max, 0.0)
    else:
        hi = max(abs(x_min), abs(x_max))
        lo = -hi
    bins = int(min(60, max(10, values.numel() // 4))) if channel is not None else 60
    levels = p.qmax - p.qmin + 1
    grid = [(q - p.zero_point) * p.scale for q in range(p.qmin, p.qmax + 1)] if levels <= GRID_DRAWN_LEVELS else None
    clip_min, clip_max = (p.qmin - p.zero_point) * p.scale, (p.qmax - p.zero_point) * p.scale
    slack = p.scale * 1e-6  # float rounding of the end levels: the largest weight is its own end level
    outside = int(((values < clip_min - slack) | (values > clip_max + slack)).sum())
    return GridView(fmt, x_min, x_max, lo, hi, p, _histogram(values, bins), clip_min, clip_max, levels, grid, outside)


@dataclass(frozen=True)
class MappedWeight:
    """One real weight through the mapping: its position in the layer's weight tensor, its float value x, its
    integer code q and the value it comes back as, x̂ = (q − zero_point) · scale."""

    position: tuple[int, ...]
    x: float
    q: int
    x_hat: float

    @property
    def error(self) -> float:
        """x̂ − x: what quantization changed."""
        return self.x_hat - self.x


@dataclass(frozen=True)
class WeightMapping:
    """A layer's weights (or one output channel's) through the quantizer: a few of them as x → q → x̂ rows, and
    histograms of the float and the dequantized values on the same bins."""

    rows: list[MappedWeight]
    original: Histogram
    dequantized: Histogram


def weight_mapping(model: nn.Module, layer: str, fmt: Format, channel: int | None = None, rows: int = 8,
                   bins: int = 60) -> WeightMapping:
    """The weights of `model`'s conv / linear `layer` (output channel `channel`, or all) quantized by
    quantize_weights in `fmt` (the project's quantizer): `rows` of them, spread from the smallest to the largest,
    as x → q → x̂, and the float and dequantized values binned alike."""
    weight = model.get_submodule(layer).weight.detach()
    with torch.no_grad():
        x_hat, params = quantize_weights(weight, fmt.bits, fmt.scheme, fmt.granularity)
    values, snapped = (weight[channel], x_hat[channel]) if channel is not None else (weight, x_hat)
    flat, flat_hat = values.flatten(), snapped.flatten()
    order = torch.argsort(flat)
    picks = sorted({int(order[int(i)]) for i in np.linspace(0, flat.numel() - 1, min(rows, flat.numel())).round()},
                   key=lambda i: float(flat[i]))
    mapped = []
    for i in picks:
        position = tuple(int(v) for v in np.unravel_index(i, tuple(values.shape)))
        full = (channel, *position) if channel is not None else position
        p = params[full[0]] if len(params) > 1 else params[0]
        x_i, hat = float(flat[i]), float(flat_hat[i])
        mapped.append(MappedWeight(full, x_i, round(hat / p.scale) + p.zero_point, hat))
    edges = np.histogram_bin_edges(torch.cat([flat, flat_hat]).double().numpy(), bins=bins)
    return WeightMapping(mapped, *(Histogram(np.histogram(v.double().numpy(), bins=edges)[0].tolist(), edges.tolist())
                                   for v in (flat, flat_hat)))


def teaching_layer(layers: Sequence[LayerQuant]) -> str:
    """The layer a teaching view opens on: the one whose output channel holds the most weights, so that a
    histogram has values to bin per tensor and per channel alike (not a first conv of a few weights a channel)."""
    return max(layers, key=lambda layer: math.prod(layer.shape[1:])).name


def stored_counts(model: nn.Module, spec: QuantSpec | None, input_shape: Sequence[int]) -> Counts:
    """Counts of `model` as `spec` stores its weights: conv / linear weights snapped to its weight grid (a weight
    that rounds to 0 counts as a zero), the same after post-training quantization and QAT (whose weights sit on
    the grid already); float formats and no quantization as they are."""
    fmt = weight_format(spec) if spec is not None else None
    if fmt is None:
        return torch_counts(model, input_shape)
    snapped = copy.deepcopy(model)
    with torch.no_grad(), fake_quantized(snapped, fmt, {}):
        pass
    return torch_counts(snapped, input_shape)


class _FakeQuantWeight(nn.Module):
    """A parametrization that fake-quantizes a weight on every forward pass (ranges follow the weight)."""

    def __init__(self, fmt: Format) -> None:
        super().__init__()
        self.fmt = fmt

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(weight, *_weight_grid(weight, self.fmt))


Inputs = tuple[torch.Tensor, ...]


def _input_quantizer(params: AffineParams) -> Callable[[nn.Module, Inputs], Inputs]:
    """A forward pre-hook that fake-quantizes a layer's input with fixed `params`."""
    def hook(_: nn.Module, inputs: Inputs) -> Inputs:
        return (fake_quantize(inputs[0], params.scale, params.zero_point, params.qmin, params.qmax), *inputs[1:])
    return hook


@contextlib.contextmanager
def fake_quantized(model: nn.Module, weights: Format | dict[str, Format], inputs: dict[str, AffineParams]
                   ) -> Iterator[nn.Module]:
    """Fake-quantize every conv / linear weight of `model` in place (`weights` a dict: only the layers it names,
    each in its format; and the inputs of the layers named in `inputs`); on exit the weights stay snapped to
    their grid and the input hooks are removed."""
    formats = weights if isinstance(weights, dict) else {name: weights for name, _ in prunable_layers(model)}
    layers = [(name, layer) for name, layer in prunable_layers(model) if name in formats]
    handles = [layer.register_forward_pre_hook(_input_quantizer(inputs[name]))
               for name, layer in prunable_layers(model) if name in inputs]
    for name, layer in layers:
        parametrize.register_parametrization(layer, "weight", _FakeQuantWeight(formats[name]))
    try:
        yield model
    finally:
        for _, layer in layers:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        for handle in handles:
            handle.remove()


def calibration_inputs(train: Split, samples: int) -> torch.Tensor:
    """The first `samples` train images (the split is already shuffled), at most the whole train split (a small
    image folder calibrates on all it has; the QuantReport says how many); never the test split."""
    return train.x[:min(samples, len(train.y))]


def _calibrator_options(scheme: str, bits: int) -> dict[str, Any]:
    """Settings of onnxruntime's calibrators, shared by the torch simulation so that both choose alike.
    Entropy matches 2^(bits−1) quantized bins against a HISTOGRAM_BINS histogram: onnxruntime's default
    (128 of 128 bins) leaves it a single candidate threshold, i.e. plain min/max."""
    return {"symmetric": scheme == "symmetric", "num_bins": HISTOGRAM_BINS,
            "num_quantized_bins": min(2 ** (bits - 1), HISTOGRAM_BINS), "percentile": PERCENTILE}


def observe_activations(model: nn.Module, x: torch.Tensor, calibration: str, fmt: Format
                        ) -> dict[str, ActivationStats]:
    """Range of each conv / linear layer's input over calibration images `x` (batch by batch), and the clip
    range the `calibration` method chooses from it for `fmt`: min/max, or onnxruntime's percentile or
    minimal-KL (entropy) choice from a histogram."""
    collector = None if calibration == "minmax" else HistogramCollector(
        method=calibration, scenario="same", **_calibrator_options(fmt.scheme, fmt.bits))
    observed: dict[str, tuple[float, float]] = {}

    def recorder(name: str) -> Callable[[nn.Module, Inputs], None]:
        def record(_: nn.Module, inputs: Inputs) -> None:
            a = inputs[0].detach()
            lo, hi = observed.get(name, (math.inf, -math.inf))
            observed[name] = (min(lo, float(a.min())), max(hi, float(a.max())))
            if collector is not None:
                collector.collect({name: a.numpy()})
        return record

    handles = [layer.register_forward_pre_hook(recorder(name)) for name, layer in prunable_layers(model)]
    model.eval()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # the collector narrates on stdout
            for start in range(0, len(x), CALIBRATION_BATCH):
                model(x[start:start + CALIBRATION_BATCH])
            clips = collector.compute_collection_result() if collector is not None else {}
    finally:
        for handle in handles:
            handle.remove()
    ranges = {}
    for name, (lo, hi) in observed.items():
        clip_min, clip_max = (float(c) for c in clips[name][:2]) if collector is not None else (lo, hi)
        ranges[name] = ActivationStats(lo, hi, clip_min, clip_max)
    return ranges


def weight_format(spec: QuantSpec) -> Format | None:
    """How the runtime (or the simulation) quantizes weights; None for the float formats."""
    if spec.simulated:
        return Format(spec.bits, spec.scheme, spec.granularity)
    if spec.technique.integer:
        return Format(8, "symmetric", spec.granularity)  # signed int8 weights, as the fast kernels need
    return None


def _activation_params(ranges: dict[str, ActivationStats], fmt: Format) -> dict[str, AffineParams]:
    return {name: affine_params(r.clip_min, r.clip_max, fmt.bits, fmt.scheme) for name, r in ranges.items()}


def quantize_stage(model: nn.Module, spec: QuantSpec, splits: Splits, seed: int,
                   progress: ProgressFn = silent) -> nn.Module:
    """The torch part of the quant stage: a copy of `model`, fine-tuned for spec.qat_epochs (with
    spec.qat_patience: at most, stopped on the validation split's plateau, scored quantized) with fake-quantized
    weights (and layer inputs, for int8-static or spec.activations, on ranges calibrated on the train split
    before fine-tuning; convert recalibrates on the tuned model); returned as a plain float module whose
    weights sit on the quantization grid, ready for the dynamo exporter."""
    spec.validate()
    model = copy.deepcopy(model)
    if not spec.qat_epochs:
        return model.eval()
    weights = weight_format(spec)
    inputs = {}
    if spec.calibrates:
        fmt = Format(spec.bits, spec.scheme)
        ranges = observe_activations(model, calibration_inputs(splits.train, spec.calib_samples), spec.calibration, fmt)
        inputs = _activation_params(ranges, fmt)
    progress(Progress("qat", f"quantization-aware training: {weights.bits}-bit weights"
                             f"{', quantized activations' if inputs else ''}, "
                             f"{'at most ' if spec.qat_patience else ''}{spec.qat_epochs} epochs"))
    with fake_quantized(model, weights, inputs):
        fit(model, splits.train, spec.qat_epochs, seed=seed, lr=QAT_LEARNING_RATE, stage="qat", progress=progress,
            plateau=Plateau(splits.val, spec.qat_patience))
    return model.eval()


def packed_weight_bytes(layer: nn.Module, bits: int, granularity: str) -> int:
    """Bytes of one conv / linear layer's weights packed at `bits` (ceil(n · bits / 8)) with 8 bytes per
    (scale, zero point) pair."""
    return (math.ceil(layer.weight.numel() * bits / 8)
            + 8 * (layer.weight.shape[0] if granularity == "per-channel" else 1))


def packed_size(model: nn.Module, bits: int | dict[str, int], granularity: str, activation_params: int = 0) -> int:
    """Bytes of `model` with conv / linear weights packed at `bits` (a dict: each layer at its own width) by
    packed_weight_bytes, 8 bytes per (scale, zero point) pair of `activation_params` layer inputs, 4 per other
    parameter."""
    layers = prunable_layers(model)
    widths = bits if isinstance(bits, dict) else {name: bits for name, _ in layers}
    quantized = {id(layer.weight) for _, layer in layers}
    weights = sum(packed_weight_bytes(layer, widths[name], granularity) for name, layer in layers)
    others = sum(4 * p.numel() for p in model.parameters() if id(p) not in quantized)
    return weights + others + 8 * activation_params


class _OneBatch(CalibrationDataReader):
    """Feeds one batch of calibration images to onnxruntime's calibrator."""

    def __init__(self, x: torch.Tensor, name: str) -> None:
        self._feeds = iter([{name: x.numpy()}])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def calibration_cache(model_path: Path, spec: QuantSpec, x: torch.Tensor, workdir: Path) -> Path:
    """Activation ranges of every float tensor by onnxruntime's calibrator on `x`, as a calibration cache
    for quantize_static. Fed a batch per call, as the torch side is: the histogram calibrators cannot
    stack a smaller last batch, and quantize_static cannot set their bin counts."""
    calibrator = create_calibrator(model_path, augmented_model_path=str(workdir / "augmented.onnx"),
                                   calibrate_method=ORT_CALIBRATION[spec.calibration],
                                   extra_options=_calibrator_options(spec.scheme, spec.bits))
    name = _input_name(model_path)
    with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators narrate on stdout
        for start in range(0, len(x), CALIBRATION_BATCH):
            calibrator.collect_data(_OneBatch(x[start:start + CALIBRATION_BATCH], name))
        ranges = calibrator.compute_data()
    path = workdir / "calibration.json"
    save_tensors_data(ranges, path)
    return path


def _input_name(path: Path) -> str:
    """The name of the ONNX file's image input (the exporter names it "input"; an import its own)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


def preprocessed(float_onnx: Path, workdir: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference, graph optimisation) of the float export."""
    path = workdir / "float-pre.onnx"
    quant_pre_process(str(float_onnx), str(path))
    return path


def integer_execution(path: Path, workdir: Path) -> dict[str, Any]:
    """Op types of the graph onnxruntime actually runs (CPU, all optimisations): integer compute ops,
    remaining float Conv / MatMul / Gemm, and whether none of the latter remain."""
    optimized = workdir / f"{path.stem}-optimized.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(optimized)
    options.log_severity_level = 3  # saving an NCHWc-optimised graph warns that it is CPU specific: known
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=layouts.disabled_optimizers(path))
    ops = Counter(node.op_type for node in onnx.load(str(optimized)).graph.node)
    integer = {op: n for op, n in sorted(ops.items()) if op.startswith("QLinear") or op in INTEGER_COMPUTE_OPS}
    floating = {op: n for op, n in sorted(ops.items()) if op in FLOAT_COMPUTE_OPS}
    return {"integer_ops": integer, "float_compute_ops": floating, "runs_integer": not floating}


def _onnx_input_clips(path: Path) -> dict[str, dict[str, float | int]]:
    """Clip range, scale and zero point of the DequantizeLinear feeding each Conv / Gemm / MatMul's input
    in a QDQ model, keyed by torch layer name (read off the weight initializer, e.g. features.0.weight)."""
    graph = onnx.load(str(path)).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    clips = {}
    for node in (n for n in graph.node if n.op_type in FLOAT_COMPUTE_OPS):
        act, weight = (producer.get(name) for name in node.input[:2])
        if act is None or weight is None or act.op_type != "DequantizeLinear":
            continue
        scale, zero_point = float(initializers[act.input[1]]), initializers[act.input[2]]
        grid = np.iinfo(zero_point.dtype)
        layer = weight.input[0].removesuffix("_quantized").removesuffix(".weight")
        clips[layer] = {"clip_min": scale * (int(grid.min) - int(zero_point)),
                        "clip_max": scale * (int(grid.max) - int(zero_point)),
                        "scale": scale, "zero_point": int(zero_point)}
    return clips


def keep_float(float_onnx: Path, spec: QuantSpec, x: torch.Tensor | None, workdir: Path) -> Path:
    """FP32: the float export unchanged (the reference)."""
    return float_onnx


def convert_fp16(float_onnx: Path, spec: QuantSpec, x: torch.Tensor | None, workdir: Path) -> Path:
    """FP16 weights and arithmetic, with float32 inputs and outputs (keep_io_types)."""
    path = workdir / "converted-fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(float_onnx)), keep_io_types=True), str(path))
    return path


def quantize_qdq(prepared: Path, path: Path, spec: QuantSpec, cache: Path, exclude: Sequence[str]) -> Path:
    """onnxruntime's quantize_static of the float graph `prepared` into `path` (QDQ, symmetric int8 weights,
    activations by spec.scheme on the ranges of the calibration `cache`), the nodes named in `exclude` in float."""
    symmetric = spec.scheme == "symmetric"
    quantize_static(str(prepared), str(path), calibration_cache_path=cache, quant_format=QuantFormat.QDQ,
                    per_channel=spec.granularity == "per-channel", weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                    calibrate_method=ORT_CALIBRATION[spec.calibration], nodes_to_exclude=list(dict.fromkeys(exclude)),
                    extra_options={"ActivationSymmetric": symmetric})
    return path


@dataclass
class _Shared:
    """What the layouts of one int8-static conversion share: the pre-processed float graph, and the calibration
    of each graph quantized (plain and float-first quantize the same one; calibration is most of the time)."""

    pre: Path
    caches: dict[Path, Path] = field(default_factory=dict)


def convert_static(float_onnx: Path, spec: QuantSpec, x: torch.Tensor | None, workdir: Path,
                   keep_float: Sequence[str] = (), shared: _Shared | None = None) -> Path:
    """QDQ INT8: symmetric int8 weights, activations by spec.scheme with ranges calibrated on `x`, in the
    layout spec.layout names (auto converts plain here: `_auto_layout` times the others); the nodes named in
    `keep_float` (mixed precision) stay in float beside the layout's own (with onnxruntime's weight quantization
    of float layers between int8 ones off for the file). `shared`: another layout's pre-processing and
    calibrations of this same conversion, reused."""
    layout = "plain" if spec.layout == "auto" else spec.layout
    shared = shared or _Shared(preprocessed(float_onnx, workdir))
    prepared = layouts.PREPARERS[layout](shared.pre, workdir)
    if prepared.onnx not in shared.caches:
        shared.caches[prepared.onnx] = calibration_cache(prepared.onnx, spec, x, workdir)
    cache = shared.caches[prepared.onnx]
    path = quantize_qdq(prepared.onnx, workdir / "converted-int8-static.onnx", spec, cache,
                        [*prepared.exclude, *keep_float])
    mixed = (layouts.WEIGHT_BIAS_QUANTIZATION,) if keep_float else ()
    layouts.mark(path, [*prepared.disabled_optimizers, *mixed])
    return path


def _auto_layout(float_onnx: Path, spec: QuantSpec, x: torch.Tensor, val: Split, workdir: Path, timing: Timing,
                 keep_float: Sequence[str] = ()) -> tuple[Path, LayoutChoice]:
    """Every layout that applies converted (with the `keep_float` nodes in float), scored on the validation split
    and timed interleaved with the float model under the recipe's timing setup: the file of the one layouts.pick
    keeps, and the choice."""
    converted: dict[str, Path] = {}
    shared = _Shared(preprocessed(float_onnx, workdir))
    for name in (n for n in INT8_LAYOUTS if n != "auto"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
        try:
            converted[name] = convert_static(float_onnx, replace(spec, layout=name), x, workdir / name, keep_float,
                                             shared)
        except layouts.DoesNotApply:
            continue
    *timed, float_latency = time_interleaved([*converted.values(), float_onnx], val.x.shape[1:], timing.batch,
                                             timing.threads, LAYOUT_TIMING, timing.provider, timing.runtime)
    clock = float_latency.clock
    trials = [LayoutTrial(name, onnx_accuracy(path, val, timing.runtime), latency.clocked, float_latency.clocked,
                          clock)
              for (name, path), latency in zip(converted.items(), timed)]
    best, reason = layouts.pick(trials)
    path = converted[best.layout]
    return path, LayoutChoice(best.layout, reason, trials, layouts.disabled_optimizers(path))


def _laid_out(float_onnx: Path, spec: QuantSpec, x: torch.Tensor, val: Split, workdir: Path, timing: Timing,
              keep_float: Sequence[str] = ()) -> tuple[Path, LayoutChoice]:
    """The int8-static file in the layout asked for (auto: the one _auto_layout keeps), with the `keep_float`
    nodes in float, and why."""
    if spec.layout == "auto":
        return _auto_layout(float_onnx, spec, x, val, workdir, timing, keep_float)
    path = convert_static(float_onnx, spec, x, workdir, keep_float)
    return path, LayoutChoice(spec.layout, f"{spec.layout}: asked for", [], layouts.disabled_optimizers(path))


def convert_dynamic(float_onnx: Path, spec: QuantSpec, x: torch.Tensor | None, workdir: Path) -> Path:
    """Dynamic INT8: int8 weights, activations quantized at run time per batch."""
    path = workdir / "converted-int8-dynamic.onnx"
    quantize_dynamic(str(preprocessed(float_onnx, workdir)), str(path),
                     per_channel=spec.granularity == "per-channel", weight_type=QuantType.QInt8)
    return path


def _layer_report(model: nn.Module | None, weights: Format | None, activations: dict[str, ActivationStats]
                  ) -> list[LayerQuant]:
    """weight_report's layers (none for float formats), each with its input's activation statistics if any."""
    if weights is None or model is None:
        return []
    layers = weight_report(model, weights.bits, weights.scheme, weights.granularity)
    return [replace(layer, activation=activations.get(layer.name)) for layer in layers]


def _simulate(model: nn.Module, spec: QuantSpec, splits: Splits, x: torch.Tensor | None
              ) -> tuple[Quantized, dict[str, Any], dict[str, ActivationStats]]:
    """Fake mode: accuracy of the fake-quantized model in torch (inputs too when `x`, the calibration
    images, is given), its packed size, and each quantized input's activation statistics."""
    fmt = Format(spec.bits, spec.scheme)
    ranges = observe_activations(model, x, spec.calibration, fmt) if x is not None else {}
    inputs = _activation_params(ranges, fmt)
    simulated = copy.deepcopy(model)
    with fake_quantized(simulated, weight_format(spec), inputs):
        accuracy, val_accuracy = evaluate(simulated, splits.test), evaluate(simulated, splits.val)
    size = packed_size(model, spec.bits, spec.granularity, len(inputs))
    activations = {name: replace(ranges[name], scale=p.scale, zero_point=p.zero_point) for name, p in inputs.items()}
    return Quantized(None, accuracy, val_accuracy, size, f"computed: packed {spec.bits}-bit weights"), {}, activations


def _deploy(model: nn.Module | None, float_onnx: Path, spec: QuantSpec, x: torch.Tensor | None, val: Split,
            workdir: Path, timing: Timing) -> tuple[Quantized, dict[str, Any], dict[str, ActivationStats]]:
    """Real formats: the onnxruntime file the mode's converter makes (minified; int8-static in the layout it
    asks for, with spec.max_drop's mixed-precision float layers: both choices in `checks`), INT8 checked for
    integer kernels; where activations are calibrated, each
    layer input's observed range (torch, on `x`) beside the clip range calibration wrote into the file (read
    before minifying, while tensors still carry the torch parameter names)."""
    checks: dict[str, Any] = {}
    keep_float: list[str] = []
    if spec.max_drop is not None:
        from compression import mixed  # mixed precision converts through this module's helpers

        checks["mixed_precision"] = mixed.choose(float_onnx, spec, x, val, workdir / "mixed")
        keep_float = checks["mixed_precision"].float_nodes
    if spec.technique.uses_layout:
        converted, checks["layout_choice"] = _laid_out(float_onnx, spec, x, val, workdir, timing, keep_float)
    else:
        converted = spec.technique.load()(float_onnx, spec, x, workdir)
    path = save_deployable(converted, workdir / f"model-{spec.mode}.onnx")
    if spec.technique.integer:
        checks.update(integer_execution(path, workdir))
    activations = {}
    if spec.calibrates and model is not None:
        clips = _onnx_input_clips(converted)
        activations = {name: replace(r, **{"clip_min": None, "clip_max": None, **clips.get(name, {})})
                       for name, r in observe_activations(model, x, "minmax", Format(8, spec.scheme)).items()}
    return Quantized(path, None, None, None, "onnx file"), checks, activations


def convert(model: nn.Module | None, float_onnx: Path | None, spec: QuantSpec, splits: Splits,
            workdir: Path, timing: Timing = Timing()) -> Quantized:
    """The deployable form of the quant stage, from `model` and its float ONNX export with the exporter's
    names `float_onnx` (export.export_named; None for a simulated mode, which needs no file): the file the
    mode's registered converter makes (minified; INT8 checked to run integer kernels; an auto INT8 layout
    timed under `timing`), or a simulated k-bit model; with its QuantReport for the app's teaching visuals
    (its per-layer part only with a torch `model`: a runtime-only import converts from its file alone)."""
    spec.validate()
    workdir.mkdir(parents=True, exist_ok=True)
    x = calibration_inputs(splits.train, spec.calib_samples) if spec.calibrates else None
    if spec.simulated:
        quantized, checks, activations = _simulate(model, spec, splits, x)
    else:
        quantized, checks, activations = _deploy(model, float_onnx, spec, x, splits.val, workdir, timing)
    weights = weight_format(spec)
    quantized.report = QuantReport(**spec.to_dict(), weight_format=weights, **checks,
                                   layers=_layer_report(model, weights, activations),
                                   calib_samples_used=len(x) if x is not None else None)
    return quantized


def bit_width_curve(recipe: Recipe, spec: QuantSpec) -> list[Recipe]:
    """The recipes of accuracy against bit width for `spec`'s scheme, granularity and calibration: `recipe`
    quantized by simulated k-bit post-training quantization and by QAT (spec.qat_epochs, or QAT_CURVE_EPOCHS
    when that is 0) at each of PTQ_BITS."""
    qat = spec.qat_epochs or QAT_CURVE_EPOCHS
    return [replace(recipe, quant=replace(spec, mode="fake", bits=bits, qat_epochs=epochs))
            for epochs in (0, qat) for bits in PTQ_BITS]


@dataclass(frozen=True)
class BitPoint:
    """One stored result on the accuracy-against-bit-width chart: its series (e.g. 'PTQ (simulated)',
    'int8-static (measured)') and the width its weights are stored at."""

    series: str
    bits: int
    result: Result

    @property
    def simulated(self) -> bool:
        return not is_measured(self.result)


def bit_width_points(results: list[Result], spec: QuantSpec) -> list[BitPoint]:
    """The single-stage quantizations among `results` that belong on the curve of `spec`'s settings: simulated
    ones with its scheme, granularity and calibration (PTQ, and QAT by epochs), and every real format whose
    weights are at most BITS.high wide (measured)."""
    same = ("scheme", "granularity", "calibration", "calib_samples", "activations")
    points = []
    for result in results:
        q = Recipe.from_dict(result.recipe).quant
        if Recipe.from_dict(result.recipe).stages != ("quant",):
            continue
        mode = q.technique
        if mode.simulated and all(getattr(q, k) == getattr(spec, k) for k in same):
            series = f"QAT {q.qat_epochs} epochs (simulated)" if q.qat_epochs else "PTQ (simulated)"
            points.append(BitPoint(series, q.bits, result))
        elif not mode.simulated and mode.weight_bits <= BITS.high:
            points.append(BitPoint(f"{q.mode}{f' QAT {q.qat_epochs}' if q.qat_epochs else ''} (measured)",
                                   mode.weight_bits, result))
    return points
