"""Mixed precision: per-layer quantization sensitivity (each layer quantized alone, and all but one, scored on the
validation split — the analysis AIMET calls QuantAnalyzer) and the layers an int8-static file keeps in float so
that its validation accuracy stays within a bound of the float model's (measured in onnxruntime); and simulated
per-layer bit widths (fake quantization in torch: the low width where a layer tolerates it, else the high one)
with their packed size."""

import copy
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from compression import layouts, quantize
from compression.catalog import MODELS
from compression.data import Split, Splits
from compression.errors import CompressionError
from compression.export import export_named
from compression.measure import onnx_accuracy, prunable_layers
from compression.recipe import Format, QuantSpec, Recipe
from compression.result import BitAssignment, LayerBits, LayerQuantSensitivity, MixedPrecision
from compression.store import Store
from compression.train import Progress, ProgressFn, evaluate, silent

QUANTIZABLE_OPS = frozenset({"Conv", "Gemm", "MatMul"})
LOW_BITS, HIGH_BITS = 4, 8  # simulated widths: robust layers at LOW_BITS, sensitive ones at HIGH_BITS
EPSILON = 1e-9  # accuracy comparisons: a drop equal to the bound fits


@dataclass(frozen=True)
class GraphLayer:
    """A conv / matrix product of the float graph with a constant weight: its torch layer name (the weight's
    name without .weight, e.g. features.0), node name and op type."""

    name: str
    node: str
    op: str


def graph_layers(path: Path) -> list[GraphLayer]:
    """The quantizable layers of the ONNX graph at `path` in graph order (named nodes whose weight is a constant)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return [GraphLayer(node.input[1].removesuffix(".weight"), node.name, node.op_type) for node in graph.node
            if node.op_type in QUANTIZABLE_OPS and node.name and len(node.input) > 1 and node.input[1] in weights]


class _Scorer:
    """Validation accuracy in onnxruntime of the float graph `pre` converted with chosen nodes kept in float (and
    onnxruntime told not to quantize them itself), one calibration shared by every conversion, each set of float
    nodes converted once."""

    def __init__(self, pre: Path, spec: QuantSpec, x: torch.Tensor, val: Split, workdir: Path) -> None:
        self.pre, self.spec, self.val, self.workdir = pre, spec, val, workdir
        self.cache = quantize.calibration_cache(pre, spec, x, workdir)
        self.scores: dict[frozenset[str], float] = {}

    def __call__(self, keep_float: Iterable[str]) -> float:
        key = frozenset(keep_float)
        if key not in self.scores:
            path = self.workdir / f"mixed-{len(self.scores)}.onnx"
            quantize.quantize_qdq(self.pre, path, self.spec, self.cache, sorted(key))
            layouts.mark(path, [layouts.WEIGHT_BIAS_QUANTIZATION] if key else [])
            self.scores[key] = onnx_accuracy(path, self.val)
        return self.scores[key]


def layer_sensitivity(layers: list[GraphLayer], score: _Scorer) -> list[LayerQuantSensitivity]:
    """Each layer's validation accuracy with it alone quantized, and with every layer but it quantized."""
    nodes = [layer.node for layer in layers]
    return [LayerQuantSensitivity(layer.name, layer.node, layer.op,
                                  alone_val_accuracy=score(n for n in nodes if n != layer.node),
                                  all_but_val_accuracy=score([layer.node])) for layer in layers]


def choose(float_onnx: Path, spec: QuantSpec, x: torch.Tensor, val: Split, workdir: Path) -> MixedPrecision:
    """The layers of `float_onnx` (an exporter-named float export) an int8-static conversion under `spec` keeps in
    float for a validation drop of at most spec.max_drop points below the float model: the most sensitive first
    (ranked by the accuracy the all-but-one conversion keeps), added one by one and re-measured until the drop
    fits; beside it, the float layers all-or-nothing needs (none if every layer in int8 fits, else all). Scored on
    the plain layout; the deployed file's layout (auto) is then chosen with these layers in float."""
    workdir.mkdir(parents=True, exist_ok=True)
    pre = quantize.preprocessed(float_onnx, workdir)
    layers = graph_layers(pre)
    score = _Scorer(pre, spec, x, val, workdir)
    float_accuracy, int8_accuracy = onnx_accuracy(pre, val), score([])
    bound = spec.max_drop / 100

    def fits(accuracy: float) -> bool:
        return float_accuracy - accuracy <= bound + EPSILON

    table = layer_sensitivity(layers, score)
    ranked = sorted(table, key=lambda row: row.all_but_val_accuracy, reverse=True)  # ties keep graph order
    kept: list[LayerQuantSensitivity] = []
    accuracy = int8_accuracy
    for row in ranked:
        if fits(accuracy):
            break
        kept.append(row)
        accuracy = score(r.node for r in kept)
    needed = 0 if fits(int8_accuracy) else len(layers)
    reason = _reason(spec.max_drop, float_accuracy, int8_accuracy, accuracy, [r.name for r in kept], len(layers),
                     fits(accuracy))
    return MixedPrecision(spec.max_drop, float_accuracy, int8_accuracy, table, [r.name for r in kept], accuracy,
                          needed, reason)


