"""Per-class effects: the deployed file's test predictions are stored with every runnable result, and per-class
accuracy, the confusion matrix and the image-by-image comparison of two results are computed from them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compression import classes, pipeline
from compression.errors import CompressionError
from compression.recipe import QuantSpec, Recipe
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]
BASE = Recipe(epochs=2)
INT8 = Recipe(epochs=2, quant=QuantSpec("int8-static", calib_samples=64, layout="plain"))


def test_view_counts_each_class_and_the_confusion_matrix():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 1, 0])
    shown = classes.view(predictions, labels, ["a", "b", "c"])
    assert [(c.name, c.correct, c.total) for c in shown.classes] == [("a", 2, 3), ("b", 2, 2), ("c", 0, 1)]
    assert shown.confusion == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert shown.classes[1].interval.high == pytest.approx(1.0) and shown.classes[2].interval.low == 0.0


def test_compare_lists_flipped_images_and_most_hurt_class_first():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    before = labels.copy()
    after = np.array([0, 0, 0, 0, 1, 0, 0, 1])  # class 1 loses two images
    comparison = classes.compare(before, after, labels, ["zero", "one"])
    assert comparison.flipped == [5, 6] and comparison.flipped_to == [0, 0]
    assert [c.before.name for c in comparison.classes] == ["one", "zero"]
    assert comparison.classes[0].delta == pytest.approx(-0.5)
    assert (comparison.paired.only_first, comparison.paired.only_second) == (2, 0)
    assert comparison.paired.within_noise  # two images: p = 0.5
    with pytest.raises(CompressionError, match="same test images"):
        classes.compare(before, after[:-1], labels, ["zero", "one"])


@pytest.mark.slow
def test_stored_predictions_give_per_class_accuracy_and_a_comparison(home, digits):
    store = Store()
    base, int8 = pipeline.run(BASE, store), pipeline.run(INT8, store)
    labels = digits.test.y.numpy()
    for result in (base, int8):
        predictions = classes.stored_predictions(store, result)
        assert predictions.shape == labels.shape
        assert (predictions == labels).mean() == pytest.approx(result.accuracy)  # the figure shown is theirs
    shown = pipeline.class_view(store, int8)
    assert sum(c.total for c in shown.classes) == len(labels)
    assert sum(c.correct for c in shown.classes) == round(int8.accuracy * len(labels))
    comparison = pipeline.compare_results(store, base, int8)
    right = classes.stored_predictions(store, base) == labels
    wrong = classes.stored_predictions(store, int8) != labels
    assert comparison.flipped == np.flatnonzero(right & wrong).tolist()
    assert comparison.paired.only_first == len(comparison.flipped)
    other_split = pipeline.run(Recipe(epochs=1, seed=1), store)
    with pytest.raises(CompressionError, match="different test splits"):
        pipeline.compare_results(store, base, other_split)
    simulated = pipeline.run(Recipe(epochs=2, quant=QuantSpec("fake", bits=4)), store)
    with pytest.raises(CompressionError, match="simulated format"):
        classes.stored_predictions(store, simulated)

    done = subprocess.run([sys.executable, "-m", "compression", "classes", int8.recipe_hash[:8], "--json"], cwd=ROOT,
                          text=True, capture_output=True, timeout=300, env={**os.environ, "COMPRESSION_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["reference"] == base.recipe_hash and report["flipped"] == comparison.flipped
    assert len(report["confusion"]) == 10 and "McNemar exact p" in done.stderr
    refused = subprocess.run([sys.executable, "-m", "compression", "classes", simulated.recipe_hash], cwd=ROOT,
                             text=True, capture_output=True, timeout=300,
                             env={**os.environ, "COMPRESSION_HOME": str(home)})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
