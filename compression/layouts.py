"""Runtime-aware INT8: the layouts an int8-static file can take so that onnxruntime's CPU kernels run it fast
(catalog.INT8_LAYOUTS), and the rule that picks one from measured trials.

Measured on this project's models (issue 23): onnxruntime's fast int8 conv wants input channel counts in
multiples of 4, so a first conv on 1 or 3 input channels runs slower in int8 than in float. Two layouts fix it:
pad the input with zero channels (the Pad kept in float: the conv then sees 4 channels, its predictions
unchanged), or keep the first conv and the activation and pooling after it in float, in NCHWc — which needs
onnxruntime's QDQ propagation off for the file, else the quantize node moves up past the pooling and a
plain-layout uint8 MaxPool costs more than the conv saved. The session options a file needs are written into
its metadata (`RUNTIME_OPTIONS_KEY`), so every session this project opens on it applies them."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from compression.errors import CompressionError
from compression.result import LayoutTrial

RUNTIME_OPTIONS_KEY = "onnxruntime.disabled_optimizers"  # comma-separated optimizer names the file needs off
QDQ_PROPAGATION = "QDQPropagationTransformer"
# onnxruntime (1.20+) quantizes the float weight of a Conv / Gemm whose input is dequantized and whose output is
# quantized: a layer excluded from quantize_static between int8 neighbours (mixed precision) would run int8 anyway.
WEIGHT_BIAS_QUANTIZATION = "WeightBiasQuantization"
CHANNEL_BLOCK = 4  # onnxruntime's fast int8 conv takes input channels in multiples of this
ACCURACY_TOLERANCE = 0.005  # a layout matches when its validation accuracy is at most 0.5 pt below plain's
PAD_NODE = "layout_pad_channels"
# Ops that may follow the first conv inside its float block: elementwise activations, normalisation, pooling.
BLOCK_OPS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "BatchNormalization",
                       "MaxPool", "AveragePool"})


class DoesNotApply(CompressionError):
    """A layout asked for by name that this model's graph cannot take (auto skips it)."""


@dataclass(frozen=True)
class Prepared:
    """A float graph ready for quantize_static under a layout: the file to quantize, the nodes quantize_static
    leaves in float, and the onnxruntime optimizers sessions on the result must disable."""

    onnx: Path
    exclude: tuple[str, ...] = ()
    disabled_optimizers: tuple[str, ...] = ()


def _graph_input(graph: onnx.GraphProto) -> str:
    """The name of the graph's image input (an input that is not an initializer)."""
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


def _first_conv(graph: onnx.GraphProto) -> onnx.NodeProto | None:
    """The Conv that reads the graph's image input directly, if there is one."""
    image = _graph_input(graph)
    return next((n for n in graph.node if n.op_type == "Conv" and n.input[0] == image), None)


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def plain(pre: Path, workdir: Path) -> Prepared:
    """onnxruntime's conversion as it comes."""
    return Prepared(pre)


def pad_channels(pre: Path, workdir: Path) -> Prepared:
    """The float graph with its input padded by zero channels up to a multiple of CHANNEL_BLOCK in front of the
    first conv, whose weight gains zero input channels to match (so every output is unchanged); the Pad stays
    in float. DoesNotApply where the first conv already takes a multiple of the block, is grouped, or has no
    weight of its own."""
    model = onnx.load(str(pre))
    graph = model.graph
    conv = _first_conv(graph)
    if conv is None or any(a.name == "group" and a.i != 1 for a in conv.attribute):
        raise DoesNotApply("INT8 layout pad-channels: the model has no ungrouped conv on its input")
    weight = next((t for t in graph.initializer if t.name == conv.input[1]), None)
    if weight is None:
        raise DoesNotApply("INT8 layout pad-channels: the first conv's weight is not a constant of the file")
    array = numpy_helper.to_array(weight)
    missing = -array.shape[1] % CHANNEL_BLOCK
    if missing == 0:
        raise DoesNotApply(f"INT8 layout pad-channels: the first conv already takes {array.shape[1]} channels, a "
                           f"multiple of {CHANNEL_BLOCK}")
    zeros = np.zeros((array.shape[0], missing, *array.shape[2:]), array.dtype)
    weight.CopyFrom(numpy_helper.from_array(np.concatenate([array, zeros], axis=1), weight.name))
    amounts = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, missing, 0, 0], np.int64), f"{PAD_NODE}_amounts")
    graph.initializer.append(amounts)
    padded = f"{conv.input[0]}_padded"
    pad = helper.make_node("Pad", [conv.input[0], amounts.name], [padded], name=PAD_NODE)
    conv.input[0] = padded
    graph.node.insert(list(graph.node).index(conv), pad)
    del graph.value_info[:]  # shapes changed: the runtime infers them again
    path = workdir / "float-pre-padded.onnx"
    onnx.save(model, str(path))
    return Prepared(path, exclude=(PAD_NODE,))


def float_first(pre: Path, workdir: Path) -> Prepared:
    """The first conv and the chain of activations, normalisation and pooling it feeds (up to the next conv or
    matrix product, or a branch) left in float, with QDQ propagation off. DoesNotApply without a first conv."""
    graph = onnx.load(str(pre), load_external_data=False).graph
    conv = _first_conv(graph)
    if conv is None:
        raise DoesNotApply("INT8 layout float-first: the model has no conv on its input")
    consumers, block, node = _consumers(graph), [conv.name], conv
    while len(nexts := consumers.get(node.output[0], [])) == 1 and nexts[0].op_type in BLOCK_OPS:
        node = nexts[0]
        block.append(node.name)
    return Prepared(pre, exclude=tuple(block), disabled_optimizers=(QDQ_PROPAGATION,))


PREPARERS: dict[str, Callable[[Path, Path], Prepared]] = {
    "plain": plain, "pad-channels": pad_channels, "float-first": float_first}


def mark(path: Path, disabled_optimizers: Sequence[str]) -> None:
    """Write the onnxruntime optimizers the file needs disabled into its metadata (kept by export.minify)."""
    if not disabled_optimizers:
        return
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = RUNTIME_OPTIONS_KEY, ",".join(disabled_optimizers)
    onnx.save(model, str(path))


def disabled_optimizers(path: Path) -> list[str]:
    """The onnxruntime optimizers the ONNX file at `path` asks to have disabled (its metadata), if any; none for
    a file that does not parse (onnxruntime then says why it cannot load it)."""
    try:
        props = onnx.load(str(path), load_external_data=False).metadata_props
    except DecodeError:
        return []
    value = next((p.value for p in props if p.key == RUNTIME_OPTIONS_KEY), "")
    return [name for name in value.split(",") if name]


def pick(trials: Sequence[LayoutTrial]) -> tuple[LayoutTrial, str]:
    """The fastest trial whose validation accuracy is at most ACCURACY_TOLERANCE below the plain conversion's
    (the first trial), with the reason in words."""
    reference = trials[0]
    matching = [t for t in trials if t.val_accuracy >= reference.val_accuracy - ACCURACY_TOLERANCE]
    best = min(matching, key=lambda t: t.ratio)
    dropped = [t.layout for t in trials if t not in matching]
    reason = (f"{best.layout}: {best.ratio:.2f}x the float model's time ({best.clock}) against "
              f"{reference.ratio:.2f}x for plain, validation accuracy {best.val_accuracy:.2%}")
    if best is reference:
        reason = f"plain: fastest of {len(trials)} layouts tried ({reference.ratio:.2f}x the float model's time)"
    if dropped:
        reason += f"; {', '.join(dropped)} lost validation accuracy"
    return best, reason
