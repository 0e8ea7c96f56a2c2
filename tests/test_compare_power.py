"""sas_trl.compare.power against published paired t-test power values, and the power a study file plans for."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.cli import main
from sas_trl.compare.power import (
    markdown,
    minimum_detectable_effect,
    paired_power,
    paired_sd,
    power_table,
    seeds_needed,
)
from sas_trl.compare.stats import paired_difference


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_paired_power_matches_published_values():
    # G*Power, paired t-test, two-sided alpha 0.05: d = 0.5 needs 34 pairs (power 0.8078), d = 1 needs 10 (0.8031).
    assert paired_power(sd=1.0, n=34, effect=0.5) == pytest.approx(0.8077775, abs=1e-6)
    assert paired_power(sd=1.0, n=10, effect=1.0) == pytest.approx(0.8030969, abs=1e-6)
    assert paired_power(sd=2.0, n=34, effect=1.0) == pytest.approx(0.8077775, abs=1e-6)  # only d = effect / sd counts
    assert paired_power(sd=1.0, n=10, effect=-1.0) == paired_power(sd=1.0, n=10, effect=1.0)  # two-sided
    assert paired_power(sd=1.0, n=5, effect=0.0) == pytest.approx(0.05)  # no effect: the test's size
    assert paired_power(sd=1.0, n=500, effect=3.0) == pytest.approx(1.0)  # far tail: no NaN from scipy


def test_seeds_needed_is_the_smallest_sufficient_count():
    assert seeds_needed(sd=1.0, effect=0.5) == 34 and seeds_needed(sd=1.0, effect=1.0) == 10
    for sd, effect in [(0.03, 0.02), (0.03, 0.01), (0.015, 0.02), (0.037, 0.01)]:
        n = seeds_needed(sd, effect)
        assert paired_power(sd, n, effect) >= 0.8 > paired_power(sd, n - 1, effect)
    assert seeds_needed(sd=1.0, effect=1e-4) is None  # beyond 10,000 seeds


def test_minimum_detectable_effect_inverts_the_power():
    assert minimum_detectable_effect(1.0, 34) == pytest.approx(0.4950, abs=1e-4)  # just under d = 0.5 at n = 34
    for sd, n in [(0.03, 5), (0.02, 10), (0.015, 12)]:
        assert paired_power(sd, n, minimum_detectable_effect(sd, n)) == pytest.approx(0.8, abs=1e-6)
    # The short-context study's spread: sd 3 points over 5 seeds sees only ~5-point differences.
    assert minimum_detectable_effect(0.03, 5) == pytest.approx(0.0505, abs=5e-4)
    assert minimum_detectable_effect(0.03, 1) is None and minimum_detectable_effect(0.0, 5) == 0.0


def test_paired_sd_uses_complete_pairs_only():
    assert paired_sd([0.5, 0.6, None, 0.9], [0.4, 0.4, 0.3, float("nan")]) == (2, pytest.approx(0.0707107, abs=1e-6))
    assert paired_sd([0.5], [0.4]) == (1, None)


def results_with(runs: dict[str, list[float]]) -> dict:
    return {"conditions": {c: {"runs": {str(s): {"pass@1": v} for s, v in enumerate(vs)}} for c, vs in runs.items()}}


def test_power_table_from_per_run_values():
    results = results_with({"grpo": [0.40, 0.50, 0.45, 0.42], "sas": [0.43, 0.51, 0.49, 0.44]})
    (row,) = power_table(results, [("sas", "grpo")], "pass@1", effect=0.02)
    _, sd = paired_sd([0.43, 0.51, 0.49, 0.44], [0.40, 0.50, 0.45, 0.42])
    assert row["pairs"] == 4 and row["sd"] == pytest.approx(sd)
    assert row["mde"] == pytest.approx(minimum_detectable_effect(sd, 4))
    assert row["needed"]["0.02"] == seeds_needed(sd, 0.02) and row["needed"]["0.01"] == seeds_needed(sd, 0.01)
    assert row["power"] == pytest.approx(paired_power(sd, 4, 0.02))
    (planned,) = power_table(results, [("sas", "grpo")], "pass@1", n=20)
    assert planned["seeds"] == 20 and planned["mde"] < row["mde"]


def test_power_table_states_each_comparisons_observed_difference():
    # A primary comparison that is not against the reference still gets its difference, interval and p.
    results = results_with({"filter": [0.30, 0.41, 0.38, 0.35], "sas": [0.43, 0.51, 0.49, None]})
    (row,) = power_table(results, [("sas", "filter")], "pass@1")
    expected = paired_difference([0.43, 0.51, 0.49], [0.30, 0.41, 0.38])
    assert row["difference"] == pytest.approx(expected) and row["difference"]["n"] == row["pairs"] == 3
    assert row["difference"]["ci_low"] > 0  # this toy difference excludes 0
    line = next(x for x in markdown([row], "pass@1") if x.startswith("| sas vs filter"))
    d = expected
    assert f"+{100 * d['mean']:.2f} [+{100 * d['ci_low']:.2f}, +{100 * d['ci_high']:.2f}] p={d['p']:.3f}" in line
    (lone,) = power_table(results_with({"a": [0.5], "b": [0.4]}), [("a", "b")], "pass@1")
    assert "no interval (n=1)" in next(x for x in markdown([lone], "pass@1") if x.startswith("| a vs b"))


def study_file(tmp_path, power) -> str:
    study = {
        "base_recipe": "recipes/studies/tiny_smoke_base.yaml",
        "output_dir": str(tmp_path / "out"),
        "seeds": list(range(12)),
        "reference": "grpo",
        "conditions": {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}},
        "eval": {"benchmarks": "addition", "n": 2, "max_tokens": 16},
        "power": power,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)


@pytest.mark.parametrize(
    ("power", "expected"),
    [
        ({"effect": -1}, "power.effect must be a number > 0"),
        ({"effects": 0.02}, "power: unknown key 'effects'"),
        ({"primary": [["sas", "gpro"]]}, "power.primary names 'gpro', not a condition; conditions: grpo, sas"),
        ({"primary": [["sas", "sas"]]}, "compares 'sas' with itself"),
        ({"primary": "sas"}, "power.primary must be a list of [condition, against] pairs"),
    ],
)
def test_bad_power_sections_fail_in_one_line(tmp_path, capsys, power, expected):
    assert main(["compare", "--study", study_file(tmp_path, power), "--print_commands"]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_print_commands_states_the_power_once_a_pilot_exists(tmp_path, capsys):
    path = study_file(tmp_path, {"effect": 0.02, "pilot": str(tmp_path / "pilot")})
    assert main(["compare", "--study", path, "--print_commands"]) == 0
    captured = capsys.readouterr()
    assert "power: no pilot results yet" in captured.err
    assert all(not line.startswith("#") for line in captured.out.splitlines())  # stdout: commands only

    pilot = results_with({"grpo": [0.40, 0.50, 0.45], "sas": [0.43, 0.51, 0.49]})
    (tmp_path / "pilot").mkdir()
    (tmp_path / "pilot" / "results.json").write_text(json.dumps(pilot))
    assert main(["compare", "--study", path, "--print_commands"]) == 0
    err = capsys.readouterr().err
    _, sd = paired_sd([0.43, 0.51, 0.49], [0.40, 0.50, 0.45])
    expected_power = round(100 * paired_power(sd, 12, 0.02))
    assert "power with 12 seeds" in err and "sas vs grpo" in err and "from 3 pairs" in err
    assert f"minimum detectable effect {100 * minimum_detectable_effect(sd, 12):.2f}" in err
    assert f"power {expected_power}% for 2.00 ({seeds_needed(sd, 0.02)} seeds needed for 80%)" in err
