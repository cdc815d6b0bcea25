"""What the pages show, computed by the backend from a notebook's point of view: the affine grid of a trained
layer, the teacher's softened outputs, a data set's sample images, the accuracy-against-bits curve and its
stored points, a workspace's results, and recipes in words."""

import numpy as np
import pytest
import torch

from compression import data, describe, distill, quantize, workspace
from compression.recipe import DistillSpec, Format, PruneSpec, QuantSpec, Recipe
from compression.result import Result
from compression.store import Store


def test_grid_view_maps_a_trained_layer_onto_the_grid(trained_cnn):
    weight = trained_cnn.features[0].weight.detach()
    four = quantize.grid_view(trained_cnn, "features.0", Format(4, "asymmetric"))
    assert four.levels == 16 and len(four.grid) == 16 and four.lo <= 0 <= four.hi
    assert four.grid[0] == pytest.approx(four.clip_min) and four.grid[-1] == pytest.approx(four.clip_max)
    assert four.clip_min <= four.x_min and four.x_max <= four.clip_max + four.params.scale  # min / max: none clip
    assert sum(four.histogram.counts) == weight.numel() and len(four.histogram.counts) == 60
    assert four.params == quantize.affine_params(four.x_min, four.x_max, 4, "asymmetric")

    one = quantize.grid_view(trained_cnn, "features.0", Format(3, "symmetric", "per-channel"), channel=5)
    assert sum(one.histogram.counts) == weight[5].numel() and one.params.zero_point == 0
    assert (one.x_min, one.x_max) == (float(weight[5].min()), float(weight[5].max()))
    assert one.lo == -one.hi and one.levels == 7  # ±(2^(b-1) - 1)
    assert quantize.grid_view(trained_cnn, "features.0", Format(8, "asymmetric")).grid is None  # 256 levels: too dense to draw


def test_soft_targets_spread_as_the_temperature_rises(trained_cnn, digits):
    images = digits.val.x[:5]
    cold, hot = (distill.soft_targets(trained_cnn, images, t) for t in (1.0, 8.0))
    assert torch.allclose(hot.probabilities.sum(1), torch.ones(5))
    assert torch.allclose(hot.at_one, cold.probabilities)  # T = 1 beside every T
    assert hot.dark_knowledge > cold.dark_knowledge == pytest.approx(hot.dark_knowledge_at_one)


def test_sample_images_are_one_a_class_as_a_screen_shows_them(digits):
    samples = data.sample_images(digits, "val", classes=5, index=2)
    assert samples.labels == [0, 1, 2, 3, 4] and samples.names == ["0", "1", "2", "3", "4"]
    assert samples.classes == [str(c) for c in range(10)] and samples.x.shape == (5, 1, 8, 8)
    assert torch.equal(samples.x[3], digits.val.x[torch.nonzero(digits.val.y == 3).flatten()[2]])  # the 3rd '3'
    ink = samples.pixels * 16  # digits store ink as 0 … 16: undoing the normalisation gives it back
    assert samples.pixels.min() >= 0 and samples.pixels.max() <= 1 and np.allclose(ink, ink.round(), atol=1e-4)
    shown = data.screen_image(samples.pixels[0], min_width=80)
    assert shown.shape == (80, 80, 3) and shown.dtype == np.uint8  # 8×8 enlarged by whole pixels


def stored_result(recipe: Recipe, accuracy: float, source: str = "onnxruntime") -> Result:
    """A stored-looking Result of `recipe` (hand-built: the curve's classification reads recipes only)."""
    return Result(recipe=recipe.to_dict(), recipe_hash=recipe.hash, dataset=recipe.dataset, model=recipe.model,
                  accuracy=accuracy, accuracy_source=source, baseline_accuracy=0.97, params_total=10,
                  params_nonzero=10, sparsity=0.0, size_bytes=100, size_gzip_bytes=90, flops=10, latency_ms=None,
                  latency_ms_single=None, latency_measured=False, speedup_vs_baseline=None,
                  size_ratio_vs_baseline=1.0, stage_seconds={}, created_at="2026-01-01T00:00:00+00:00",
                  baseline_latency_ms=None, technique=recipe.technique)


