"""Which classes a compression hurt: per-class accuracy (with its Wilson interval) and the confusion matrix of a
stored result's deployed file on the test split, and two results scored on the same test images compared image
by image — McNemar's exact test overall and per class, and the images that flipped from right to wrong."""

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix

from compression.errors import CompressionError
from compression.result import Result
from compression.stats import Interval, Paired, accuracy_interval, mcnemar
from compression.store import Store

PREDICTIONS = "predictions.npy"  # the artifact pipeline.run stores beside a runnable result's ONNX file


@dataclass(frozen=True)
class ClassAccuracy:
    """One class's test images: how many the model got right, of how many, and the 95 % interval."""

    name: str
    correct: int
    total: int
    interval: Interval

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


@dataclass(frozen=True)
class ClassView:
    """A model's per-class accuracy and its confusion matrix (rows: true class, columns: predicted)."""

    classes: list[ClassAccuracy]
    confusion: list[list[int]]


@dataclass(frozen=True)
class ClassChange:
    """One class in two models: accuracy before and after, and McNemar on that class's images."""

    before: ClassAccuracy
    after: ClassAccuracy
    paired: Paired

    @property
    def delta(self) -> float:
        return self.after.accuracy - self.before.accuracy


@dataclass(frozen=True)
class Comparison:
    """Two models on the same test images: McNemar overall, every class's change (most hurt first), the
    test-image indices the reference got right and the other got wrong, and the class the other said there."""

    paired: Paired
    classes: list[ClassChange]
    flipped: list[int]
    flipped_to: list[int]


def view(predictions: np.ndarray, labels: np.ndarray, names: list[str]) -> ClassView:
    """Per-class accuracy and the confusion matrix of `predictions` against `labels` (class indices)."""
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(names))))
    classes = [ClassAccuracy(name, int(matrix[i, i]), int(matrix[i].sum()),
                             accuracy_interval(int(matrix[i, i]), int(matrix[i].sum())))
               for i, name in enumerate(names) if matrix[i].sum() > 0]
    return ClassView(classes, matrix.tolist())


def compare(reference: np.ndarray, other: np.ndarray, labels: np.ndarray, names: list[str]) -> Comparison:
    """`other`'s predictions against `reference`'s on the same test images (`labels`)."""
    if reference.shape != other.shape or reference.shape != labels.shape:
        raise CompressionError("the two results were not scored on the same test images")
    right_before, right_after = reference == labels, other == labels
    before, after = view(reference, labels, names), view(other, labels, names)
    changes = [ClassChange(b, a, mcnemar(right_before[labels == names.index(b.name)],
                                         right_after[labels == names.index(b.name)]))
               for b, a in zip(before.classes, after.classes)]
    flipped = np.flatnonzero(right_before & ~right_after)
    return Comparison(mcnemar(right_before, right_after), sorted(changes, key=lambda c: c.delta), flipped.tolist(),
                      other[flipped].tolist())


def stored_predictions(store: Store, result: Result) -> np.ndarray:
    """The class the result's deployed file predicted for each test image (one line where none is stored: a
    simulated format, or a result measured before predictions were kept)."""
    if PREDICTIONS not in result.artifacts:
        why = "a simulated format has no deployed file" if not result.latency_measured else \
            "it was measured before test predictions were stored"
        raise CompressionError(f"no test predictions are stored for {result.recipe_hash}: {why}")
    return np.load(store.path(result, PREDICTIONS), allow_pickle=False)