def _reason(max_drop: float, float_accuracy: float, int8_accuracy: float, accuracy: float, kept: list[str],
            total: int, fitted: bool) -> str:
    """Why the float layers are what they are, in words (drops in validation accuracy points)."""
    int8_drop, drop = (float_accuracy - int8_accuracy) * 100, (float_accuracy - accuracy) * 100
    if not kept:
        return (f"every layer in int8: validation {int8_accuracy:.2%} is {int8_drop:.2f} pt below the float model's "
                f"{float_accuracy:.2%}, within {max_drop:g} pt; all-or-nothing needs no float layer either")
    if len(kept) < total:
        return (f"kept {len(kept)} of {total} layers in float ({', '.join(kept)}), most sensitive first: validation "
                f"{accuracy:.2%}, {drop:.2f} pt below float, within {max_drop:g} pt; all-or-nothing needs all {total} "
                f"in float (every layer in int8: {int8_drop:.2f} pt below)")
    outcome = "fits" if fitted else f"is still {drop:.2f} pt below float"
    return (f"no mixed choice beats all-or-nothing: every layer in int8 is {int8_drop:.2f} pt below float, beyond "
            f"{max_drop:g} pt, and only with all {total} layers in float the drop {outcome}")


def bit_assignment(model: nn.Module, splits: Splits, max_drop: float, low: int = LOW_BITS, high: int = HIGH_BITS,
                   scheme: str = QuantSpec.scheme, granularity: str = QuantSpec.granularity) -> BitAssignment:
    """Simulated per-layer weight widths of `model` (fake quantization in torch, weights only): each conv / linear
    layer at `low` bits where that layer alone at `low` costs at most `max_drop` validation accuracy points,
    else at `high` (and while the layers at `low` together cost more, the most sensitive of them go up to
    `high`); the model with every layer at its width scored on validation and test, with its packed size
    beside every layer at `high`."""
    float_accuracy = evaluate(model, splits.val)
    names = [name for name, _ in prunable_layers(model)]

    def simulated(widths: dict[str, int], split: Split) -> float:
        copied = copy.deepcopy(model)
        with quantize.fake_quantized(copied, {n: Format(b, scheme, granularity) for n, b in widths.items()}, {}):
            return evaluate(copied, split)

    def fits(accuracy: float) -> bool:
        return (float_accuracy - accuracy) * 100 <= max_drop + EPSILON

    alone = {name: simulated({name: low}, splits.val) for name in names}
    widths = {name: low if fits(alone[name]) else high for name in names}
    for name in sorted(names, key=alone.__getitem__):  # together over the bound: the most sensitive go up first
        if fits(simulated(widths, splits.val)):
            break
        widths[name] = high
    layers = dict(prunable_layers(model))
    rows = [LayerBits(name, alone[name], widths[name], quantize.packed_weight_bytes(layers[name], widths[name],
                                                                                     granularity)) for name in names]
    return BitAssignment(max_drop, low, high, float_accuracy, rows, simulated(widths, splits.val),
                         simulated(widths, splits.test), quantize.packed_size(model, widths, granularity),
                         quantize.packed_size(model, high, granularity))


def baseline_report(recipe: Recipe, max_drop: float, store: Store | None = None,
                    progress: ProgressFn = silent) -> dict[str, Any]:
    """For the baseline of `recipe` (trained or served from the store): its INT8 layer sensitivity and the float
    layers `max_drop` keeps (measured, onnxruntime, validation; int8-static at the default settings), and its
    simulated per-layer bit widths for the same bound, as JSON-ready data."""
    spec = QuantSpec("int8-static", max_drop=max_drop)
    recipe = recipe.baseline()
    recipe.validate()
    spec.validate()
    reason = MODELS[recipe.model].runtime_only
    if reason is not None:
        raise CompressionError(f"{recipe.model} runs in onnxruntime only ({reason}): per-layer bit widths need a "
                               f"torch form; run --quant int8-static --max-drop {max_drop:g} for its INT8 table")
    from compression import pipeline  # heavy: training and the store's baseline weights

    store = store or Store()
    splits = pipeline.splits_for(recipe)
    model = pipeline.baseline_model(store, recipe, splits, progress)
    progress(Progress("quant", f"per-layer sensitivity of {len(prunable_layers(model))} layers, INT8 in "
                               f"onnxruntime and {LOW_BITS}-bit simulated"))
    with tempfile.TemporaryDirectory() as folder:
        named = export_named(model, splits.input_shape, Path(folder) / "named.onnx")
        x = quantize.calibration_inputs(splits.train, spec.calib_samples)
        int8 = choose(named, spec, x, splits.val, Path(folder) / "mixed")
    return {"baseline": recipe.hash, "int8": asdict(int8), "bits": asdict(bit_assignment(model, splits, max_drop))}
