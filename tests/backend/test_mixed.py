"""Mixed precision: per-layer INT8 sensitivity ranks a deliberately fragile layer first, a validation-drop bound keeps
that layer in float in the deployed file (and onnxruntime runs it in float), a bound int8 already meets keeps none,
simulated per-layer bit widths give the fragile layer the high width, and recipes without a bound keep their hashes."""

import json
from dataclasses import asdict

import pytest
import torch

from compression import layouts, mixed, quantize
from compression.__main__ import main
from compression.errors import CompressionError
from compression.export import export_named
from compression.measure import Timing, onnx_accuracy, prunable_layers
from compression.recipe import QuantSpec, Recipe
from compression.result import QuantReport, from_json
from tests.backend.test_layouts import _optimized_ops

FRAGILE = "features.3"


def _with_fragile_layer(model, outlier):
    """`model` (the trained digits CNN) with one fragile layer and the same float predictions: the first conv's
    channel 0 is made dead (its bias far below any activation, so ReLU outputs 0), and the second conv reads that
    channel with weights of `outlier` — multiplied by zero in float, but they set every output channel's
    quantization scale, so the layer's real weights round to zero on a coarse enough grid."""
    with torch.no_grad():
        model.features[0].bias[0] = -1000.0
        model.features[3].weight[:, 0] = outlier
    return model


@pytest.fixture
def fragile_cnn(trained_cnn):
    """Fragile at 8 bits: weights of 100 beside real ones of about 0.1."""
    return _with_fragile_layer(trained_cnn, 100.0)


def _choice(model, digits, tmp_path, max_drop):
    named = export_named(model, digits.input_shape, tmp_path / "named.onnx")
    x = quantize.calibration_inputs(digits.train, QuantSpec.calib_samples)
    return mixed.choose(named, QuantSpec("int8-static", max_drop=max_drop), x, digits.val, tmp_path / "mixed")


def test_sensitivity_ranks_the_fragile_layer_first_and_keeps_only_it_in_float(fragile_cnn, digits, tmp_path):
    choice = _choice(fragile_cnn, digits, tmp_path, 0.5)
    rows = {row.name: row for row in choice.layers}
    assert list(rows) == ["features.0", FRAGILE, "classifier.1", "classifier.3"]  # torch names, graph order
    assert max(rows.values(), key=lambda r: r.all_but_val_accuracy).name == FRAGILE
    assert min(rows.values(), key=lambda r: r.alone_val_accuracy).name == FRAGILE
    assert choice.int8_val_accuracy < choice.float_val_accuracy - 0.5  # all int8: the fragile layer ruins it
    assert choice.float_layers == [FRAGILE]
    assert choice.val_accuracy >= choice.float_val_accuracy - 0.005
    assert choice.all_or_nothing_float_layers == 4
    assert "kept 1 of 4 layers in float (features.3)" in choice.reason


def test_max_drop_deploys_the_fragile_layer_as_a_float_conv(fragile_cnn, digits, tmp_path):
    named = export_named(fragile_cnn, digits.input_shape, tmp_path / "named.onnx")
    spec = QuantSpec("int8-static", layout="plain", max_drop=0.5)
    quantized = quantize.convert(fragile_cnn, named, spec, digits, tmp_path / "q")
    report = quantized.report
    assert report.max_drop == 0.5 and report.mixed_precision.float_layers == [FRAGILE]
    assert layouts.disabled_optimizers(quantized.onnx) == [layouts.WEIGHT_BIAS_QUANTIZATION]
    ops = [op for op, _ in _optimized_ops(quantized.onnx, tmp_path)]
    assert ops.count("Conv") == 1 and ops.count("QLinearConv") == 1  # the fragile conv in float, the other int8
    assert ops.count("QGemm") == 2
    assert onnx_accuracy(quantized.onnx, digits.val) >= report.mixed_precision.float_val_accuracy - 0.005
    assert from_json(QuantReport, json.loads(json.dumps(asdict(report)))) == report


def test_mixed_precision_composes_with_a_layout(fragile_cnn, digits, tmp_path):
    named = export_named(fragile_cnn, digits.input_shape, tmp_path / "named.onnx")
    x = quantize.calibration_inputs(digits.train, 64)
    path = quantize.convert_static(named, QuantSpec("int8-static", layout="float-first"), x, tmp_path,
                                   keep_float=["node_conv2d_1"])
    assert layouts.disabled_optimizers(path) == [layouts.QDQ_PROPAGATION, layouts.WEIGHT_BIAS_QUANTIZATION]
    ops = [op for op, _ in _optimized_ops(path, tmp_path)]
    assert ops.count("Conv") == 2 and "QLinearConv" not in ops and ops.count("QGemm") == 2


