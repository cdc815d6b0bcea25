"""Pruning removes what it claims, exports, recovers with fine-tuning, and ranks dead neurons lowest."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch_pruning as tp

from compression.errors import CompressionError
from compression.export import export_onnx
from compression.measure import count_flops, layer_sparsity, onnx_logits, prunable_layers
from compression.models import build_model
from compression.prune import (SENSITIVITY_RATIOS, WeightActivationImportance, check_structured_ratio,
                               prune_model, pruning_cuts, sensitivity, step_targets)
from compression.recipe import PruneSpec
from compression.train import evaluate, predict


def zeros_per_layer(model) -> dict[str, float]:
    return {layer.name: 1 - layer.nonzero / layer.weights for layer in layer_sparsity(model)}


def test_l1_unstructured_zeroes_the_ratio_of_every_layer(trained_cnn, digits):
    prune_model(trained_cnn, PruneSpec("l1-unstructured", 0.6, finetune_epochs=1), digits, seed=0)
    for name, fraction in zeros_per_layer(trained_cnn).items():
        assert fraction == pytest.approx(0.6, abs=0.01), name
    assert not any(hasattr(m, "weight_orig") for _, m in prunable_layers(trained_cnn)), "masks must be folded"


def test_global_unstructured_uses_one_threshold_across_layers(trained_cnn, digits):
    prune_model(trained_cnn, PruneSpec("global-unstructured", 0.8, finetune_epochs=0), digits, seed=0)
    layers = layer_sparsity(trained_cnn)
    total = sum(layer.weights for layer in layers)
    zeros = sum(layer.weights - layer.nonzero for layer in layers)
    assert zeros == round(0.8 * total)
    fractions = sorted(zeros_per_layer(trained_cnn).values())
    assert fractions[-1] - fractions[0] > 0.1, "a global threshold prunes layers unevenly"


def test_iterative_schedule_reaches_the_target_ratio(trained_cnn, digits):
    assert step_targets(0.6, 3) == pytest.approx([0.2, 0.4, 0.6])
    prune_model(trained_cnn, PruneSpec("l1-unstructured", 0.6, steps=3, finetune_epochs=1), digits, seed=0)
    for fraction in zeros_per_layer(trained_cnn).values():
        assert fraction == pytest.approx(0.6, abs=0.01)


@pytest.mark.parametrize("method", ["channel-l1", "channel-l2", "activation"])
def test_structured_pruning_removes_channels_and_the_onnx_agrees(method, trained_cnn, digits, tmp_path):
    flops_before = count_flops(trained_cnn, digits.input_shape)
    prune_model(trained_cnn, PruneSpec(method, 0.5, finetune_epochs=1), digits, seed=0)
    shapes = {layer.name: layer.shape for layer in layer_sparsity(trained_cnn)}
    assert shapes == {"features.0": [16, 1, 3, 3], "features.3": [32, 16, 3, 3],
                      "classifier.1": [64, 128], "classifier.3": [10, 64]}
    assert count_flops(trained_cnn, digits.input_shape) < 0.35 * flops_before
    path = export_onnx(trained_cnn, digits.input_shape, tmp_path / "pruned.onnx")
    x = digits.test.x[:100]
    np.testing.assert_allclose(onnx_logits(path, x), predict(trained_cnn, x).numpy(), rtol=1e-4, atol=1e-4)


def test_round_to_keeps_channel_counts_on_a_multiple(trained_cnn, digits):
    prune_model(trained_cnn, PruneSpec("channel-l2", 0.2, finetune_epochs=0, round_to=16), digits, seed=0)
    kept = [layer.shape[0] for layer in layer_sparsity(trained_cnn)]
    assert kept == [16, 48, 96, 10]  # int(32·0.8)=25 → 16, int(64·0.8)=51 → 48, int(128·0.8)=102 → 96


def test_fine_tuning_recovers_accuracy(trained_cnn, digits):
    untuned = prune_model(copy.deepcopy(trained_cnn), PruneSpec("channel-l2", 0.8, finetune_epochs=0), digits, 0)
    fixed = PruneSpec("channel-l2", 0.8, finetune_epochs=4, kd=False, patience=0)  # 4 one-cycle epochs on labels
    tuned = prune_model(trained_cnn, fixed, digits, seed=0)
    assert evaluate(tuned, digits.val) > evaluate(untuned, digits.val) + 0.1
    assert evaluate(tuned, digits.val) > 0.9


def test_activation_importance_ranks_a_dead_neuron_lowest(trained_cnn, digits):
    """A first-layer filter of median weight norm, whose bias keeps it below zero, never fires: weight
    magnitude alone ranks it mid-pack; the activation term (default λ = 0.5) ranks it lowest."""
    conv = trained_cnn.features[0]
    graph = tp.DependencyGraph().build_dependency(trained_cnn, digits.train.x[:1])
    group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
    magnitude = tp.importance.MagnitudeImportance(p=2)(group)
    dead = int(magnitude.argsort()[conv.out_channels // 2])
    with torch.no_grad():
        conv.bias[dead] = -1e4
    importance = WeightActivationImportance(lam=0.5)
    importance.calibrate(trained_cnn, digits.train.x[:256])
    assert importance.activation(group)[dead] == 0
    assert int(importance(group).argmin()) == dead
    assert int(magnitude.argmin()) != dead


def test_structured_ratio_that_would_empty_a_layer_is_refused(digits):
    mobilenet = build_model("mobilenet", digits.input_shape, digits.num_classes)  # its stem has 16 channels
    check_structured_ratio(mobilenet, 0.9)
    with pytest.raises(CompressionError, match="would empty layer 'features.0'"):
        check_structured_ratio(mobilenet, 0.95)
    with pytest.raises(CompressionError, match="rounded to a multiple of 16 would empty layer 'features.0'"):
        check_structured_ratio(mobilenet, 0.1, round_to=16)


@pytest.mark.parametrize("spec, message", [
    (PruneSpec("channel-l2", 0.96), "within 0 … 0.95"),
    (PruneSpec("channel-l2", -0.1), "within 0 … 0.95"),
    (PruneSpec("magnitude", 0.5), "unknown prune method"),
    (PruneSpec("activation", 0.5, lam=1.5), "lambda must be within 0 … 1"),
    (PruneSpec("activation", 0.5, steps=0), "steps must be at least 1"),
    (PruneSpec("global-unstructured", 0.5, round_to=8), "applies to channel pruning only"),
    (PruneSpec("channel-l1", 0.5, round_to=-1), "round-to must be auto or at least 1"),
    (PruneSpec("l1-unstructured", 0.5, round_to="auto"), "applies to channel pruning only"),
])
def test_bad_prune_specs_are_one_line_errors(spec, message):
    with pytest.raises(CompressionError, match=message):
        spec.validate()


@pytest.mark.parametrize("method", ["l1-unstructured", "channel-l2"])
def test_sensitivity_table_covers_every_layer_and_ratio(method, trained_cnn, digits):
    table = sensitivity(trained_cnn, digits, method, seed=0)
    names = [row.name for row in table]
    expected = ["features.0", "features.3", "classifier.1"] + ([] if method == "channel-l2" else ["classifier.3"])
    assert names == expected
    base = evaluate(trained_cnn, digits.val)
    for row in table:
        assert len(row.accuracy) == len(SENSITIVITY_RATIOS)
        assert row.accuracy[0] >= base - 0.05, "pruning 10 % of one layer barely hurts"
    assert min(row.accuracy[-1] for row in table) < base - 0.1, "pruning 90 % of some layer hurts"


def test_pruning_cuts_follow_the_ratio():
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10)
    local = pruning_cuts(model, "l1-unstructured", 0.5)
    assert [c.removed for c in local] == [round(0.5 * c.total) for c in local]
    assert all(sum(c.histogram.counts) == c.total for c in local)
    whole = pruning_cuts(model, "global-unstructured", 0.5)
    assert len({c.threshold for c in whole}) == 1  # one cut across layers
    assert abs(sum(c.removed for c in whole) - 0.5 * sum(c.total for c in whole)) <= 1
    channels = pruning_cuts(model, "channel-l2", 0.5)
    assert channels[-1].removed == 0  # the classifier keeps its classes
    assert [c.total for c in channels] == [32, 64, 128, 10] and channels[0].removed == 16


def test_kd_fine_tuning_learns_from_the_teacher_as_it_was_before_pruning(trained_cnn, digits):
    """With kd, fine-tuning minimises the KD loss against the teacher's logits, taken before any pruning: a
    model pruned in place can teach itself, exactly as an untouched copy of it would; no teacher named is the
    model itself."""
    spec = PruneSpec("channel-l2", 0.5, finetune_epochs=1, kd=True, patience=0)
    by_default = prune_model(copy.deepcopy(trained_cnn), spec, digits, seed=0)
    by_labels = prune_model(copy.deepcopy(trained_cnn), replace(spec, kd=False), digits, seed=0)
    by_copy = prune_model(copy.deepcopy(trained_cnn), spec, digits, seed=0, teacher=copy.deepcopy(trained_cnn))
    by_itself = prune_model(trained_cnn, spec, digits, seed=0, teacher=trained_cnn)
    assert evaluate(by_itself, digits.val) > 0.8
    for a, b, c, d in zip(by_itself.parameters(), by_copy.parameters(), by_labels.parameters(),
                          by_default.parameters()):
        assert torch.equal(a, b) and torch.equal(a, d) and a.shape == c.shape
    assert not torch.equal(by_itself.classifier[1].weight, by_labels.classifier[1].weight)
