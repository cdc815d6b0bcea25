"""Training learns, repeats for a seed; every model builds for any shape; ONNX matches torch."""

import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch

from compression import train
from compression.errors import CompressionError
from compression.export import export_named, export_onnx, minify
from compression.measure import onnx_logits
from compression.catalog import MODELS
from compression.models import _load_weights, build_model
from compression.train import Progress, evaluate, fit, predict, seed_everything


def test_training_beats_chance_and_reports_progress(digits):
    seed_everything(1)
    model = build_model("cnn", digits.input_shape, digits.num_classes)
    before = evaluate(model, digits.val)
    events: list[Progress] = []
    fit(model, digits.train, 3, seed=1, progress=events.append)
    after = evaluate(model, digits.val)
    assert before < 0.3 < 0.85 < after
    assert events[-1].epoch == 3 and events[-1].fraction == pytest.approx(1.0)
    assert events[-1].loss < events[0].loss


def test_training_repeats_for_a_seed(digits):
    weights = []
    for _ in range(2):
        seed_everything(7)
        model = fit(build_model("cnn", digits.input_shape, digits.num_classes), digits.train, 1, seed=7)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_training_takes_one_thread_when_every_core_is_busy():
    """With every core kept busy by another process, the app's jobs train with one torch thread (two threads
    fighting one free core train ~3× slower); torch's default thread count is the ceiling."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        assert train.busy_cores() > (os.cpu_count() or 1) - 0.5
        assert train.use_free_cores() == 1 and torch.get_num_threads() == 1
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        torch.set_num_threads(train.DEFAULT_THREADS)
    assert 1 <= train.use_free_cores() <= train.DEFAULT_THREADS
    torch.set_num_threads(train.DEFAULT_THREADS)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_model_builds_for_any_input_shape(name, shape):
    model = build_model(name, shape, 7).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("name", MODELS.where(scalable=True))
def test_half_width_has_about_a_quarter_of_the_parameters(name):
    """Parameters grow with the square of the width (conv and hidden layers scale on both sides)."""
    full, half = (build_model(name, (3, 32, 32), 7, width=w).eval() for w in (1.0, 0.5))
    assert half(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    params_full, params_half = (sum(p.numel() for p in m.parameters()) for m in (full, half))
    assert 0.2 < params_half / params_full < 0.35


def test_a_width_for_a_torchvision_model_is_a_one_line_error():
    with pytest.raises(CompressionError, match="width multiplier applies to cnn, resnet, mobilenet"):
        build_model("mobilenet_v3_small", (3, 32, 32), 7, width=0.5)


def test_unknown_model_and_impossible_pretrained_are_one_line_errors():
    with pytest.raises(CompressionError, match="unknown model 'vgg'"):
        build_model("vgg", (1, 8, 8), 10)
    with pytest.raises(CompressionError, match="no pretrained weights"):
        build_model("cnn", (1, 8, 8), 10, pretrained=True)


def test_pretrained_download_failure_names_where_to_put_the_file(tmp_path, monkeypatch):
    """Offline (here: a closed local port), asking for pretrained weights is a one-line error with the path."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    class Unreachable:
        url = "http://127.0.0.1:9/resnet18-f37072fd.pth"

        def get_state_dict(self, progress):
            return torch.hub.load_state_dict_from_url(self.url, progress=progress)

    with pytest.raises(CompressionError) as info:
        _load_weights(Unreachable(), "resnet18")
    assert str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cnn", "resnet", "mobilenet"])
def test_onnx_export_matches_torch_with_a_dynamic_batch(name, digits, tmp_path):
    seed_everything(0)
    model = build_model(name, digits.input_shape, digits.num_classes)
    fit(model, digits.train, 1, seed=0)  # BN running stats become non-trivial
    path = export_onnx(model, digits.input_shape, tmp_path / "m.onnx")
    for batch in (1, 7, 64):
        x = digits.test.x[:batch]
        np.testing.assert_allclose(onnx_logits(path, x), predict(model, x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_the_deployable_export_is_minified_with_identical_outputs(name, digits, tmp_path):
    """Minifying drops shapes, names, doc strings, metadata and default attributes and short-names every
    internal tensor: the file gets smaller and onnxruntime computes exactly the same logits."""
    seed_everything(0)
    model = build_model(name, digits.input_shape, digits.num_classes).eval()
    named = export_named(model, digits.input_shape, tmp_path / "named.onnx")
    deployable = export_onnx(model, digits.input_shape, tmp_path / "model.onnx")
    overhead = named.stat().st_size - deployable.stat().st_size
    assert overhead > 1000
    full, small = onnx.load(str(named)), onnx.load(str(deployable))
    assert [n.op_type for n in small.graph.node] == [n.op_type for n in full.graph.node]
    assert not small.graph.value_info and not small.metadata_props and all(not n.name for n in small.graph.node)
    assert [v.name for v in small.graph.input] == ["input"] and [v.name for v in small.graph.output] == ["logits"]
    assert all(len(t.name) <= 2 for t in small.graph.initializer)
    assert [o.domain for o in small.opset_import] == [""]
    x = digits.test.x[:64]
    np.testing.assert_array_equal(onnx_logits(deployable, x), onnx_logits(named, x))


def test_minify_drops_default_attributes_and_int32_zero_points_only():
    """An attribute at its schema default and the zero point of an int32 DequantizeLinear (0 by definition)
    are overhead; a non-default attribute and an int8 zero point are kept."""
    helper, tensor = onnx.helper, onnx.TensorProto
    bias = onnx.numpy_helper.from_array(np.array([[5, -3]], dtype=np.int32), "bias")
    weight = onnx.numpy_helper.from_array(np.array([[5, -3]], dtype=np.int8), "weight")
    zeros = {dtype: onnx.numpy_helper.from_array(np.zeros(2, dtype=dtype), f"zero_{dtype.__name__}")
             for dtype in (np.int32, np.int8)}
    scale = onnx.numpy_helper.from_array(np.array([0.5, 0.25], dtype=np.float32), "scale")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["bias", "scale", "zero_int32"], ["b"], name="dq_bias", axis=1),
         helper.make_node("DequantizeLinear", ["weight", "scale", "zero_int8"], ["w"], name="dq_weight", axis=1),
         helper.make_node("Add", ["b", "w"], ["s"]),
         helper.make_node("Gemm", ["input", "s"], ["logits"], alpha=1.0, beta=2.0)],
        "g", [helper.make_tensor_value_info("input", tensor.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("logits", tensor.FLOAT, [1, 2])], [bias, weight, *zeros.values(), scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(model, full_check=True)
    small = minify(onnx.ModelProto.FromString(model.SerializeToString()))
    onnx.checker.check_model(small, full_check=True)
    dq_bias, dq_weight, _, gemm = small.graph.node
    assert len(dq_bias.input) == 2 and len(dq_weight.input) == 3
    assert not dq_bias.attribute and not dq_weight.attribute and [a.name for a in gemm.attribute] == ["beta"]
    assert len(small.graph.initializer) == 4  # the int32 zero point is gone
    assert small.ByteSize() < model.ByteSize()