@pytest.mark.slow
def test_mixed_precision_with_layout_auto_times_layouts_with_the_layer_in_float(fragile_cnn, digits, tmp_path):
    named = export_named(fragile_cnn, digits.input_shape, tmp_path / "named.onnx")
    quantized = quantize.convert(fragile_cnn, named, QuantSpec("int8-static", max_drop=0.5), digits, tmp_path / "q",
                                 Timing(batch=8))
    report = quantized.report
    assert report.mixed_precision.float_layers == [FRAGILE]
    assert all(t.val_accuracy >= report.mixed_precision.float_val_accuracy - 0.005 for t in report.layout_choice.trials)
    assert layouts.WEIGHT_BIAS_QUANTIZATION in layouts.disabled_optimizers(quantized.onnx)
    float_convs = [op for op, _ in _optimized_ops(quantized.onnx, tmp_path)].count("Conv")
    assert float_convs == 1 + (report.layout_choice.layout == "float-first")  # the fragile conv, and float-first's


def test_a_bound_int8_already_meets_keeps_no_float_layer(trained_cnn, digits, tmp_path):
    choice = _choice(trained_cnn, digits, tmp_path, 100.0)
    assert choice.float_layers == [] and choice.all_or_nothing_float_layers == 0
    assert choice.val_accuracy == choice.int8_val_accuracy
    assert choice.reason.startswith("every layer in int8")


def test_simulated_bits_give_the_fragile_layer_the_high_width(trained_cnn, digits):
    fragile_cnn = _with_fragile_layer(trained_cnn, 2.0)  # fragile at 4 bits (a step of ~0.13), fine at 8 (~0.008)
    assignment = mixed.bit_assignment(fragile_cnn, digits, 0.5)
    bits = {row.name: row.bits for row in assignment.layers}
    assert bits == {"features.0": 4, FRAGILE: 8, "classifier.1": 4, "classifier.3": 4}
    weights = dict(prunable_layers(fragile_cnn))
    assert [row.packed_bytes for row in assignment.layers] == [
        quantize.packed_weight_bytes(weights[name], b, "per-channel") for name, b in bits.items()]
    assert assignment.packed_bytes < assignment.high_packed_bytes == quantize.packed_size(fragile_cnn, 8, "per-channel")
    assert "simulated" in assignment.source
    assert assignment.val_accuracy >= assignment.float_val_accuracy - 0.005


def test_max_drop_leaves_other_recipes_hashes_alone():
    # hashes as main computed them before max_drop existed
    assert Recipe(quant=QuantSpec("int8-static")).hash == "194fa55e2067471a"
    assert Recipe(quant=QuantSpec("fake", bits=4)).hash == "e550f82ad6697ecd"
    assert Recipe(quant=QuantSpec("fp16")).hash == "0180acd05ee53370"
    bounded = Recipe(quant=QuantSpec("int8-static", max_drop=0.3))
    assert bounded.hash != "194fa55e2067471a" and bounded.to_dict()["quant"]["max_drop"] == 0.3
    assert Recipe.from_dict(bounded.to_dict()) == bounded


@pytest.mark.parametrize("spec, message", [
    (QuantSpec("int8-static", max_drop=-1.0), "--max-drop (validation accuracy points) must be within 0 … 100"),
    (QuantSpec("int8-static", max_drop=float("nan")), "must be within 0 … 100"),
    (QuantSpec("fp16", max_drop=0.3), "applies to int8-static, not to fp16"),
])
def test_bad_bounds_are_one_line(spec, message):
    with pytest.raises(CompressionError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        spec.validate()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("argv", [["run", "--quant", "int8-static", "--max-drop", "200"],
                                  ["run", "--quant", "int8-dynamic", "--max-drop", "0.3"],
                                  ["run", "--max-drop", "0.3"],
                                  ["run", "--quant", "int8-static", "--max-drop", "nan"]])
def test_cli_refuses_bad_max_drop_in_one_line(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ("max-drop" in err or "--quant" in err)


def test_quant_sensitivity_command_prints_the_baseline_tables(capsys):
    assert main(["quant-sensitivity", "--epochs", "2", "--max-drop", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in out["int8"]["layers"]] == ["features.0", "features.3", "classifier.1", "classifier.3"]
    assert out["int8"]["float_layers"] == [] and out["int8"]["runtime"] == "onnxruntime"
    assert {row["bits"] for row in out["bits"]["layers"]} == {4}  # any drop within 100 points
    assert out["bits"]["source"].startswith("simulated") and out["bits"]["packed_bytes"] < out["bits"]["high_packed_bytes"]
