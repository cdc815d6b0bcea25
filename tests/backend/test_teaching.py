"""The teaching views' numbers, computed by the backend on the digits CNN trained for real: a layer's weights
through the quantizer (x → q → x̂), the clipping range the grid view draws at every bit width, zero weights
counted alike after PTQ and QAT, the pruning's accuracy before and after fine-tuning, and the distillation's
curves and soft targets."""

import copy
from dataclasses import replace

import pytest
import torch

from compression import data, distill, pipeline, prune, quantize
from compression.measure import prunable_layers
from compression.prune import prune_model
from compression.quantize import fake_quantized, quantize_weights
from compression.recipe import DistillSpec, Format, PruneSpec, QuantSpec, Recipe
from compression.result import DistillReport, PruneRound, StageRecord, from_json
from compression.store import Store
from compression.train import evaluate, predict


@pytest.mark.parametrize("fmt, channel", [(Format(4, "asymmetric"), None), (Format(3, "symmetric", "per-channel"), 2),
                                          (Format(8, "asymmetric", "per-channel"), 0)])
def test_weight_mapping_rows_round_trip_through_the_quantizer(trained_cnn, fmt, channel):
    mapping = quantize.weight_mapping(trained_cnn, "classifier.1", fmt, channel, rows=6)
    weight = trained_cnn.get_submodule("classifier.1").weight.detach()
    x_hat, params = quantize_weights(weight, fmt.bits, fmt.scheme, fmt.granularity)
    values = weight[channel] if channel is not None else weight
    assert len(mapping.rows) == 6 and [r.x for r in mapping.rows] == sorted(r.x for r in mapping.rows)
    assert mapping.rows[0].x == float(values.min()) and mapping.rows[-1].x == float(values.max())
    for row in mapping.rows:
        p = params[row.position[0]] if fmt.granularity == "per-channel" else params[0]
        assert row.x == float(weight[row.position]) and row.x_hat == float(x_hat[row.position])
        assert p.qmin <= row.q <= p.qmax
        assert row.q == min(max(round(row.x / p.scale) + p.zero_point, p.qmin), p.qmax)  # the article's mapping
        assert row.x_hat == pytest.approx((row.q - p.zero_point) * p.scale, abs=1e-7)
        assert abs(row.error) <= p.scale / 2 + 1e-7  # min / max ranging: rounding error only
    assert sum(mapping.original.counts) == sum(mapping.dequantized.counts) == values.numel()
    assert mapping.original.edges == mapping.dequantized.edges
    levels = sum(c > 0 for c in mapping.dequantized.counts)
    assert levels <= 2 ** fmt.bits
    if fmt.bits <= 4:  # a coarse grid: the values collapse onto its few levels
        assert levels < sum(c > 0 for c in mapping.original.counts)


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_the_drawn_clip_range_is_what_the_quantizer_does(trained_cnn, bits, scheme):
    for name, layer in prunable_layers(trained_cnn):
        view = quantize.grid_view(trained_cnn, name, Format(bits, scheme))
        values = layer.weight.detach().flatten()
        p = view.params
        x_hat = quantize.fake_quantize(values, p.scale, p.zero_point, p.qmin, p.qmax)
        assert float(x_hat.min()) >= view.clip_min - 1e-7 and float(x_hat.max()) <= view.clip_max + 1e-7
        beyond = (values < view.clip_min - 1e-6 * p.scale) | (values > view.clip_max + 1e-6 * p.scale)
        assert view.outside == int(beyond.sum())
        ends = torch.where(values[beyond] < 0, view.clip_min, view.clip_max)
        assert torch.allclose(x_hat[beyond], ends.to(x_hat.dtype), atol=1e-7)  # each lands on its end level
        assert view.outside_by <= p.scale / 2 + 1e-7  # by at most half a step: rounding, not clamping
        if scheme == "symmetric":
            assert view.outside == 0


def test_zero_weights_are_counted_alike_after_ptq_and_qat(trained_cnn, digits):
    spec = QuantSpec("fake", bits=2, scheme="asymmetric", granularity="per-tensor")
    snapped = copy.deepcopy(trained_cnn)  # weights on the grid, as QAT leaves them
    with torch.no_grad(), fake_quantized(snapped, quantize.weight_format(spec), {}):
        pass
    ptq, qat = (quantize.stored_counts(m, spec, digits.input_shape) for m in (trained_cnn, snapped))
    assert ptq.params_nonzero == qat.params_nonzero
    assert [layer.nonzero for layer in ptq.layers] == [layer.nonzero for layer in qat.layers]
    float_counts = quantize.stored_counts(trained_cnn, None, digits.input_shape)
    assert ptq.params_nonzero < float_counts.params_nonzero  # at 2 bits, small weights round to 0
    assert quantize.stored_counts(trained_cnn, QuantSpec("fp16"), digits.input_shape) == float_counts


def test_the_teaching_layer_has_the_most_weights_a_channel(trained_cnn):
    layers = quantize.weight_report(trained_cnn, 8, "symmetric", "per-channel")
    name = quantize.teaching_layer(layers)
    per_channel = {layer.name: layer.shape for layer in layers}
    assert torch.Size(per_channel[name][1:]).numel() >= 100 and name != layers[0].name


