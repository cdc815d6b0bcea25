"""ONNX export with a dynamic batch axis, validated before anything measures it."""

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, input_shape: Sequence[int], path: Path) -> Path:
    """Write `model` (eval mode) to a single ONNX file at `path` with a dynamic batch axis; check it."""
    model.eval()
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1)
    # The exporter narrates on stdout; keep stdout clean for the CLI's JSON.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},))
    onnx.save(strip_debug_info(onnx.load(str(path))), str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def strip_debug_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the exporter's per-node debugging metadata (stack traces with local paths, FX node text):
    a deployable file carries the graph and the weights, not where they were traced."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.metadata_props[:]
    return model
