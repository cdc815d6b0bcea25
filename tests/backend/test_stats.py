"""Significance on hand-computed cases: the Wilson interval of an accuracy, McNemar's exact test, the speed-up
interval and the within-noise rule."""

import numpy as np
import pytest

from compression.stats import (RATIO_FLOOR, Interval, accuracy_interval, accuracy_noise, mcnemar, ratio_interval,
                               sanity_warnings, speedup_noise)


def test_wilson_interval_matches_the_formula():
    # 350 of 360 (digits' test split): p = 0.97222, z = 1.95996;
    # centre (p + z²/2n) / (1 + z²/n) = 0.967236, half-width z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n) = 0.017606
    interval = accuracy_interval(350, 360)
    assert interval.low == pytest.approx(0.949630, abs=2e-6)
    assert interval.high == pytest.approx(0.984843, abs=2e-6)
    assert 350 / 360 in interval and 0.99 not in interval
    perfect = accuracy_interval(360, 360)  # Wilson stays inside [0, 1] where the normal interval would not
    assert perfect.high == pytest.approx(1.0) and perfect.low == pytest.approx(360 / (360 + 1.95996 ** 2), abs=1e-5)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        accuracy_interval(5, 4)
    with pytest.raises(ValueError):
        accuracy_interval(0, 0)


def _answers(both: int, only_first: int, only_second: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    first = [True] * both + [True] * only_first + [False] * only_second + [False] * neither
    second = [True] * both + [False] * only_first + [True] * only_second + [False] * neither
    return np.array(first), np.array(second)


def test_mcnemar_exact_counts_only_the_images_the_models_disagree_on():
    # 1 vs 8 discordant: p = 2 · (C(9,0) + C(9,1)) / 2⁹ = 20 / 512
    paired = mcnemar(*_answers(340, 1, 8, 11))
    assert (paired.only_first, paired.only_second) == (1, 8)
    assert paired.p_value == pytest.approx(20 / 512)
    assert not paired.within_noise
    # 0 vs 5: p = 2 / 2⁵ = 0.0625, not significant although one model never wins
    assert mcnemar(*_answers(340, 0, 5, 15)).p_value == pytest.approx(0.0625)
    assert mcnemar(*_answers(340, 0, 5, 15)).within_noise
    # equal discordant counts, or none: no evidence of a difference
    assert mcnemar(*_answers(340, 3, 3, 14)).p_value == pytest.approx(1.0)
    assert mcnemar(*_answers(360, 0, 0, 0)).p_value == 1.0


def test_mcnemar_refuses_unpaired_answers():
    with pytest.raises(ValueError):
        mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_sanity_warnings_name_chance_accuracy_and_a_small_test_split():
    from compression.result import LayerSparsity, Result

    def result(accuracy: float, test_images: int | None) -> Result:
        return Result(recipe={}, recipe_hash="h", dataset="d", model="m", accuracy=accuracy, accuracy_source="onnxruntime",
                      baseline_accuracy=accuracy, params_total=1, params_nonzero=1, sparsity=0.0, size_bytes=1,
                      size_gzip_bytes=1, flops=1, latency_ms=None, latency_ms_single=None, latency_measured=False,
                      speedup_vs_baseline=None, size_ratio_vs_baseline=1.0, stage_seconds={}, created_at="",
                      baseline_latency_ms=None, layers=[LayerSparsity("fc", [10, 64], 640, 640)],
                      test_images=test_images)

    assert sanity_warnings(result(0.97, 360)) == []
    [chance] = sanity_warnings(result(0.10, 360))  # 10 classes, read off the output layer
    assert "at or below chance (10.0% for 10 classes)" in chance
    [small] = sanity_warnings(result(0.95, 90))
    assert "only 90 images" in small and "1.1 points" in small
    assert sanity_warnings(result(0.95, None)) == []  # measured before the size was recorded: nothing to say


def test_ratio_interval_is_the_order_statistic_interval_of_the_median_ratio():
    # 10 rounds, per-round ratios 0.5, 0.6, ..., 1.4: P(Bin(10, ½) <= 1) = 11/1024 < 0.025 <= P(<= 2) = 56/1024,
    # so the interval runs from the 2nd to the 9th smallest ratio (coverage 1 − 2·11/1024 = 97.9 %)
    ratios = np.arange(5, 15) / 10
    interval = ratio_interval(ratios * 4.0, np.full(10, 4.0))
    assert interval.low == pytest.approx(0.6) and interval.high == pytest.approx(1.3)
    # rounds that agree to the microsecond: the floor keeps ×/÷ 1.05 around the median (2.0)
    tight = ratio_interval(np.full(200, 2.0), np.ones(200))
    assert tight.low == pytest.approx(2.0 / (1 + RATIO_FLOOR)) and tight.high == pytest.approx(2.0 * (1 + RATIO_FLOOR))
    with pytest.raises(ValueError):
        ratio_interval(np.ones(3), np.ones(4))


def test_the_noise_rule_prefers_mcnemar_then_the_wilson_intervals():
    apart, near = accuracy_interval(300, 360), accuracy_interval(350, 360)
    assert accuracy_noise(0.30, apart, near).within and "McNemar" in accuracy_noise(0.30, apart, near).test
    assert not accuracy_noise(0.01, near, near).within  # the paired test wins over overlapping intervals
    assert accuracy_noise(None, accuracy_interval(348, 360), near).within  # 96.7 % vs 97.2 %: they overlap
    unpaired = accuracy_noise(None, apart, near)
    assert not unpaired.within and "Wilson" in unpaired.test
    assert accuracy_noise(None, None, near) is None  # the test split's size not recorded: nothing to say
    assert speedup_noise(Interval(0.98, 1.03)).within and not speedup_noise(Interval(1.2, 1.4)).within
    assert speedup_noise(None) is None
    assert speedup_noise(None, 1.04).within and not speedup_noise(None, 1.06).within  # no rounds: ×/÷ 1.05