def test_each_round_records_accuracy_right_after_the_cut_and_after_fine_tuning(trained_cnn, digits):
    before = evaluate(trained_cnn, digits.val)
    rounds = []
    pruned = prune_model(trained_cnn, PruneSpec("channel-l2", 0.8, steps=2, finetune_epochs=2), digits, seed=0,
                         rounds=rounds)
    assert [r.removed for r in rounds] == pytest.approx([0.4, 0.8])
    assert rounds[0].before_cut == before and rounds[1].before_cut == rounds[0].after_finetune
    assert rounds[-1].after_finetune == evaluate(pruned, digits.val)
    assert rounds[-1].after_cut < rounds[-1].before_cut - 0.05  # 80 % of the channels gone: the cut costs
    assert rounds[-1].after_finetune > rounds[-1].after_cut + 0.05  # and fine-tuning gives it back
    assert all(r.split == "validation" and r.runtime == "torch" for r in rounds)


@pytest.mark.parametrize("method, layer", [("channel-l2", "features.3"), ("l1-unstructured", "features.0"),
                                           ("global-unstructured", "classifier.1")])
def test_the_filter_map_marks_the_units_the_cut_removes(trained_cnn, method, layer):
    fmap = prune.filter_map(trained_cnn, method, 0.5, layer)
    cut = next(c for c in prune.pruning_cuts(trained_cnn, method, 0.5) if c.name == layer)
    assert fmap.removed_count == cut.removed > 0
    scores = [s for row in fmap.scores for s in row if s is not None]
    gone = [s for row_s, row_r in zip(fmap.scores, fmap.removed) for s, r in zip(row_s, row_r) if r]
    kept = [s for row_s, row_r in zip(fmap.scores, fmap.removed) for s, r in zip(row_s, row_r)
            if not r and s is not None]
    assert max(gone) <= min(kept) and len(scores) == cut.total  # the lowest scores go, every unit drawn once
    weight = trained_cnn.get_submodule(layer).weight
    if fmap.unit == "filter":
        assert all(len(row) == prune.FILTERS_A_ROW for row in fmap.scores)
        assert scores == pytest.approx(weight.detach().flatten(1).norm(dim=1).tolist())
    else:
        assert len(fmap.scores) == weight.shape[0]


def test_kd_and_control_curves_are_recorded_and_soft_targets_sum_to_one(trained_cnn, digits):
    spec = DistillSpec(width=0.25, epochs=3, patience=0)  # exactly 3 epochs: one curve point each
    curves = []
    student, _ = distill.student_and_control("cnn", trained_cnn, digits.train, spec, 0, digits.input_shape,
                                             digits.num_classes, curves=curves)
    kd, control = curves
    assert kd.epochs == control.epochs == [1, 2, 3] and kd.split == "train"
    assert all(0 <= a <= 1 for a in kd.accuracy + control.accuracy) and kd.loss != control.loss
    assert control.loss[-1] < control.loss[0] and control.accuracy[-1] > control.accuracy[0]

    images = data.sample_images(digits, "val", classes=10)
    teacher, taught = (distill.soft_targets(m, images.x, 4.0) for m in (trained_cnn, student))
    for soft in (teacher, taught):
        assert torch.allclose(soft.probabilities.sum(1), torch.ones(10)) and torch.allclose(soft.at_one.sum(1),
                                                                                            torch.ones(10))
    predicted = predict(trained_cnn, images.x).argmax(1)
    assert teacher.wrong(images.labels) == (predicted != torch.tensor(images.labels)).tolist()

    mistakes = distill.mistaken_images(trained_cnn, digits, "val", 3)
    assert 0 < len(mistakes.labels) <= 3  # a 12-epoch teacher still errs on some of the 360 validation images
    assert all(distill.soft_targets(trained_cnn, mistakes.x, 1.0).wrong(mistakes.labels))


def test_results_stored_before_rounds_and_curves_still_load():
    old = {"teacher_accuracy": 0.9, "control_accuracy": 0.8, "control_val_accuracy": 0.8, "student": "cnn",
           "width": 0.25, "temperature": 4.0, "alpha": 0.7, "epochs": 2, "student_params": 10,
           "teacher_params": 100, "student_accuracy": 0.85, "kd_gain": 0.05}
    report = from_json(DistillReport, old)
    assert report.student_curve is None and report.control_curve is None
    record = from_json(StageRecord, {"stage": "prune", "accuracy": 0.9, "accuracy_source": "onnxruntime",
                                     "size_bytes": 1, "size_source": "onnx file", "params_nonzero": 1, "flops": 1,
                                     "seconds": 0.1})
    assert record.rounds == []


@pytest.mark.slow
def test_the_pipeline_stores_the_rounds_and_the_curves(tmp_path):
    store = Store(tmp_path)
    base = Recipe(epochs=2)
    pruned = pipeline.run(replace(base, prune=PruneSpec("channel-l2", 0.5, steps=2, finetune_epochs=1)), store)
    [record] = [r for r in pruned.stages if r.stage == "prune"]
    assert len(record.rounds) == 2 and isinstance(record.rounds[0], PruneRound)
    again = store.get_result(pruned.recipe_hash)
    assert again.stages[1].rounds == record.rounds  # through the store's JSON
    chained = pipeline.run(replace(base, prune=PruneSpec("channel-l2", 0.5, steps=2, finetune_epochs=1),
                                   quant=QuantSpec("int8-dynamic")), store)
    assert chained.stages[1].rounds == record.rounds  # the prune stage served from its checkpoint keeps them

    distilled = pipeline.run(replace(base, distill=DistillSpec(width=0.25, epochs=2)), store)
    assert distilled.distill.student_curve.epochs == distilled.distill.control_curve.epochs == [1, 2]
    assert store.get_result(distilled.recipe_hash).distill == distilled.distill
    student = pipeline.stage_model(replace(base, distill=DistillSpec(width=0.25, epochs=2)), "distill", store)
    assert student is not None and sum(p.numel() for p in student.parameters()) == distilled.distill.student_params
