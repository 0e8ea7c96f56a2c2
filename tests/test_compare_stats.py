"""sas_trl.compare.stats against hand-computed values."""

from __future__ import annotations

import math

import pytest

from sas_trl.compare.stats import (
    CLIPPED,
    CLIPPED_NOTE,
    difference_cell,
    p_value_text,
    paired_difference,
    summarize,
    summary_cell,
)

T_975_DF4 = 2.7764451051977987  # Student's t, 97.5% quantile, 4 degrees of freedom (tables)
T_975_DF2 = 4.302652729911275


def test_summarize_hand_values():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["n"] == 5 and s["mean"] == 3.0
    assert s["std"] == pytest.approx(math.sqrt(2.5))  # sum of squares 10 over n - 1 = 4
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(3.0 - half), pytest.approx(3.0 + half))


def test_summarize_one_value_has_no_interval_and_missing_values_are_dropped():
    assert summarize([0.7]) == {"n": 1, "mean": 0.7, "std": None, "ci_low": None, "ci_high": None}
    assert summarize([None, float("nan"), 2.0, 4.0])["n"] == 2
    assert summarize([]) == {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    assert summarize([2.0, 2.0, 2.0])["ci_low"] == 2.0  # no spread: a zero-width interval, not NaN


def test_paired_difference_hand_values():
    sas, grpo = [0.80, 0.90, 0.70], [0.70, 0.85, 0.50]  # differences 0.10, 0.05, 0.20
    d = paired_difference(sas, grpo)
    mean, sd = 0.35 / 3, math.sqrt(((0.1 - 0.35 / 3) ** 2 + (0.05 - 0.35 / 3) ** 2 + (0.2 - 0.35 / 3) ** 2) / 2)
    sem = sd / math.sqrt(3)
    assert d["n"] == 3 and d["mean"] == pytest.approx(mean)
    assert d["ci_low"] == pytest.approx(mean - T_975_DF2 * sem) and d["ci_high"] == pytest.approx(
        mean + T_975_DF2 * sem
    )
    # t = mean / sem = 2.6458 with 2 degrees of freedom: two-sided p = 0.1181 (tables)
    assert d["p"] == pytest.approx(0.1181, abs=5e-4)


def test_paired_difference_drops_incomplete_pairs_and_never_gives_a_bare_interval_for_one_pair():
    d = paired_difference([0.5, None, 0.9], [0.4, 0.3, None])
    assert d == {"n": 1, "mean": pytest.approx(0.1), "ci_low": None, "ci_high": None, "p": None}
    same = paired_difference([0.5, 0.6], [0.4, 0.5])  # every pair differs by exactly 0.1
    assert same["ci_low"] == pytest.approx(0.1) and same["p"] == 0.0
    with pytest.raises(ValueError):
        paired_difference([0.5], [0.4, 0.3])  # pairs must line up seed by seed


def test_an_interval_beyond_the_metrics_range_is_clipped_and_marked():
    wide = summarize([0.1, 0.9])  # 2 seeds: t = 12.7, the interval runs far past 0 and 100%
    assert wide["ci_low"] < 0 and wide["ci_high"] > 1  # the data keep the t-interval as computed
    assert summary_cell("pass@1", wide) == f"50.00 ± 56.57 [0.00{CLIPPED}, 100.00{CLIPPED}] (n=2)"
    assert CLIPPED not in summary_cell("pass@1", summarize([0.4, 0.5, 0.45]))
    assert summary_cell("mean_tokens", summarize([1.0, 30.0])).startswith(f"15.5 ± 20.5 [0.0{CLIPPED}, ")
    d = paired_difference([0.9, 0.1], [0.1, 0.2])
    assert d["ci_low"] < -1 and d["ci_high"] > 1
    assert difference_cell("pass@1", d).startswith(f"+35.00 [-100.00{CLIPPED}, +100.00{CLIPPED}] p=")
    assert CLIPPED not in difference_cell("reward", d)  # no known range: shown as computed
    assert CLIPPED in CLIPPED_NOTE


def test_a_p_value_below_what_three_decimals_show_is_written_as_a_bound():
    same = paired_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])  # no spread: p = 0
    assert difference_cell("pass@1", same, count=False) == "+10.00 [+10.00, +10.00] p<0.001"
    assert p_value_text(0.0004999) == "p<0.001" and p_value_text(0.0005) == "p=0.001"
    assert p_value_text(0.1181) == "p=0.118"
