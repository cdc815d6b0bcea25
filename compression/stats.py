"""Whether a difference is real: the 95 % interval of an accuracy measured on n test images (Wilson), and
McNemar's exact test of two models scored on the same images (only the images they disagree on count).
scipy's binomial test computes both (imported when first used: a Result carries no scipy)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from compression.result import Result

CONFIDENCE = 0.95
SIGNIFICANCE = 1 - CONFIDENCE


@dataclass(frozen=True)
class Interval:
    """A 95 % confidence interval of a proportion (accuracy)."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def accuracy_interval(correct: int, total: int) -> Interval:
    """The Wilson score interval of `correct` right answers out of `total` test images."""
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"an accuracy needs 0 <= correct <= total and total >= 1, got {correct} of {total}")
    from scipy.stats import binomtest

    ci = binomtest(correct, total).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return Interval(float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Paired:
    """Two models scored on the same test images: how many only the first got right, how many only the
    second, and McNemar's exact p-value that they are equally accurate."""

    only_first: int
    only_second: int
    p_value: float

    @property
    def within_noise(self) -> bool:
        """Whether the difference is within noise (p >= 0.05: not significant at the 95 % level)."""
        return self.p_value >= SIGNIFICANCE


def mcnemar(first_correct: np.ndarray, second_correct: np.ndarray) -> Paired:
    """McNemar's exact test on paired right/wrong answers of two models on the same images: under equal
    accuracy each discordant image is a fair coin, so the p-value is a two-sided binomial test of one
    model's discordant wins out of all discordant images (1 when they never disagree)."""
    first, second = np.asarray(first_correct, bool), np.asarray(second_correct, bool)
    if first.shape != second.shape:
        raise ValueError(f"paired answers need the same images, got {first.shape} and {second.shape}")
    only_first, only_second = int((first & ~second).sum()), int((second & ~first).sum())
    discordant = only_first + only_second
    from scipy.stats import binomtest

    p_value = 1.0 if discordant == 0 else float(binomtest(only_first, discordant, 0.5).pvalue)
    return Paired(only_first, only_second, p_value)


MIN_TEST_IMAGES = 100  # below this, one image moves accuracy by more than a point


def sanity_warnings(result: "Result") -> list[str]:
    """What makes a result's figures unsafe to read at face value: accuracy at or below chance (1 / classes, the
    classes read off its output layer), a KD student at or below chance, a test split under MIN_TEST_IMAGES."""
    warnings = []
    classes = result.layers[-1].shape[0] if result.layers else None
    if classes and classes > 1:
        chance = 1 / classes
        if result.accuracy <= chance:
            warnings.append(f"Test accuracy {result.accuracy:.1%} is at or below chance ({chance:.1%} for {classes} "
                            "classes): this model has not learned the task.")
        if result.distill is not None and result.distill.student_accuracy <= chance:
            warnings.append(f"The KD student's accuracy {result.distill.student_accuracy:.1%} is at or below chance "
                            f"({chance:.1%}).")
    if result.test_images is not None and result.test_images < MIN_TEST_IMAGES:
        warnings.append(f"The test split has only {result.test_images} images: one image moves accuracy by "
                        f"{100 / result.test_images:.1f} points, so small differences are noise.")
    return warnings
