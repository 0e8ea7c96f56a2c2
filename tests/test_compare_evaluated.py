"""The report names what each evaluation evaluated: one of another model than its run's is left out with a
warning naming it, one made with other eval options than the study's now (`--report_only` after the study
changed) is marked, naming the runs and each option that differs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import ROOT, SMOKE_EVAL, write_study

from sas_trl.cli import main
from sas_trl.compare import build_report, load_study, plan_runs, runner
from sas_trl.compare.evaluated import option_changes, same_model

EVAL = SMOKE_EVAL


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def study_file(tmp_path, eval_options=None, trajectory=None) -> str:
    conditions = {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}}
    return write_study(tmp_path, conditions, (0, 1), eval_options or None, trajectory or None)


def evaluate(study, folder, model, pass1, evaluated=None):
    """What `sas-trl eval` and the study write: results naming the model evaluated, and the study's record."""
    folder.mkdir(parents=True, exist_ok=True)
    average = {"pass@1": pass1, "mean_tokens": 10.0, "truncated": 0.0}
    (folder / "eval_results.json").write_text(json.dumps({"model": evaluated or model, "average": average}))
    runner.write_made_from(folder, runner.eval_record(study, model, None))


def finished_study(tmp_path, **kwargs):
    study = load_study(study_file(tmp_path, **kwargs))
    start, _ = runner.starting_model(study)
    (tmp_path / "out" / "base_model").mkdir(parents=True)
    (tmp_path / "out" / "base_model" / "model.safetensors").write_bytes(b"the starting weights")
    evaluate(study, runner.base_eval_dir(study), start, 0.2)
    for run in plan_runs(study):
        run.dir.mkdir(parents=True, exist_ok=True)
        (run.dir / "model.safetensors").write_bytes(f"weights of {run.name}".encode())
        evaluate(study, run.eval_dir, str(run.dir), 0.5 if run.condition == "grpo" else 0.6)
    return study


def test_a_report_of_the_runs_own_models_names_them_and_warns_of_nothing(tmp_path):
    study = finished_study(tmp_path)
    results = build_report(study)
    assert results["evaluated"]["grpo seed 1"] == str(study.output_dir.resolve() / "runs" / "grpo" / "seed1")
    assert results["evaluated"]["the starting model"] == str(study.output_dir.resolve() / "base_model")
    assert results["left_out"] == {} and results["eval_option_changes"] == {} and results["warnings"] == []
    report = (study.output_dir / "report.md").read_text()
    start = study.output_dir.resolve() / "base_model"
    assert f"Evaluated: the starting model `{start}`; 4 run(s), each its own final model" in report
    assert "WARNING" not in report


def test_an_evaluation_of_another_model_is_left_out_and_named(tmp_path):
    study = finished_study(tmp_path)
    run = next(r for r in plan_runs(study) if r.name == "sas seed 1")
    other = tmp_path / "other_model"
    evaluate(study, run.eval_dir, str(run.dir), 0.99, evaluated=str(other))  # what `eval: {mod: ...}` did
    start, _ = runner.starting_model(study)
    evaluate(study, runner.base_eval_dir(study), start, 0.9, evaluated="someone/else")
    results = build_report(study)
    assert results["left_out"] == {
        "sas seed 1": f"evaluated `{other}`, not `{run.dir}`",
        "the starting model": f"evaluated `someone/else`, not `{start}`",
    }
    assert results["conditions"]["sas"]["summary"]["pass@1"]["n"] == 1  # 0.99 is not in the numbers
    assert results["conditions"]["sas"]["summary"]["pass@1"]["mean"] == pytest.approx(0.6)
    assert results["starting_model"] is None and results["missing"] == []
    report = (study.output_dir / "report.md").read_text()
    assert f"**WARNING: the evaluation of sas seed 1 is left out of the numbers: it evaluated `{other}`" in report
    assert "WARNING: the evaluation of the starting model is left out" in report
    assert "Starting model: Pass@1" not in report and "3 run(s), each its own final model" in report


