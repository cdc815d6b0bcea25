"""Quantization: the affine mapping and straight-through fake quantization on hand-computed values, weight
reports, QAT, and every conversion mode measured on the digits CNN trained for real."""

import json
from dataclasses import asdict
import math
from dataclasses import astuple, replace

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from compression.data import Split
from compression.export import export_named, save_deployable
from compression.measure import onnx_logits, prunable_layers
from compression.quantize import (affine_params, convert, fake_quantize, integer_execution, quantize_stage,
                                  quantize_weights, sqnr_db, weight_report)
from compression.recipe import QuantSpec
from compression.train import evaluate

SCALE = 4 / 255  # x in [-1, 3] on an 8-bit asymmetric grid


@pytest.fixture(scope="module")
def float_onnx(_trained_cnn, digits, tmp_path_factory):
    """The float export with the exporter's names, as the quantizers read it."""
    return export_named(_trained_cnn, digits.input_shape, tmp_path_factory.mktemp("float") / "named.onnx")


@pytest.fixture(scope="module")
def deployable_float(float_onnx):
    return save_deployable(float_onnx, float_onnx.with_name("model.onnx"))


def onnx_test_accuracy(path, digits) -> float:
    return float((onnx_logits(path, digits.test.x).argmax(1) == digits.test.y.numpy()).mean())


def test_affine_params_follow_the_article():
    assert astuple(affine_params(-1.0, 3.0, 8, "asymmetric")) == pytest.approx((SCALE, 64, 0, 255))
    assert astuple(affine_params(-1.0, 3.0, 8, "symmetric")) == pytest.approx((6 / 254, 0, -127, 127))
    assert astuple(affine_params(1.0, 3.0, 8, "asymmetric")) == pytest.approx((3 / 255, 0, 0, 255))  # holds 0
    assert astuple(affine_params(-2.0, -1.0, 4, "asymmetric")) == pytest.approx((2 / 15, 15, 0, 15))
    constant = affine_params(0.0, 0.0, 8, "asymmetric")
    assert constant.scale > 0 and fake_quantize(torch.zeros(3), constant.scale, constant.zero_point, 0, 255).eq(0).all()


def test_fake_quantize_rounds_clamps_and_keeps_zero_exact():
    p = affine_params(-1.0, 3.0, 8, "asymmetric")
    x = torch.tensor([-2.0, -1.0, 0.0, 0.5, 3.0, 5.0])
    expected = [(0 - 64) * SCALE, (0 - 64) * SCALE, 0.0, (96 - 64) * SCALE, (255 - 64) * SCALE, (255 - 64) * SCALE]
    out = fake_quantize(x, p.scale, p.zero_point, p.qmin, p.qmax)
    assert out.tolist() == pytest.approx(expected, rel=1e-6)
    assert out[2].item() == 0.0
    s = affine_params(-1.0, 3.0, 8, "symmetric")
    assert fake_quantize(torch.tensor([0.0, -5.0]), s.scale, s.zero_point, s.qmin, s.qmax).tolist() == pytest.approx(
        [0.0, -127 * 6 / 254])


def test_fake_quantize_broadcasts_per_channel_scales_along_dim0():
    x = torch.tensor([[0.26, 0.74], [0.26, 0.74]])
    out = fake_quantize(x, torch.tensor([0.5, 0.25]), torch.tensor([0, 0]), -127, 127)
    assert out.tolist() == [[0.5, 0.5], [0.25, 0.75]]


def test_straight_through_gradient_is_one_inside_the_range_and_zero_outside():
    p = affine_params(-1.0, 3.0, 8, "asymmetric")
    x = torch.tensor([-3.0, -0.7, 0.0, 1.234, 2.9, 9.0], requires_grad=True)
    fake_quantize(x, p.scale, p.zero_point, p.qmin, p.qmax).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_quantize_weights_puts_each_channel_on_its_own_grid(trained_cnn):
    weight = trained_cnn.features[3].weight.detach()
    per_tensor, [whole] = quantize_weights(weight, 4, "asymmetric", "per-tensor")
    per_channel, params = quantize_weights(weight, 4, "asymmetric", "per-channel")
    assert len(params) == weight.shape[0] == 64
    assert len(torch.unique(per_tensor)) <= 16
    for channel, p in zip(per_channel, params):
        q = channel / p.scale + p.zero_point
        assert torch.allclose(q, q.round(), atol=1e-3) and q.min() >= p.qmin - 1e-3 and q.max() <= p.qmax + 1e-3
    assert sqnr_db(weight, per_channel) > sqnr_db(weight, per_tensor)


def test_sqnr_db():
    x = torch.ones(4)
    assert sqnr_db(x, x + 0.1) == pytest.approx(20.0)
    assert sqnr_db(x, x) == math.inf


