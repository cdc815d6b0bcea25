"""ONNX export with a dynamic batch axis, minified and validated before anything measures it."""

import contextlib
import io
import itertools
import string
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
import torch
from onnx import helper
from torch import nn

INPUT_NAME = "input"
RUNTIME_METADATA = "onnxruntime."  # metadata keys a runtime reads (session options a file needs): minify keeps them
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, input_shape: Sequence[int], path: Path) -> Path:
    """Write `model` (eval mode) to `path` as a deployable ONNX file: exported, minified and checked."""
    return save_deployable(export_named(model, input_shape, path), path)


def export_named(model: nn.Module, input_shape: Sequence[int], path: Path) -> Path:
    """Write `model` (eval mode) to a single ONNX file at `path` with a dynamic batch axis, its tensors named
    as the exporter names them (initializers after the torch parameters, e.g. features.0.weight): the
    input of the quantizers, whose reports name torch layers. Checked, not minified."""
    model.eval()
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1)
    # The exporter narrates on stdout; keep stdout clean for the CLI's JSON.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def save_deployable(source: Path, path: Path) -> Path:
    """Write the ONNX file `source` minified to `path` (may be the same file) and check it (full check:
    types and shapes infer)."""
    onnx.save(minify(onnx.load(str(source))), str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def minify(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without what no runtime reads: value_info (shapes a runtime infers again), node names, doc
    strings and metadata (exporter stack traces, FX node text, quantizer notes; the model's own entries for
    onnxruntime, `onnxruntime.*`, are kept: the runtime options it needs), attributes set to their
    schema default, the zero points of int32 dequantization, initializers and opset imports no node uses;
    every tensor but the graph's inputs and outputs gets a short name, and nodes come in topological order.
    The computation is unchanged: same ops, attribute meanings, weights and interface."""
    graph = model.graph
    del graph.value_info[:]
    runtime = [(p.key, p.value) for p in model.metadata_props if p.key.startswith(RUNTIME_METADATA)]
    for part in (model, graph, *graph.input, *graph.output, *graph.initializer, *graph.node):
        part.doc_string = ""
        del part.metadata_props[:]
    helper.set_model_props(model, dict(runtime))
    _sort_topologically(graph)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    for node in graph.node:
        node.name = ""
        _drop_default_attributes(node, opsets[node.domain])
    _drop_int32_zero_points(graph)
    _drop_unused_initializers(graph)
    used = {node.domain for node in graph.node}
    kept = [entry for entry in model.opset_import if entry.domain in used or entry.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    if not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node
               for a in n.attribute):  # a subgraph may name outer tensors: renaming stops at flat graphs
        _shorten_names(graph)
    return model


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Order the nodes so that each follows the producers of its inputs, as ONNX requires (onnxruntime's fp16
    converter appends its input Cast last), otherwise keeping their order. A node whose inputs never appear
    stays behind, for the checker to name."""
    known = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while (node := next((n for n in pending if set(n.input) <= known), None)) is not None:
        pending.remove(node)
        ordered.append(node)
        known.update(node.output)
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered + pending]
    del graph.node[:]
    graph.node.extend(nodes)


def _drop_default_attributes(node: onnx.NodeProto, version: int) -> None:
    """Remove the attributes of `node` whose value is the one its op's schema defines as default."""
    if not onnx.defs.has(node.op_type, node.domain):
        return
    schema = onnx.defs.get_schema(node.op_type, version, node.domain)
    defaults = {name: attr.default_value for name, attr in schema.attributes.items() if attr.default_value.type}
    kept = [a for a in node.attribute if a.name not in defaults
            or helper.get_attribute_value(a) != helper.get_attribute_value(defaults[a.name])]
    del node.attribute[:]
    node.attribute.extend(kept)


def _drop_int32_zero_points(graph: onnx.GraphProto) -> None:
    """Remove the zero-point input of every DequantizeLinear of an int32 initializer (a quantized bias):
    ONNX defines int32 dequantization without a zero point (it must be 0, the default when omitted)."""
    int32 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT32}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx") and node.input[0] in int32:
            del node.input[2:]


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove initializers that no node reads and that are not graph inputs or outputs."""
    used = {name for node in graph.node for name in node.input} | {v.name for v in (*graph.input, *graph.output)}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _short_names() -> Iterator[str]:
    """a, b, …, z, A, …, Z, aa, ab, …: the shortest names first."""
    for length in itertools.count(1):
        for chars in itertools.product(string.ascii_letters, repeat=length):
            yield "".join(chars)


def _shorten_names(graph: onnx.GraphProto) -> None:
    """Rename every initializer and intermediate tensor of a flat `graph` to a short name; the graph's
    inputs and outputs keep theirs (they are the file's interface), and so does the empty name (an
    omitted optional input)."""
    interface = {v.name for v in (*graph.input, *graph.output)} | {""}
    names = (name for name in _short_names() if name not in interface)
    tensors = [t.name for t in graph.initializer] + [o for n in graph.node for o in n.output]
    renamed = {old: next(names) for old in dict.fromkeys(tensors) if old not in interface}
    for tensor in graph.initializer:
        tensor.name = renamed[tensor.name]
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