def test_the_bit_width_curve_and_which_stored_results_are_on_it():
    base = Recipe(epochs=3)
    spec = QuantSpec("fake", bits=8, scheme="symmetric", granularity="per-tensor")
    curve = quantize.bit_width_curve(base, spec)
    assert [r.quant.bits for r in curve] == [*quantize.PTQ_BITS] * 2
    assert {r.quant.qat_epochs for r in curve} == {0, quantize.QAT_CURVE_EPOCHS}
    assert all(r.quant.scheme == "symmetric" and r.quant.simulated for r in curve)

    on = [stored_result(curve[3], 0.9, "torch-simulated"), stored_result(curve[9], 0.95, "torch-simulated"),
          stored_result(Recipe(epochs=3, quant=QuantSpec("int8-static")), 0.96),
          stored_result(Recipe(epochs=3, quant=QuantSpec("fp16")), 0.97)]
    off = [stored_result(Recipe(epochs=3, quant=QuantSpec("fake", bits=4)), 0.8, "torch-simulated"),  # other scheme
           stored_result(Recipe(epochs=3, quant=QuantSpec("fp32")), 0.97),  # 32 bits: off the axis
           stored_result(Recipe(epochs=3, prune=PruneSpec("channel-l2", 0.5), quant=QuantSpec("int8-static")), 0.9)]
    points = quantize.bit_width_points([*on, *off], spec)
    assert [(p.series, p.bits) for p in points] == [
        ("PTQ (simulated)", 4), (f"QAT {quantize.QAT_CURVE_EPOCHS} epochs (simulated)", 4),
        ("int8-static (measured)", 8), ("fp16 (measured)", 16)]
    assert [p.simulated for p in points] == [True, True, False, False]


def test_a_workspace_is_its_baselines_results(home):
    store = Store()
    base, other = Recipe(epochs=3), Recipe(epochs=3, seed=1)
    pruned = Recipe(epochs=3, prune=PruneSpec("channel-l2", 0.5))
    for recipe in (base, pruned, other, Recipe(epochs=3, distill=DistillSpec())):
        store.put_result(stored_result(recipe, 0.9), {})
    space = workspace.load(pruned, store)
    assert space.baseline.recipe_hash == base.hash and len(space.results) == 2  # not the other seed's
    assert [r.recipe_hash for r in space.single_stage("prune")] == [pruned.hash]
    assert [r.recipe_hash for r in space.without(pruned.hash)] == [Recipe(epochs=3, distill=DistillSpec()).hash]
    assert set(workspace.measured(store)) == {base.hash, other.hash}


def test_recipes_in_words():
    recipe = Recipe(prune=PruneSpec("activation", 0.5, steps=2, lam=0.3, kd=True), quant=QuantSpec("int8-static"),
                    distill=DistillSpec(width=0.5), order=("prune", "quant", "distill"))
    assert describe.recipe(recipe) == ("prune activation 50% (2 rounds, ≤ 1280 ft epochs with KD, patience 100, λ 0.3) "
                                       "→ quantize int8 static, per-channel, minmax on 256 images → distil into cnn ×0.5 "
                                       "(T 4, α 0.7, ≤ 1280 epochs, patience 100)")
    fixed = Recipe(prune=PruneSpec("l1-unstructured", 0.5, finetune_epochs=10, kd=False, patience=0),
                   distill=DistillSpec(epochs=80, patience=0), quant=QuantSpec("fake", bits=4, qat_epochs=5, qat_patience=0))
    assert describe.recipe(fixed) == ("distil into cnn ×0.25 (T 4, α 0.7, 80 epochs) → prune l1-unstructured 50% (10 ft "
                                      "epochs) → quantize 4-bit simulated, asymmetric, per-channel, QAT 5 epochs")
    assert describe.order(recipe) == "prune → quantize → distil" and describe.order(Recipe()) == "—"
    assert describe.workspace(Recipe(threads=2)) == "digits / cnn · seed 0 · 20 epochs · 2 thread(s), batch 32"
    assert describe.recipe(Recipe()) == "baseline (uncompressed)"
