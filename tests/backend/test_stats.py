"""Significance on hand-computed cases: the Wilson interval of an accuracy and McNemar's exact test."""

import numpy as np
import pytest

from compression.stats import accuracy_interval, mcnemar


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
