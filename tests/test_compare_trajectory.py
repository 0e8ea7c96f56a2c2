"""sas_trl.compare.trajectory: checkpoints evaluated along training, stability figures, and the report's view."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.cli import main
from sas_trl.compare import build_report, load_study, plan_runs
from sas_trl.compare.runner import print_commands
from sas_trl.compare.trajectory import check_settings, run_stability, step_dir
from sas_trl.errors import UserError

BASE = "recipes/studies/tiny_smoke_base.yaml"  # save_steps 4, max_steps 12


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def study_file(tmp_path, trajectory=None, **changes) -> str:
    study = {
        "base_recipe": BASE,
        "output_dir": str(tmp_path / "out"),
        "seeds": [0, 1, 2],
        "reference": "grpo",
        "conditions": {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3, "max_steps": 8}},
        "eval": {"benchmarks": "addition", "n": 4, "max_tokens": 16},
        "trajectory": {"every": 4, "eval": {"n": 2, "limit": 4}} if trajectory is None else trajectory,
    }
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)


@pytest.mark.parametrize(
    ("trajectory", "expected"),
    [
        ({"every": 3}, "trajectory.every=3 with condition 'grpo': every must be a multiple of its save_steps (4)"),
        ({"every": 0}, "trajectory.every must be a whole number of steps >= 1, got 0"),
        ({"every": 4, "last": 1}, "trajectory.last must be a whole number >= 2"),
        ({"every": 4, "evry": 1}, "trajectory: unknown key 'evry'"),
        ({"every": 64}, "with condition 'grpo': the run trains only"),
        ({"every": 4, "eval": {"n": "many"}}, "trajectory.eval: argument --n: invalid int value: 'many'"),
    ],
)
def test_bad_trajectory_sections_fail_in_one_line_before_anything_runs(tmp_path, capsys, trajectory, expected):
    assert main(["compare", "--study", study_file(tmp_path, trajectory)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_condition_that_deletes_checkpoints_is_refused(tmp_path):
    conditions = {"grpo": {"sas_strategy": "none", "save_total_limit": 1}, "sas": {}}
    with pytest.raises(UserError, match="save_total_limit=1 would delete the checkpoints"):
        load_study(study_file(tmp_path, conditions=conditions))


def test_steps_per_condition_and_print_commands_evaluate_each_checkpoint(tmp_path, capsys):
    study = load_study(study_file(tmp_path))
    assert study.trajectory.steps == {"grpo": (4, 8, 12), "sas": (4, 8)}  # max_steps 12 in the base, 8 for sas
    lines = print_commands(study)
    step0 = shlex.split(lines[2])
    assert step0[step0.index("--output_dir") + 1] == str(study.output_dir.resolve() / "base_eval" / "trajectory")
    sas1 = [shlex.split(part) for part in lines[-3].split(" && ")]  # sas seed 1 (runs are seed-major)
    assert [c[1] for c in sas1] == ["train", "eval", "eval", "eval"]
    run = plan_runs(study)[3]
    for step, command in zip((4, 8), sas1[2:], strict=True):
        assert command[command.index("--model") + 1] == str(run.dir / f"checkpoint-{step}")
        assert command[command.index("--output_dir") + 1] == str(step_dir(run, step))
        assert command[command.index("--n") + 1] == "2" and command[command.index("--limit") + 1] == "4"


def test_changed_trajectory_settings_are_refused_not_mixed(tmp_path):
    study = load_study(study_file(tmp_path))
    folder = tmp_path / "run" / "trajectory"
    check_settings(study, folder)
    check_settings(study, folder)  # the same settings: fine
    changed = load_study(study_file(tmp_path, {"every": 4, "eval": {"n": 3, "limit": 4}}))
    with pytest.raises(UserError, match="evaluated with other trajectory settings"):
        check_settings(changed, folder)


def test_run_stability_hand_values():
    points = [{"step": 0, "metrics": {"pass@1": 0.9}}]  # step 0, the starting model, is not part of training
    points += [{"step": s, "metrics": {"pass@1": v}} for s, v in [(2, 0.5), (4, 0.7), (6, 0.6), (8, 0.4)]]
    s = run_stability(points, last=3)
    assert s["final_minus_peak"] == pytest.approx(-0.3)
    assert s["last_spread"] == pytest.approx(0.15275252, abs=1e-7)  # std of 0.7, 0.6, 0.4 (ddof 1)
    assert run_stability(points[:2], last=3) == {"final_minus_peak": 0.0, "last_spread": None}


def fake_eval(folder, pass1, tokens=12.0, truncated=0.0):
    folder.mkdir(parents=True, exist_ok=True)
    average = {"pass@1": pass1, "mean_tokens": tokens, "truncated": truncated}
    (folder / "eval_results.json").write_text(json.dumps({"average": average}))


def test_report_stores_trajectories_and_stability_and_links_its_figures(tmp_path):
    study = load_study(study_file(tmp_path, conditions={"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}}))
    fake_eval(study.output_dir.resolve() / "base_eval" / "trajectory", 0.30)
    curves = {"grpo": [(0.5, 0.4), (0.6, 0.5), (0.5, 0.3)], "sas": [(0.5, 0.6), (0.6, 0.6), (0.55, 0.6)]}
    for run in plan_runs(study):
        a4, a8 = curves[run.condition][run.seed]
        fake_eval(run.eval_dir, a8, 14.0)
        fake_eval(step_dir(run, 4), a4)
        fake_eval(step_dir(run, 8), a8)  # step 12 not evaluated yet: left out
        history = [{"step": s, "reward": a4, "frac_reward_zero_std": 0.5} for s in (1, 2, 3, 4)]
        (run.dir / "log_history.json").write_text(json.dumps(history))
    results = build_report(study)
    grpo = results["conditions"]["grpo"]
    assert grpo["trajectory"]["0"] == [
        {"step": 0, "metrics": {"pass@1": 0.30, "mean_tokens": 12.0, "truncated": 0.0}},
        {"step": 4, "metrics": {"pass@1": 0.5, "mean_tokens": 12.0, "truncated": 0.0}},
        {"step": 8, "metrics": {"pass@1": 0.4, "mean_tokens": 12.0, "truncated": 0.0}},
    ]
    assert grpo["stability"]["final_minus_peak"]["mean"] == pytest.approx(-0.4 / 3)  # -0.1, -0.1, -0.2
    assert results["conditions"]["sas"]["stability"]["final_minus_peak"]["mean"] == pytest.approx(0.0)
    assert json.loads((study.output_dir / "results.json").read_text())["conditions"]["grpo"]["trajectory"]
    report = (study.output_dir / "report.md").read_text()
    assert "## Stability along training" in report and "| grpo | -13.33 [" in report
    assert "## Power: what these seeds can see (pass@1)" in report and "| sas vs grpo | 3 |" in report
    assert "## Learning signal" in report and "WARNING" not in report
    for figure in ("training_curves.png", "accuracy_vs_length.png", "trajectory.png"):
        assert f"]({figure})" in report  # linked relative to report.md
        assert (study.output_dir / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_warns_when_a_condition_learned_nothing(tmp_path):
    study = load_study(study_file(tmp_path, trajectory={"every": 4}))
    for run in plan_runs(study):
        fake_eval(run.eval_dir, 0.0)
        silent = 1.0 if run.condition == "grpo" else 0.25
        history = [{"step": s, "reward": 0.0, "frac_reward_zero_std": silent} for s in (1, 2)]
        (run.dir / "log_history.json").write_text(json.dumps(history))
    results = build_report(study)
    assert len(results["warnings"]) == 1
    report = (study.output_dir / "report.md").read_text()
    assert "**WARNING: condition `grpo` learned nothing" in report and "`sas` learned nothing" not in report


def test_report_only_refuses_trajectories_made_with_other_settings(tmp_path):
    study = load_study(study_file(tmp_path))
    run = plan_runs(study)[0]
    check_settings(study, run.dir / "trajectory")
    fake_eval(step_dir(run, 4), 0.5)
    changed = load_study(study_file(tmp_path, {"every": 4, "eval": {"n": 3, "limit": 4}}))
    message = r"evaluated with other trajectory settings \(the study file changed: eval.n: 2 -> 3\); delete"
    with pytest.raises(UserError, match=message):
        build_report(changed)


def test_a_two_seed_report_says_it_cannot_answer_clips_its_intervals_and_names_each_evaluation(tmp_path):
    study = load_study(study_file(tmp_path, seeds=[0, 1], conditions={"grpo": {}, "sas": {"sas_ratio": 0.3}}))
    fake_eval(study.output_dir.resolve() / "base_eval" / "trajectory", 0.30)
    finals = {("grpo", 0): 0.10, ("grpo", 1): 0.90, ("sas", 0): 0.20, ("sas", 1): 0.95}
    for run in plan_runs(study):
        final = finals[(run.condition, run.seed)]
        fake_eval(run.eval_dir, final, 14.0)
        for step in (4, 8, 12):
            fake_eval(step_dir(run, step), final * step / 12)
    build_report(study)
    report = (study.output_dir / "report.md").read_text()
    found = report[report.index("## What the study found") :].split("\n## ")[0]
    assert "2 seeds cannot give an answer" in found
    assert "- `sas` vs `grpo`: no difference in pass@1 these seeds can tell apart, +7.50 [" in found
    assert "a 2-point difference would need 27 seeds" in found  # sd of the differences: 3.54 points
    assert "- `sas` vs `grpo`, response length (tokens): +0.0 [+0.0, +0.0] p=1.000 (n=2), not told apart." in found
    # The 2-seed t-interval of grpo's Pass@1 (10% and 90%) runs past 0 and 100%: clipped, marked and said so.
    assert "| grpo | 50.00 ± 56.57 [0.00†, 100.00†] (n=2)" in report and report.rstrip().endswith(
        "with few seeds the interval itself runs beyond it."
    )
    assert "Final evaluation (the tables and the accuracy-vs-length figure): `sas-trl eval --benchmarks addition " in (
        report
    )
    assert "Trajectory evaluation (the stability section and the along-training figure): `sas-trl eval " in report
    assert "--n 2 --limit 4`" in report and "a different evaluation from the final one" in report
    assert "![accuracy vs length: the final evaluation](accuracy_vs_length.png)" in report
    assert "![along training: the trajectory evaluation](trajectory.png)" in report


def test_a_clear_difference_is_stated_as_found(tmp_path):
    study = load_study(study_file(tmp_path, conditions={"grpo": {}, "sas": {"sas_ratio": 0.3}}))
    for run in plan_runs(study):
        fake_eval(run.eval_dir, (0.40 if run.condition == "grpo" else 0.50) + 0.01 * run.seed * (run.seed - 1))
    build_report(study)
    report = (study.output_dir / "report.md").read_text()
    assert "- `sas` vs `grpo`: pass@1 higher, +10.00 [+10.00, +10.00] p<0.001 (n=3): these seeds tell it apart " in (
        report
    )
    assert "cannot give an answer" not in report and "†" not in report
