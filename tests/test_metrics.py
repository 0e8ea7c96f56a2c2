"""Tests for sas_trl.metrics against hand-computed values."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from sas_trl.metrics import aes, average, mean_pass_at_k, pass_at_k, summarize


def brute_force_pass_at_k(scores: list[int], k: int) -> float:
    """Fraction of k-subsets holding a correct sample: the quantity the estimator is unbiased for."""
    subsets = list(combinations(scores, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_hand_values():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2) / C(5,2)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(16, 1, 4) == pytest.approx(4 / 16)  # one correct of 16: a 4-subset holds it w.p. 4/16
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 3, 2) == 1.0  # only one wrong sample: every pair holds a correct one
    assert pass_at_k(16, 1, 16) == 1.0


@pytest.mark.parametrize("scores", [[1, 0, 0, 1, 0], [0, 0, 0, 0, 1, 1, 0, 1], [1, 1, 0]])
def test_pass_at_k_matches_enumeration(scores):
    for k in range(1, len(scores) + 1):
        assert pass_at_k(len(scores), sum(scores), k) == pytest.approx(brute_force_pass_at_k(scores, k))


def test_pass_at_k_large_n_is_stable():
    value = pass_at_k(1000, 10, 100)
    assert value == pytest.approx(1 - math.comb(990, 100) / math.comb(1000, 100))


def test_pass_at_k_rejects_bad_arguments():
    for n, c, k in [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_mean_pass_at_k_averages_problems():
    assert mean_pass_at_k([[1, 0, 0, 0], [1, 1, 0, 0]], 2) == pytest.approx((0.5 + (1 - 1 / 6)) / 2)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)


def test_summarize_hand_values():
    result = summarize(
        correct=[[1, 0], [1, 1], [0, 0]],
        tokens=[[10, 20], [30, 50], [4, 8]],
        truncated=[[False, True], [False, False], [True, True]],
        ks=[1, 2],
    )
    assert result["problems"] == 3 and result["samples"] == 6
    assert result["pass@1"] == pytest.approx(3 / 6)
    assert result["pass@2"] == pytest.approx((1 + 1 + 0) / 3)
    assert "pass@1" in result and "pass@0" not in result
    assert result["mean_tokens"] == pytest.approx((15 + 40 + 6) / 3)  # mean over problems of per-problem means
    assert result["truncated"] == pytest.approx(3 / 6)


def test_mean_tokens_is_a_mean_over_problems():
    # Unequal sample counts separate "mean of means" from "mean of all samples" (7 vs 5.5).
    result = summarize(correct=[[1], [0, 0, 0]], tokens=[[10], [4, 4, 4]], truncated=[[False], [False] * 3])
    assert result["mean_tokens"] == pytest.approx(7.0)
    assert result["pass@1"] == pytest.approx(1 / 4)  # over all samples


def test_average_is_unweighted_over_benchmarks():
    avg = average(
        {
            "a": {"problems": 30, "samples": 480, "pass@1": 0.2, "mean_tokens": 100.0},
            "b": {"problems": 500, "samples": 8000, "pass@1": 0.8, "mean_tokens": 300.0},
        }
    )
    assert avg == {"problems": 530, "samples": 8480, "pass@1": pytest.approx(0.5), "mean_tokens": 200.0}


def test_aes_hand_values():
    assert aes(0.5, 50, 0.4, 100) == pytest.approx(0.5 + 3 * 0.25)  # dL 0.5, dA +0.25
    assert aes(0.3, 80, 0.4, 100) == pytest.approx(0.2 - 5 * 0.25)  # dL 0.2, dA -0.25: gamma punishes
    assert aes(0.4, 120, 0.4, 100) == pytest.approx(-0.2)  # same accuracy, longer
    assert aes(30, 80, 40, 100) == pytest.approx(aes(0.3, 80, 0.4, 100))  # percent or fraction: same AES
    assert aes(0.5, 50, 0.4, 100, alpha=2, beta=1) == pytest.approx(2 * 0.5 + 0.25)


def test_aes_of_the_paper_headline():
    # Table 1: SAS 54.54 / 3407 against DeepScaleR-1.5B-Preview 52.37 / 5118.
    d_length, d_accuracy = (5118 - 3407) / 5118, (54.54 - 52.37) / 52.37
    assert aes(54.54, 3407, 52.37, 5118) == pytest.approx(d_length + 3 * d_accuracy)
    assert aes(54.54, 3407, 52.37, 5118) == pytest.approx(0.4586, abs=1e-4)


def test_aes_needs_a_positive_base():
    with pytest.raises(ValueError, match="positive"):
        aes(0.5, 10, 0.0, 100)
    with pytest.raises(ValueError, match="positive"):
        aes(0.5, 10, 0.5, 0)
