"""`seeds_per_condition` (a condition runs the first N of the study's seeds) and the seed-major run order: the key
checked in one line, the planned runs and their order, a report over unequal seed counts pairing on the seeds
both conditions ran (numbers computed by hand), `missing` only the planned runs, the planned power per comparison.

The runs' commands are replaced by a fake that writes what `sas-trl train` and `sas-trl eval` write, with Pass@1
values set per (condition, seed); tests/test_compare_run.py runs a study for real."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT, write_study

from sas_trl.cli import main
from sas_trl.compare import build_report, load_study, plan_runs, runner
from sas_trl.compare.power import minimum_detectable_effect, paired_power, paired_sd
from sas_trl.compare.study import MAX_RUNS
from sas_trl.errors import UserError

CONDITIONS = {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}, "filt": {"sas_ratio": 0.5}}
# Pass@1 per (condition, seed) the fake evaluation reports: grpo (the reference) runs 4 seeds, filt 3, sas 2.
PASS1 = {
    "grpo": [0.40, 0.50, 0.45, 0.42],
    "sas": [0.46, 0.53],
    "filt": [0.41, 0.52, 0.47],
}
T_975_DF1 = 12.706204736174698  # Student's t, 97.5% quantile, 1 degree of freedom (tables)


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # base_recipe paths are relative to the current directory, like --recipe


def study_path(tmp_path, per_condition, seeds=(0, 1, 2, 3), conditions=None, **extra) -> Path:
    path = Path(write_study(tmp_path, conditions or CONDITIONS, seeds, trajectory=extra.pop("trajectory", None)))
    data = yaml.safe_load(path.read_text())
    data.update(conditions=conditions or CONDITIONS, seeds_per_condition=per_condition, **extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # the conditions in their order
    return path


@pytest.mark.parametrize(
    ("per_condition", "expected"),
    [
        ([2], r"line \d+: seeds_per_condition must be a mapping of condition: number of seeds, got \[2\]"),
        ({}, "seeds_per_condition must be a mapping of condition: number of seeds, got {}"),
        ({"sass": 2}, r"line \d+: seeds_per_condition names 'sass', not a condition; did you mean 'sas'\?"),
        ({"zzz": 2}, "seeds_per_condition names 'zzz', not a condition; conditions: grpo, sas, filt"),
        ({"sas": "2"}, r"line \d+: seeds_per_condition.sas must be a whole number of seeds, got '2'"),
        ({"sas": 2.0}, "seeds_per_condition.sas must be a whole number of seeds, got 2.0"),
        ({"sas": True}, "seeds_per_condition.sas must be a whole number of seeds, got True"),
        ({"sas": 0}, "seeds_per_condition.sas = 0 must lie in 1..4: the first N of the study's 4 seeds"),
        ({"sas": 5}, "seeds_per_condition.sas = 5 must lie in 1..4"),
        (
            {"grpo": 2, "sas": 2},
            "the reference 'grpo' has 2 seed(s), fewer than 'filt' (4): a comparison against the reference pairs "
            "only on the seeds both run, so 'filt' would lose 2; give the reference at least 4",
        ),
    ],
)
def test_a_bad_seeds_per_condition_fails_in_one_line_before_anything_runs(tmp_path, capsys, per_condition, expected):
    assert main(["compare", "--study", str(study_path(tmp_path, per_condition)), "--print_commands"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(expected, err) if "line" in expected else expected in err, err
    assert not (tmp_path / "out").exists()


def test_an_error_names_the_line_of_the_count(tmp_path):
    path = study_path(tmp_path, {"grpo": 4, "sas": "2"})
    line = path.read_text().splitlines().index("  sas: '2'") + 1
    with pytest.raises(UserError, match=rf"study\.yaml, line {line}: seeds_per_condition\.sas must be a whole"):
        load_study(path)


def test_the_run_limit_counts_the_real_runs(tmp_path):
    two = {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}}
    seeds = list(range(300))  # 2 x 300 runs would be more than MAX_RUNS; 300 + (MAX_RUNS - 300) are not
    study = load_study(study_path(tmp_path, {"sas": MAX_RUNS - 300}, seeds, two))
    assert study.run_count == len(plan_runs(study)) == MAX_RUNS
    with pytest.raises(UserError, match=rf"their seeds_per_condition = {MAX_RUNS + 1} runs, more than {MAX_RUNS}"):
        load_study(study_path(tmp_path, {"sas": MAX_RUNS - 299}, seeds, two))


def test_runs_are_planned_seed_major_each_condition_its_first_seeds(tmp_path):
    study = load_study(study_path(tmp_path, {"sas": 2, "filt": 3}))
    assert [study.condition_seeds(c) for c in study.conditions] == [(0, 1, 2, 3), (0, 1), (0, 1, 2)]
    assert study.shared_seeds("filt", "sas") == (0, 1) and study.shared_seeds("grpo", "filt") == (0, 1, 2)
    runs = plan_runs(study)
    assert [r.name for r in runs] == [
        "grpo seed 0", "sas seed 0", "filt seed 0",
        "grpo seed 1", "sas seed 1", "filt seed 1",
        "grpo seed 2", "filt seed 2",
        "grpo seed 3",
    ]  # fmt: skip
    assert all(r.dir == study.output_dir.resolve() / "runs" / r.condition / f"seed{r.seed}" for r in runs)
    assert study.run_count == 9
    # --print_commands: one line per planned run, in the same order, after the starting model's two lines
    lines = runner.print_commands(study)
    trained = [shlex.split(line.split(" && ")[0]) for line in lines[2:]]
    assert [Path(c[c.index("--recipe") + 1]).parent for c in trained] == [r.dir for r in runs]
    with pytest.raises(UserError, match="--jobs 10 is more than the study's 9 runs"):
        runner.job_envs(study, 10)
    # without the key every condition runs every seed, still seed-major
    full = load_study(study_path(tmp_path, None, seeds=(5, 7)))
    assert [(r.condition, r.seed) for r in plan_runs(full)] == [(c, s) for s in (5, 7) for c in CONDITIONS]


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def fake_commands(monkeypatch) -> list[list[str]]:
    """The runs' processes and the starting model replaced by fakes: training writes its checkpoints, log and
    final save; an evaluation writes the Pass@1 of PASS1 for its run (at every step), 0.3 for the starting model."""
    ran: list[list[str]] = []

    def run_logged(command, log, what, env=None):
        ran.append(command)
        if "train" in command:
            folder = Path(_value(command, "--recipe")).parent
            for step in (4, 8, 12):
                (folder / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
                (folder / f"checkpoint-{step}" / "trainer_state.json").write_text('{"log_history": []}')
            history = [{"step": s, "reward": 0.1 * s, "frac_reward_zero_std": 0.25} for s in range(1, 13)]
            (folder / "log_history.json").write_text(json.dumps(history))
            (folder / "run_info.json").write_text("{}")
            return
        out, model = Path(_value(command, "--output_dir")), _value(command, "--model")
        parts = Path(model).parts  # OUT/runs/CONDITION/seedN[/checkpoint-K], else the starting model
        run = parts[parts.index("runs") + 1 : parts.index("runs") + 3] if "runs" in parts else None
        pass1 = 0.3 if run is None else PASS1[run[0]][int(run[1].removeprefix("seed"))]
        out.mkdir(parents=True, exist_ok=True)
        average = {"pass@1": pass1, "mean_tokens": 10.0, "truncated": 0.0}
        (out / "eval_results.json").write_text(json.dumps({"model": model, "average": average}))

    def prepare(study):
        model, _ = runner.starting_model(study)
        Path(model).mkdir(parents=True, exist_ok=True)
        return model

    monkeypatch.setattr(runner, "_run_logged", run_logged)
    monkeypatch.setattr(runner, "prepare_starting_model", prepare)
    return ran


def test_a_report_over_unequal_seeds_pairs_on_the_seeds_both_ran(tmp_path, monkeypatch):
    ran = fake_commands(monkeypatch)
    power = {"primary": [["sas", "grpo"], ["sas", "filt"]]}
    study = load_study(study_path(tmp_path, {"sas": 2, "filt": 3}, power=power, trajectory={"every": 4}))
    runner.run_study(study, echo=lambda line: None)
    trained = [Path(_value(c, "--recipe")).parent for c in ran if "train" in c]
    assert trained == [r.dir for r in plan_runs(study)]  # seed-major, only the planned runs
    assert not (study.output_dir / "runs" / "sas" / "seed2").exists()
    results = build_report(study)

    sas, filt = results["conditions"]["sas"], results["conditions"]["filt"]
    assert set(sas["runs"]) == {"0", "1"} and set(filt["runs"]) == {"0", "1", "2"}
    assert set(sas["trajectory"]) == {"0", "1"} and sas["trajectory"]["0"][0]["step"] == 0  # step 0: the start
    assert sas["trajectory"]["0"][0]["metrics"]["pass@1"] == 0.3
    assert sas["summary"]["pass@1"]["n"] == 2 and sas["summary"]["pass@1"]["mean"] == pytest.approx(0.495)
    assert results["conditions"]["grpo"]["summary"]["pass@1"]["n"] == 4
    assert set(sas["learning_signal"]["runs"]) == {"0", "1"} and sas["learning_signal"]["mean_zero_std"]["n"] == 2
    # sas - grpo on seeds 0, 1: differences 0.06 and 0.03
    d = sas["vs_reference"]["pass@1"]
    sem = (abs(0.06 - 0.03) / math.sqrt(2)) / math.sqrt(2)  # sd of two values over sqrt(n)
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.045)
    half = T_975_DF1 * sem
    assert d["ci_low"] == pytest.approx(0.045 - half) and d["ci_high"] == pytest.approx(0.045 + half)
    assert d["p"] == pytest.approx(1 - 2 * math.atan(0.045 / sem) / math.pi)  # t with 1 df is Cauchy
    # filt - grpo on seeds 0, 1, 2: differences 0.01, 0.02, 0.02
    f = filt["vs_reference"]["pass@1"]
    assert f["n"] == 3 and f["mean"] == pytest.approx(0.05 / 3)

    rows = {(r["condition"], r["against"]): r for r in results["power"]["comparisons"]}
    assert rows[("sas", "grpo")]["pairs"] == rows[("sas", "grpo")]["seeds"] == 2
    assert rows[("sas", "grpo")]["difference"] == pytest.approx(d)
    between = rows[("sas", "filt")]  # seeds 0, 1: differences 0.05 and 0.01
    assert between["pairs"] == 2 and between["difference"]["mean"] == pytest.approx(0.03)
    sd = abs(0.05 - 0.01) / math.sqrt(2)
    assert between["sd"] == pytest.approx(sd) and between["mde"] == pytest.approx(minimum_detectable_effect(sd, 2))

    assert results["missing"] == [] and results["seeds_per_condition"] == {"grpo": 4, "sas": 2, "filt": 3}
    report = (study.output_dir / "report.md").read_text()
    assert "(grpo all 4, sas the first 2, filt the first 3;" in report
    # the differences table's sas row: 4.5 points ± 12.706 x 1.5, p = 1 - 2 atan(3) / pi
    assert "| sas | +4.50 [-14.56, +23.56] p=0.205 (n=2) |" in report

    (plan_runs(study)[-1].eval_dir / "eval_results.json").unlink()  # grpo seed 3 without results
    assert build_report(study)["missing"] == ["grpo seed 3"]  # never sas seed 2 or 3, which the study never runs


def test_print_commands_sizes_each_comparison_by_its_own_pairs(tmp_path, capsys):
    pilot = {"conditions": {c: {"runs": {str(s): {"pass@1": v} for s, v in enumerate(vs)}} for c, vs in PASS1.items()}}
    (tmp_path / "pilot").mkdir()
    (tmp_path / "pilot" / "results.json").write_text(json.dumps(pilot))
    power = {"effect": 0.02, "pilot": str(tmp_path / "pilot")}
    path = study_path(tmp_path, {"sas": 10, "filt": 15}, seeds=range(20), power=power)
    assert main(["compare", "--study", str(path), "--print_commands"]) == 0
    err = capsys.readouterr().err
    assert "power with each comparison's seed pairs" in err
    for condition, planned in (("sas", 10), ("filt", 15)):
        pairs, sd = paired_sd(PASS1[condition], PASS1["grpo"][: len(PASS1[condition])])
        line = next(x for x in err.splitlines() if x.lstrip("# ").startswith(f"{condition} vs grpo"))
        assert f"with {planned} seeds: sd {100 * sd:.2f} from {pairs} pairs" in line
        assert f"minimum detectable effect {100 * minimum_detectable_effect(sd, planned):.2f}" in line
        assert f"power {round(100 * paired_power(sd, planned, 0.02))}% for 2.00" in line
