"""sas_trl.compare.signal: the share of training steps without any learning signal, and the report's warning."""

from __future__ import annotations

import pytest

from sas_trl.compare.signal import condition_signal, markdown, run_signal, warnings


def test_run_signal_counts_logged_steps_where_every_group_was_equal():
    history = [
        {"step": 1, "frac_reward_zero_std": 1.0},
        {"step": 2, "frac_reward_zero_std": 0.5},
        {"step": 3, "frac_reward_zero_std": 1.0},
        {"step": 4, "frac_reward_zero_std": 0.25},
        {"train_runtime": 3.0},  # the final summary entry has no such key
    ]
    signal = run_signal(history)
    assert signal == {"logged_steps": 4, "no_signal_share": 0.5, "mean_zero_std": pytest.approx(0.6875)}
    assert run_signal([{"step": 1, "reward": 0.3}]) is None  # not logged: unknown, not "no signal"


def results_for(shares: dict[str, list[float]]) -> dict:
    conditions = {}
    for name, values in shares.items():
        per_seed = {str(s): run_signal([{"frac_reward_zero_std": v}] * 4) for s, v in enumerate(values)}
        conditions[name] = {"learning_signal": condition_signal(per_seed)}
    return {"conditions": conditions}


def test_a_condition_that_learned_nothing_is_warned_about_and_one_that_learned_is_not():
    results = results_for({"grpo": [1.0, 1.0], "sas": [0.25, 0.5], "slow": [1.0, 0.5]})
    lines = warnings(results)
    assert len(lines) == 2
    assert lines[0].startswith("WARNING: condition `grpo` learned nothing: in all 2 runs")
    assert lines[1].startswith("Note: condition `slow` had no learning signal on 50% of its logged steps")
    table = "\n".join(markdown(results))
    assert "| grpo | 100.0 (n=2) | 100.0 (n=2) |" in table and "| sas | 0.0 (n=2) | 37.5 (n=2) |" in table


def test_no_logged_signal_means_no_section_and_no_warning():
    results = {"conditions": {"grpo": {"learning_signal": condition_signal({"0": None})}}}
    assert warnings(results) == [] and markdown(results) == []
