"""A study's finished runs' results kept in the repository (`results_dir`, compare/kept.py): kept after each run
(no model, no checkpoint, small), skipped on a re-run without the study folder (no training, no starting model),
the report rebuilt from them alike, a stale one refused, no credential kept.

The runs' commands are replaced by a fake that writes what `sas-trl train` and `sas-trl eval` write (seconds
instead of minutes); tests/test_compare_run.py runs the smoke study for real, kept results included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT, SMOKE_EVAL, write_study

from sas_trl.cli import main
from sas_trl.compare import build_report, kept, load_study, plan_runs, runner
from sas_trl.errors import UserError

WEIGHTS = 64 * 1024  # bytes of each fake model file: a kept copy of one would break the size bound


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def fake_commands(monkeypatch) -> list[list[str]]:
    """Replace the runs' processes and the starting model's warm-up by fakes; returns the commands run."""
    ran: list[list[str]] = []

    def run_logged(command, log, what, env=None):
        ran.append(command)
        if "train" in command:
            recipe = Path(_value(command, "--recipe"))
            folder = recipe.parent
            steps = yaml.safe_load(recipe.read_text()).get("max_steps", 12)
            for step in range(4, steps + 1, 4):
                checkpoint = folder / f"checkpoint-{step}"
                checkpoint.mkdir(parents=True, exist_ok=True)
                (checkpoint / "model.safetensors").write_bytes(bytes([step]) * WEIGHTS)
                (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": []}))
            history = [
                {"step": s, "reward": 0.1 * s, "entropy": 0.5, "frac_reward_zero_std": 0.25, "sas/truncated_frac": 0}
                for s in range(1, steps + 1)
            ]
            (folder / "log_history.json").write_text(json.dumps(history))
            (folder / "model.safetensors").write_bytes(folder.name.encode() * WEIGHTS)
            (folder / "run_info.json").write_text("{}")
            return
        out = Path(_value(command, "--output_dir"))
        out.mkdir(parents=True, exist_ok=True)
        model = _value(command, "--model")
        pass1 = 0.4 + 0.01 * len(model) % 0.3  # differs between runs, the same on every call
        average = {"pass@1": pass1, "mean_tokens": 10.0 + len(out.parts), "truncated": 0.0}
        (out / "eval_results.json").write_text(json.dumps({"model": model, "average": average}))
        (out / "eval_samples.jsonl").write_text('{"sample": "x"}\n' * 2000)  # never kept

    def prepare(study):
        model, _ = runner.starting_model(study)
        Path(model).mkdir(parents=True, exist_ok=True)
        (Path(model) / "model.safetensors").write_bytes(b"start" * WEIGHTS)
        ran.append(["prepare", model])
        return model

    monkeypatch.setattr(runner, "_run_logged", run_logged)
    monkeypatch.setattr(runner, "prepare_starting_model", prepare)
    return ran


def study_path(tmp_path, eval_options=None, **extra) -> Path:
    conditions = {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}}
    path = Path(write_study(tmp_path, conditions, (0, 1), eval_options, {"every": 4}))
    data = yaml.safe_load(path.read_text())
    data.update(results_dir=str(tmp_path / "kept"), **extra)
    path.write_text(yaml.safe_dump(data))
    return path


def finished(tmp_path, monkeypatch, **kwargs):
    """A study run to the end (fake commands), its report written; returns (study, results, commands run)."""
    ran = fake_commands(monkeypatch)
    study = load_study(study_path(tmp_path, **kwargs))
    runner.run_study(study, echo=lambda line: None)
    return study, build_report(study), ran


def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_finished_run_keeps_its_results_and_never_its_model(tmp_path, monkeypatch):
    study, _, _ = finished(tmp_path, monkeypatch)
    assert kept.base_available(study)
    assert set(files_of(kept.base_dir(study))) == {
        "eval_results.json",
        "made_from.json",
        "trajectory/eval_results.json",
        "trajectory/settings.json",
    }
    for run in plan_runs(study):
        folder = kept.run_dir(study, run)
        files = files_of(folder)
        assert set(files) == {
            "made_from.json",
            "log_history.json",
            "eval/eval_results.json",
            "eval/made_from.json",
            "trajectory/settings.json",
            *(f"trajectory/step-{s}/eval_results.json" for s in (4, 8, 12)),
        }
        assert sum(files.values()) < 100_000  # no weights, no samples
        for name in set(files) - {"made_from.json"}:  # the same bytes as the run's folder
            assert (folder / name).read_bytes() == (run.dir / name).read_bytes()
        recipe = json.loads((folder / "made_from.json").read_text())["recipe"]
        assert recipe["output_dir"] == f"$OUTPUT_DIR/runs/{run.condition}/seed{run.seed}"  # no machine's path
        assert recipe["model_name_or_path"] == "$OUTPUT_DIR/base_model" and recipe["seed"] == run.seed
        assert kept.complete(study, run) and not kept.kept_only(study, run)  # the study folder has it


def test_kept_runs_are_skipped_without_the_study_folder_and_the_report_is_rebuilt_alike(tmp_path, monkeypatch):
    study, before, ran = finished(tmp_path, monkeypatch)
    before_text = (study.output_dir / "results.json").read_text()
    shutil.rmtree(study.output_dir)  # a fresh clone: only the repository's kept results
    ran.clear()
    said: list[str] = []
    runner.run_study(study, echo=said.append, jobs=2)
    assert ran == []  # no training, no evaluation, no starting model
    assert not (study.output_dir / "runs").exists() and not (study.output_dir / "base_model").exists()
    assert said[0] == f"compare: run 1/4 (grpo seed 0): kept in {kept.run_dir(study, plan_runs(study)[0])}, skipped"
    assert runner.print_commands(study) == []  # nothing for a scheduler either

    assert main(["compare", "--study", str(study.path), "--report_only"]) == 0
    assert (study.output_dir / "results.json").read_text() == before_text  # the same numbers, every one
    assert json.loads(before_text)["warnings"] == [] and before["missing"] == []
    assert {"report.md", "training_curves.png", "trajectory.png"} <= set(files_of(study.output_dir))


def test_only_the_runs_not_kept_run_again(tmp_path, monkeypatch):
    study, _, ran = finished(tmp_path, monkeypatch)
    shutil.rmtree(study.output_dir)
    gone = plan_runs(study)[3]  # sas seed 1: its kept results deleted
    shutil.rmtree(kept.run_dir(study, gone))
    ran.clear()
    said: list[str] = []
    runner.run_study(study, echo=said.append, jobs=2)
    trained = [c for c in ran if "train" in c]
    assert [Path(_value(c, "--recipe")).parent for c in trained] == [gone.dir]
    assert ran[0][0] == "prepare"  # a run to train needs the starting model
    assert sum("kept in" in line for line in said) == 3
    assert not plan_runs(study)[0].dir.exists()  # a kept run gets no folder
    assert kept.complete(study, gone)  # kept again once finished


def test_a_starting_model_other_than_the_kept_runs_one_is_refused(tmp_path, monkeypatch):
    # A fresh machine whose warm-up came out otherwise: its new runs would be mixed with the kept ones.
    study, _, ran = finished(tmp_path, monkeypatch)
    shutil.rmtree(study.output_dir)
    shutil.rmtree(kept.run_dir(study, plan_runs(study)[3]))  # one run left to train
    ran.clear()

    def other_start(study):
        model, _ = runner.starting_model(study)
        Path(model).mkdir(parents=True, exist_ok=True)
        (Path(model) / "model.safetensors").write_bytes(b"other" * WEIGHTS)
        return model

    monkeypatch.setattr(runner, "prepare_starting_model", other_start)
    with pytest.raises(UserError, match=r"is not the one the runs kept in .* started from \(sha256:"):
        runner.run_study(study, echo=lambda line: None)
    assert ran == []  # nothing trained or evaluated


def test_a_kept_run_whose_recipe_changed_is_refused_naming_the_keys(tmp_path, monkeypatch):
    study, _, ran = finished(tmp_path, monkeypatch)
    shutil.rmtree(study.output_dir)
    ran.clear()
    changed = load_study(study_path(tmp_path))
    conditions = {**changed.conditions, "sas": {"sas_ratio": 0.5}}
    changed = type(changed)(**{**changed.__dict__, "conditions": conditions})
    with pytest.raises(UserError, match=r"sas seed 0's results trained from another recipe \(keys that differ: sas_r"):
        runner.run_study(changed, echo=lambda line: None)
    with pytest.raises(UserError, match="keys that differ: sas_ratio"):
        runner.print_commands(changed)
    assert ran == [] and not (study.output_dir / "runs").exists()  # refused before any work


def test_the_report_refuses_runs_trained_from_a_recipe_other_than_the_studys_now(tmp_path, monkeypatch):
    # A study file edited after its runs, then --report_only: their numbers are not reported under the new settings,
    # whether the report reads them from the study folder or from the kept results.
    study, _, ran = finished(tmp_path, monkeypatch)
    changed = load_study(study_path(tmp_path))
    conditions = {**changed.conditions, "sas": {"sas_ratio": 0.5}}
    changed = type(changed)(**{**changed.__dict__, "conditions": conditions})
    report = study.output_dir / "report.md"
    before = report.read_bytes()
    with pytest.raises(UserError, match=r"runs/sas/seed0 was trained from another recipe \(keys that differ: sas_r"):
        build_report(changed)  # read from the study folder
    shutil.rmtree(study.output_dir / "runs")
    with pytest.raises(UserError, match=r"sas seed 0's results trained from another recipe \(keys that differ: sas_r"):
        build_report(changed)  # read from the kept results
    assert report.read_bytes() == before  # the last report stands
    build_report(study)  # the study as its runs were made: reported from the kept results


def test_a_damaged_kept_recipe_record_is_named_not_reported_as_a_changed_recipe(tmp_path, monkeypatch):
    study, _, ran = finished(tmp_path, monkeypatch)
    shutil.rmtree(study.output_dir)
    record = kept.run_dir(study, plan_runs(study)[1]) / "made_from.json"
    record.write_text("nope")
    ran.clear()
    with pytest.raises(UserError, match=r"made_from.json is not a readable record of .*'s recipe; delete that folder"):
        runner.run_study(study, echo=lambda line: None)
    assert ran == []


def test_a_kept_evaluation_made_with_other_options_is_said_and_marked(tmp_path, monkeypatch):
    study, _, ran = finished(tmp_path, monkeypatch)
    shutil.rmtree(study.output_dir)
    ran.clear()
    data = yaml.safe_load(study.path.read_text())
    data["eval"] = {**SMOKE_EVAL, "n": 4}
    data["trajectory"] = {"every": 4, "eval": {"n": 2}}  # the trajectory's evaluation as it was
    study.path.write_text(yaml.safe_dump(data))
    said: list[str] = []
    runner.run_study(load_study(study.path), echo=said.append)
    assert ran == []  # the model is not kept: nothing to evaluate again
    assert "its evaluation was made with other eval options (n: 2 -> 4)" in said[0]
    results = build_report(load_study(study.path))
    assert results["eval_option_changes"]["grpo seed 0"] == {"n": ["2", "4"]}
    assert results["conditions"]["grpo"]["summary"]["pass@1"]["n"] == 2  # kept, and marked
    assert any("results kept in the study's results_dir without their model" in w for w in results["warnings"])


def test_no_credential_is_kept(tmp_path, monkeypatch):
    named = "hf_n4medS3cretOfTheCondition"
    environment = "s3cretFromTheEnvironment"
    monkeypatch.setenv("WANDB_API_KEY", environment)
    ran = fake_commands(monkeypatch)
    path = study_path(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["conditions"]["grpo"]["env"] = {"HF_TOKEN": named}
    data["conditions"]["grpo"]["run_name"] = f"run-{environment}"  # a credential by value, in a plain key
    path.write_text(yaml.safe_dump(data))
    study = load_study(path)
    runner.run_study(study, echo=lambda line: None)
    assert ran
    folder = kept.run_dir(study, plan_runs(study)[0])
    texts = {p: p.read_text() for p in Path(study.results_dir).rglob("*") if p.is_file()}
    assert not [p for p, text in texts.items() if named in text or environment in text]
    recipe = json.loads((folder / "made_from.json").read_text())["recipe"]
    assert recipe["env"] == {"HF_TOKEN": "<redacted>"} and recipe["run_name"] == "run-<redacted>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, "results_dir must be text, got 3"),
        ("", "results_dir must name a folder, got ''"),
        ("OUT/kept", "results_dir 'OUT/kept' lies inside output_dir"),
        ("OUT", "results_dir 'OUT' lies inside output_dir"),
        ("PARENT", "results_dir 'PARENT' holds output_dir"),
        ("PARENT/a_file", "results_dir 'PARENT/a_file' is an existing file, not a folder"),
    ],
)
def test_a_bad_results_dir_fails_in_one_line_naming_the_key(tmp_path, capsys, value, expected):
    path = study_path(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    data = yaml.safe_load(path.read_text())
    if isinstance(value, str):
        value = value.replace("OUT", data["output_dir"]).replace("PARENT", str(tmp_path))
        expected = expected.replace("OUT", data["output_dir"]).replace("PARENT", str(tmp_path))
    data["results_dir"] = value
    path.write_text(yaml.safe_dump(data))
    assert main(["compare", "--study", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_linked_folder_in_results_dir_is_refused_before_any_work(tmp_path, monkeypatch):
    ran = fake_commands(monkeypatch)
    study = load_study(study_path(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "sas").symlink_to(elsewhere)
    with pytest.raises(UserError, match=r"kept/sas is a symbolic link .* never through a link"):
        runner.run_study(study, echo=lambda line: None)
    assert ran == [] and list(elsewhere.iterdir()) == []