def test_weight_report_sqnr_rises_with_bits(trained_cnn):
    eight, four = (weight_report(trained_cnn, bits, "symmetric", "per-channel") for bits in (8, 4))
    assert [layer.name for layer in eight] == [name for name, _ in prunable_layers(trained_cnn)]
    for hi, lo, (_, layer) in zip(eight, four, prunable_layers(trained_cnn)):
        assert hi.sqnr_db > lo.sqnr_db + 15  # ~6 dB a bit
        assert len(hi.scales) == layer.weight.shape[0] and hi.zero_point == 0
        assert len(hi.histogram.counts) == 60 and sum(hi.histogram.counts) == layer.weight.numel()
    assert weight_report(trained_cnn, 8, "asymmetric", "per-tensor")[0].scales is None


def _weights_and_scales(path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(int8 weight, scale) of each Conv / Gemm in a QDQ file, in graph order, found by structure (the
    deployable file's tensor names are short)."""
    graph = onnx.load(str(path)).graph
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    weights = [producer[node.input[1]] for node in graph.node if node.op_type in ("Conv", "Gemm")]
    return [(stored[dq.input[0]], stored[dq.input[1]]) for dq in weights]


def test_int8_static_per_channel_runs_integer_kernels_at_a_quarter_of_the_size(float_onnx, deployable_float, digits,
                                                                                _trained_cnn, tmp_path):
    quantized = convert(_trained_cnn, float_onnx, QuantSpec("int8-static", layout="plain"), digits, tmp_path)
    weights = _weights_and_scales(quantized.onnx)
    assert len(weights) == 4 and all(q.dtype == np.int8 for q, _ in weights)
    assert quantized.onnx.stat().st_size / deployable_float.stat().st_size < 0.3
    predictions = [onnx_logits(path, digits.test.x).argmax(1) for path in (quantized.onnx, deployable_float)]
    assert (predictions[0] == predictions[1]).mean() >= 0.95
    report = json.loads(json.dumps(asdict(quantized.report), allow_nan=False))  # JSON-ready for the store
    assert report["runs_integer"] and report["float_compute_ops"] == {}
    assert report["integer_ops"].get("QLinearConv") == 2
    assert (quantized.size_bytes, quantized.size_source, quantized.simulated_accuracy) == (None, "onnx file", None)
    for layer in report["layers"]:  # minmax: the calibrated clip range is the observed range, to a grid step
        act = layer["activation"]
        assert act["clip_min"] <= 0 <= act["clip_max"]
        assert act["clip_max"] == pytest.approx(act["observed_max"], abs=act["scale"])


def test_int8_static_entropy_clips_activation_outliers(float_onnx, digits, _trained_cnn, tmp_path):
    spec = QuantSpec("int8-static", calibration="entropy", calib_samples=100, layout="plain")  # 64 + a ragged batch of 36
    quantized = convert(_trained_cnn, float_onnx, spec, digits, tmp_path)
    clipped = [layer.activation.observed_max - layer.activation.clip_max for layer in quantized.report.layers]
    assert max(clipped) > 0.1 and quantized.report.runs_integer
    assert onnx_test_accuracy(quantized.onnx, digits) >= evaluate(_trained_cnn, digits.test) - 0.03


def test_int8_dynamic_and_fp16_run_near_float_accuracy(float_onnx, deployable_float, digits, _trained_cnn, tmp_path):
    reference = evaluate(_trained_cnn, digits.test)
    dynamic = convert(_trained_cnn, float_onnx, QuantSpec("int8-dynamic"), digits, tmp_path / "dynamic")
    half = convert(_trained_cnn, float_onnx, QuantSpec("fp16"), digits, tmp_path / "fp16")
    assert dynamic.report.runs_integer and "ConvInteger" in dynamic.report.integer_ops
    assert 0.4 < half.onnx.stat().st_size / deployable_float.stat().st_size < 0.6
    for quantized in (dynamic, half):
        assert onnx_test_accuracy(quantized.onnx, digits) >= reference - 0.02


def test_fake_quantization_is_simulated_and_packed(digits, _trained_cnn, tmp_path):
    reference = evaluate(_trained_cnn, digits.test)
    eight = convert(_trained_cnn, None, QuantSpec("fake", bits=8), digits, tmp_path)
    ternary = convert(_trained_cnn, None, QuantSpec("fake", bits=2, scheme="symmetric", granularity="per-tensor"),
                      digits, tmp_path)
    four = convert(_trained_cnn, None, QuantSpec("fake", bits=4), digits, tmp_path)
    assert eight.onnx is None and eight.simulated_accuracy == pytest.approx(reference, abs=0.01)
    assert eight.simulated_val_accuracy == pytest.approx(evaluate(_trained_cnn, digits.val), abs=0.01)
    assert ternary.simulated_accuracy < reference - 0.1
    float_weights = 4 * sum(p.numel() for p in _trained_cnn.parameters())
    assert 1 / 8 < four.size_bytes / float_weights < 0.14
    assert four.size_source == "computed: packed 4-bit weights"


def test_fake_activations_clip_to_the_calibrated_percentile(digits, _trained_cnn, tmp_path):
    spec = QuantSpec("fake", bits=8, activations=True, calibration="percentile")
    quantized = convert(_trained_cnn, None, spec, digits, tmp_path)
    activations = [layer.activation for layer in quantized.report.layers]
    assert all(a.observed_min <= a.clip_min <= a.clip_max <= a.observed_max for a in activations)
    assert any(a.clip_max < a.observed_max - 0.1 for a in activations)
    assert quantized.simulated_accuracy >= evaluate(_trained_cnn, digits.test) - 0.02


def test_calibration_samples_are_capped_at_the_train_split(float_onnx, digits, _trained_cnn, tmp_path):
    few = replace(digits, train=Split(digits.train.x[:90], digits.train.y[:90]))  # a small image folder's split
    quantized = convert(_trained_cnn, float_onnx, QuantSpec("int8-static", layout="plain"), few, tmp_path)
    assert quantized.report.calib_samples == QuantSpec.calib_samples and quantized.report.calib_samples_used == 90
    assert onnx_test_accuracy(quantized.onnx, digits) >= evaluate(_trained_cnn, digits.test) - 0.03


def test_quantize_stage_without_qat_returns_an_unchanged_copy(trained_cnn, digits):
    model = quantize_stage(trained_cnn, QuantSpec("int8-static"), digits, seed=0)
    assert model is not trained_cnn
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained_cnn.state_dict().values()))


