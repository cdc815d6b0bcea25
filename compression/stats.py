"""Whether a difference is real: the 95 % interval of an accuracy measured on n test images (Wilson),
McNemar's exact test of two models scored on the same images (only the images they disagree on count), the
95 % interval of a speed-up from the rounds of an interleaved timing, and the one rule that says whether a
delta is within noise (`Noise`). scipy computes the tests (imported when first used: a Result carries no
scipy)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from compression.result import Result

CONFIDENCE = 0.95
SIGNIFICANCE = 1 - CONFIDENCE


@dataclass(frozen=True)
class Interval:
    """A 95 % confidence interval: of a proportion (an accuracy), or of a speed-up."""

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


# A speed-up interval is never narrower than ×/÷ 1.05 around its median (ratio_interval): one file timed against
# itself, interleaved, on a shared 2-core host under load gave median ratios of 0.95-0.99 (the place in the round
# matters), and two sessions of one file differ by up to 0.9 % from one timing to the next (bench/results/clock.md).
RATIO_FLOOR = 0.05


def ratio_interval(baseline_ms: np.ndarray, model_ms: np.ndarray) -> Interval:
    """The 95 % interval of a model's speed-up over a baseline timed interleaved with it (`baseline_ms[i]`,
    `model_ms[i]`: their times in round i, run back to back, so load that slows both cancels in the ratio).
    It is the distribution-free order-statistic interval of the median of the per-round ratios (ranks j and
    n + 1 − j, j the binomial(n, ½) 2.5 % quantile), widened to at least ×/÷ (1 + RATIO_FLOOR) around that
    median: what the rounds of a single timing cannot see (see RATIO_FLOOR)."""
    baseline, model = np.asarray(baseline_ms, float), np.asarray(model_ms, float)
    if baseline.shape != model.shape or baseline.size == 0 or (model <= 0).any():
        raise ValueError(f"paired rounds need as many positive times each, got {baseline.shape} and {model.shape}")
    from scipy.stats import binom

    ratios = np.sort(baseline / model)
    n = len(ratios)
    rank = max(int(binom.ppf(SIGNIFICANCE / 2, n, 0.5)), 1)  # 1-based; below 6 rounds: the full range
    median = float(np.median(ratios))
    return Interval(min(float(ratios[rank - 1]), median / (1 + RATIO_FLOOR)),
                    max(float(ratios[n - rank]), median * (1 + RATIO_FLOOR)))


@dataclass(frozen=True)
class Noise:
    """Whether a delta is within noise, and the test that says so in words (for a tooltip or a caption)."""

    within: bool
    test: str


WITHIN_NOISE = "within noise"


def noted(delta: str, noise: Noise | None) -> str:
    """A delta in words, with ', within noise' after it where the rule says so ('+1%, within noise'): one wording
    for the app, the report and the CLI."""
    return f"{delta}, {WITHIN_NOISE}" if noise is not None and noise.within else delta


def accuracy_noise(p_value: float | None, interval: Interval | None, reference: Interval | None) -> Noise | None:
    """The rule for an accuracy delta between two models scored on the same test images: McNemar's exact test
    on their paired predictions where its p-value is known (within noise: p >= 0.05), else whether their 95 %
    Wilson intervals overlap; None where neither is known (the test split's size not recorded)."""
    if p_value is not None:
        return Noise(p_value >= SIGNIFICANCE, f"McNemar's exact test on paired predictions, p = {p_value:.2g}")
    if interval is None or reference is None:
        return None
    overlap = interval.low <= reference.high and reference.low <= interval.high
    return Noise(overlap, f"95 % Wilson intervals {'overlap' if overlap else 'are apart'} (no paired predictions)")


def speedup_noise(interval: Interval | None, speedup: float | None = None) -> Noise | None:
    """The rule for a speed-up (or latency ratio): within noise when its 95 % interval contains 1. Without one (a
    result timed before its rounds were kept) the narrowest interval ratio_interval gives, ×/÷ (1 + RATIO_FLOOR)
    around `speedup`, stands in; None where neither is known. Size and FLOPs are exact: no rule applies to them."""
    if interval is not None:
        return Noise(1.0 in interval, f"speed-up 95 % interval {interval.low:.2f}–{interval.high:.2f}× from the "
                                      "interleaved rounds")
    if speedup is None or speedup <= 0:
        return None
    within = 1.0 in Interval(speedup / (1 + RATIO_FLOOR), speedup * (1 + RATIO_FLOOR))
    return Noise(within, f"speed-up {speedup:.2f}× timed before its rounds were kept: the narrowest interval, "
                         f"×/÷ {1 + RATIO_FLOOR:g}, {'contains' if within else 'excludes'} 1")


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
