"""Runtime-aware INT8 layouts: padded channels change no prediction, the float first block and the session
options it needs survive export, auto keeps the fastest layout that keeps accuracy, and layouts leave the
hashes of recipes that do not use them unchanged."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from compression import layouts, quantize
from compression.__main__ import main
from compression.export import export_named, save_deployable
from compression.measure import Timing, onnx_logits
from compression.recipe import PruneSpec, QuantSpec, Recipe
from compression.result import LayoutTrial


@pytest.fixture
def exported(trained_cnn, digits, tmp_path):
    """The trained digits CNN as the exporter names it, and its preprocessed float graph."""
    named = export_named(trained_cnn, digits.input_shape, tmp_path / "named.onnx")
    return named, quantize.preprocessed(named, tmp_path)


def _optimized_ops(path, tmp_path) -> list[tuple[str, str]]:
    """(op type, domain) of the graph onnxruntime runs for the file at `path`, with the optimizers its metadata
    names disabled, as measure.session runs it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=layouts.disabled_optimizers(path))
    return [(node.op_type, node.domain) for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


def test_padded_channels_change_no_prediction(exported, digits, tmp_path):
    named, pre = exported
    padded = layouts.pad_channels(pre, tmp_path)
    graph = onnx.load(str(padded.onnx)).graph
    pad = next(n for n in graph.node if n.op_type == "Pad")
    assert padded.exclude == (pad.name,)
    assert np.allclose(onnx_logits(padded.onnx, digits.test.x), onnx_logits(pre, digits.test.x), atol=1e-5)
    spec = QuantSpec("int8-static")
    x = quantize.calibration_inputs(digits.train, spec.calib_samples)
    (tmp_path / "plain").mkdir()
    plain = quantize.convert_static(named, spec, x, tmp_path / "plain")
    (tmp_path / "pad").mkdir()
    int8_padded = quantize.convert_static(named, QuantSpec("int8-static", layout="pad-channels"), x, tmp_path / "pad")
    assert (onnx_logits(int8_padded, digits.test.x).argmax(1) == onnx_logits(plain, digits.test.x).argmax(1)).all()


def test_pad_channels_refuses_a_conv_on_four_channels(tmp_path):
    image = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 4, 8, 8])
    out = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)
    weight = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["out"], name="conv")], "four",
                              [image], [out], [weight])
    path = tmp_path / "four.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(layouts.DoesNotApply, match="already takes 4 channels"):
        layouts.pad_channels(path, tmp_path)


def test_float_first_keeps_its_block_and_options_through_export(exported, digits, tmp_path):
    named, pre = exported
    prepared = layouts.float_first(pre, tmp_path)
    graph = onnx.load(str(pre)).graph
    ops = {n.name: n.op_type for n in graph.node}
    assert [ops[name] for name in prepared.exclude] == ["Conv", "Relu", "MaxPool"]
    (tmp_path / "ff").mkdir()
    converted = quantize.convert_static(named, QuantSpec("int8-static", layout="float-first"),
                                        quantize.calibration_inputs(digits.train, 64), tmp_path / "ff")
    deployable = save_deployable(converted, tmp_path / "deployable.onnx")
    assert layouts.disabled_optimizers(deployable) == [layouts.QDQ_PROPAGATION]
    run = _optimized_ops(deployable, tmp_path)
    assert ("QLinearConv", "com.microsoft") in run and ("QGemm", "com.microsoft") in run  # the rest is integer
    # the first block's pooling stays a float NCHWc pool: QDQ propagation would make it a plain-layout uint8 pool
    assert ("MaxPool", "com.microsoft.nchwc") in run and ("MaxPool", "") not in run


def test_pick_keeps_the_fastest_layout_that_keeps_accuracy():
    plain = LayoutTrial("plain", 0.970, 0.95, 1.0, "thread CPU time")
    padded = LayoutTrial("pad-channels", 0.970, 0.75, 1.0, "thread CPU time")
    float_first = LayoutTrial("float-first", 0.960, 0.55, 1.0, "thread CPU time")  # 1 pt lost: refused
    best, reason = layouts.pick([plain, padded, float_first])
    assert best is padded
    assert "float-first lost validation accuracy" in reason
    slower = LayoutTrial("pad-channels", 0.972, 1.10, 1.0, "thread CPU time")
    assert layouts.pick([plain, slower])[0] is plain


@pytest.mark.slow
def test_auto_layout_times_each_layout_and_keeps_the_pick(trained_cnn, digits, tmp_path):
    named = export_named(trained_cnn, digits.input_shape, tmp_path / "named.onnx")
    quantized = quantize.convert(trained_cnn, named, QuantSpec("int8-static"), digits, tmp_path / "q",
                                 Timing(batch=8))
    choice = quantized.report.layout_choice
    assert [t.layout for t in choice.trials] == ["plain", "pad-channels", "float-first"]
    assert all(t.latency_ms > 0 and t.float_latency_ms > 0 for t in choice.trials)
    assert layouts.pick(choice.trials)[0].layout == choice.layout
    assert layouts.disabled_optimizers(quantized.onnx) == choice.disabled_optimizers
    assert quantized.report.layout == "auto"
    calibrated = sorted(p.parent.name for p in (tmp_path / "q").rglob("calibration.json"))
    assert calibrated == ["pad-channels", "plain"]  # float-first quantizes plain's graph: its calibration reused


def test_layouts_leave_other_recipes_hashes_and_old_rows_alone():
    # hashes as main computed them before layouts existed
    assert Recipe(quant=QuantSpec("fp16")).hash == "0180acd05ee53370"
    assert Recipe().hash == "0209bbc781c5f015"
    old_prune = PruneSpec("channel-l2", 0.5, finetune_epochs=10, kd=False, patience=0)  # the default before plateaus
    assert Recipe(quant=QuantSpec("int8-dynamic"), prune=old_prune).hash == "cc63735ee1056b64"
    auto = Recipe(quant=QuantSpec("int8-static"))
    assert auto.to_dict()["quant"]["layout"] == "auto"
    old = {k: v for k, v in auto.to_dict()["quant"].items() if k != "layout"}
    assert QuantSpec.from_dict(old).layout == "plain"  # stored before layouts: converted plain
    assert Recipe.from_dict(auto.to_dict()) == auto
    assert QuantSpec("int8-dynamic", layout="float-first").layout == "auto"  # unused: normalised away


def test_cli_refuses_an_unknown_layout(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--quant", "int8-static", "--quant-layout", "sideways"])
    assert exit_.value.code == 2
    assert "sideways" in capsys.readouterr().err