def test_an_evaluation_from_before_the_model_files_changed_is_left_out(tmp_path):
    study = finished_study(tmp_path)
    run = plan_runs(study)[0]
    (run.dir / "model.safetensors").write_bytes(b"retrained since")
    results = build_report(study)
    assert results["left_out"] == {
        "grpo seed 0": f"evaluated `{run.dir}` before its model files changed (retrained or replaced)"
    }
    assert results["conditions"]["grpo"]["summary"]["pass@1"]["n"] == 1


def test_a_moved_study_folder_keeps_its_evaluations(tmp_path):
    finished_study(tmp_path)
    shutil.move(tmp_path / "out", tmp_path / "moved")
    moved = load_study(study_file(tmp_path))
    moved = type(moved)(**{**moved.__dict__, "output_dir": tmp_path / "moved"})
    results = build_report(moved)
    assert results["left_out"] == {} and results["conditions"]["grpo"]["summary"]["pass@1"]["n"] == 2
    assert same_model("/a/out/runs/x/seed0", "/b/out/runs/x/seed0", root=Path("/b/out"))
    assert not same_model("/a/out/runs/x/seed1", "/b/out/runs/x/seed0", root=Path("/b/out"))
    assert not same_model("/a/other", "/b/out/runs/x/seed0")


def test_report_only_after_the_eval_options_changed_marks_the_runs_and_the_options(tmp_path, capsys):
    finished_study(tmp_path)
    path = study_file(tmp_path, {**EVAL, "n": 4, "limit": 8})  # the study file changed after the evaluations
    assert main(["compare", "--study", path, "--report_only"]) == 0
    out = capsys.readouterr().out
    names = "the starting model, grpo seed 0, grpo seed 1, sas seed 0, sas seed 1"
    expected = (
        "**WARNING: 5 evaluation(s) were made with other `sas-trl eval` options than the study's `eval:` gives now "
        f"(limit: (unset) -> 8; n: 2 -> 4): {names}. Their numbers are what the old options measured; run "
        "`sas-trl compare` without --report_only to evaluate them again.**"
    )
    assert expected in out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["eval_option_changes"]["grpo seed 0"] == {"limit": ["(unset)", "8"], "n": ["2", "4"]}
    assert results["conditions"]["grpo"]["summary"]["pass@1"]["n"] == 2  # kept, and marked
    assert main(["compare", "--study", study_file(tmp_path), "--report_only"]) == 0  # back as evaluated: no mark
    assert "WARNING" not in capsys.readouterr().out


def test_option_changes_name_each_flag():
    assert option_changes(["--n", "2", "--no_progress"], ["--n", "2"]) == {"no_progress": ("set", "(unset)")}
    assert option_changes(["--benchmarks", "a"], ["--benchmarks", "a,b"]) == {"benchmarks": ("a", "a,b")}
    assert option_changes(None, ["--n", "2"]) == {"n": ("(unset)", "2")}


def test_a_trajectory_evaluation_of_another_checkpoint_is_left_out(tmp_path):
    study = finished_study(tmp_path, trajectory={"every": 4})
    start, _ = runner.starting_model(study)
    from sas_trl.compare.trajectory import base_dir, step_dir

    evaluate(study, base_dir(study), start, 0.2)
    for run in plan_runs(study):
        for step in (4, 8, 12):
            evaluate(study, step_dir(run, step), str(run.dir / f"checkpoint-{step}"), 0.4)
    run = plan_runs(study)[0]
    evaluate(study, step_dir(run, 8), str(run.dir / "checkpoint-8"), 0.9, evaluated=str(run.dir / "checkpoint-4"))
    results = build_report(study)
    assert list(results["left_out"]) == ["grpo seed 0 at step 8"]
    assert [p["step"] for p in results["conditions"]["grpo"]["trajectory"]["0"]] == [0, 4, 12]
    assert [p["step"] for p in results["conditions"]["grpo"]["trajectory"]["1"]] == [0, 4, 8, 12]