def test_qat_fine_tunes_onto_the_grid_and_recovers_accuracy(trained_cnn, digits, tmp_path):
    spec = QuantSpec("fake", bits=2, scheme="symmetric", granularity="per-tensor")
    tuned = quantize_stage(trained_cnn, replace(spec, qat_epochs=1), digits, seed=0)
    before, after = trained_cnn.state_dict(), tuned.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before)
    for _, layer in prunable_layers(tuned):
        assert not parametrize.is_parametrized(layer) and not layer._forward_pre_hooks
        assert type(layer.weight) is nn.Parameter
        assert torch.equal(quantize_weights(layer.weight.detach(), 2, "symmetric", "per-tensor")[0],
                           layer.weight.detach())
    ptq = convert(trained_cnn, None, spec, digits, tmp_path).simulated_accuracy
    qat = convert(tuned, None, spec, digits, tmp_path).simulated_accuracy
    assert qat > ptq + 0.05


def test_int8_qat_exports_weights_exactly_on_the_runtime_int8_grid(trained_cnn, digits, tmp_path):
    spec = QuantSpec("int8-static", qat_epochs=1, layout="plain")  # every layer in int8
    few = replace(digits, train=Split(digits.train.x[:256], digits.train.y[:256]))  # the grid, not accuracy, matters
    tuned = quantize_stage(trained_cnn, spec, few, seed=0)
    path = convert(tuned, export_named(tuned, digits.input_shape, tmp_path / "qat.onnx"), spec, few, tmp_path).onnx
    for (q, scale), (_, layer) in zip(_weights_and_scales(path), prunable_layers(tuned), strict=True):
        assert np.array_equal(q.astype(np.float32) * scale.reshape(-1, *[1] * (q.ndim - 1)), layer.weight.detach())


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic", "fp16", "fp32"])
def test_every_deployable_format_is_minified_smaller_with_identical_outputs(mode, float_onnx, digits, _trained_cnn,
                                                                            tmp_path):
    """The deployable file is the converter's output minified: smaller, every internal tensor short-named,
    the interface kept, and onnxruntime computes exactly the same logits, on the same integer kernels."""
    quantized = convert(_trained_cnn, float_onnx, QuantSpec(mode, layout="plain"), digits, tmp_path)
    converted = float_onnx if mode == "fp32" else tmp_path / f"converted-{mode}.onnx"
    assert quantized.onnx.stat().st_size < converted.stat().st_size
    graph = onnx.load(str(quantized.onnx)).graph
    assert [v.name for v in graph.input] == ["input"] and [v.name for v in graph.output] == ["logits"]
    assert not graph.value_info and all(not node.name for node in graph.node)
    assert all(len(t.name) <= 2 for t in graph.initializer)
    np.testing.assert_array_equal(onnx_logits(quantized.onnx, digits.test.x), onnx_logits(converted, digits.test.x))
    if mode.startswith("int8"):
        assert integer_execution(quantized.onnx, tmp_path) == integer_execution(converted, tmp_path)
