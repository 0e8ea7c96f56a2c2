"""`sas-trl compare` end to end on the built-in task: the smoke study trains, a killed study (two runs at once)
loses nothing, a re-run skips what finished."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from cli_helpers import ROOT, kill_when


def compare(study, *flags, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "sas_trl.cli", "compare", "--study", str(study), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


def finished_files(run_dir):
    """The files of a finished run: its model, its evaluation and its trajectory's evaluations."""
    files = [run_dir / "model.safetensors", run_dir / "eval" / "eval_results.json"]
    files += [run_dir / "trajectory" / f"step-{s}" / "eval_results.json" for s in (4, 8, 12)]
    return files if all(f.is_file() for f in files) else None


@pytest.mark.slow
def test_smoke_study_trains_and_with_two_jobs_a_killed_study_loses_nothing(tmp_path):
    study = yaml.safe_load((ROOT / "recipes" / "studies" / "tiny_smoke.yaml").read_text())
    study["output_dir"] = str(tmp_path / "out")
    study["results_dir"] = str(tmp_path / "kept")  # each finished run's results, as a repository keeps them
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    runs = tmp_path / "out" / "runs"

    # Two runs at once, killed (the whole process group, like a lost terminal) once a third run has started:
    # at least one run finished, others are mid-way. Runs go seed-major: grpo seed 0, sas seed 0, grpo seed 1, ...
    done = runs / "grpo" / "seed1" / "train.log"
    kill_when(["compare", "--study", str(path), "--jobs", "2"], done, "the study ended before its third run", 600)
    names = {f"{c} seed {s}": runs / c / f"seed{s}" for c in ("grpo", "sas") for s in (0, 1)}
    finished = {name: finished_files(folder) for name, folder in names.items() if finished_files(folder)}
    assert finished and len(finished) < 4
    kept = {p: p.stat().st_mtime_ns for files in finished.values() for p in files}

    again = compare(path, "--jobs", "2")
    assert again.returncode == 0, again.stderr
    for name in finished:
        assert f"({name}): done earlier, skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished runs were not touched
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["missing"] == [] and set(results["conditions"]) == {"grpo", "sas"}
    for condition in ("grpo", "sas"):
        c = results["conditions"][condition]
        assert c["summary"]["pass@1"]["n"] == 2
        # It trained: rollouts within groups disagreed on most steps, so both conditions had a gradient.
        for seed in ("0", "1"):
            assert c["learning_signal"]["runs"][seed]["no_signal_share"] < 0.5
            assert [p["step"] for p in c["trajectory"][seed]] == [0, 4, 8, 12]
        assert c["stability"]["final_minus_peak"]["n"] == 2
    assert "vs_reference" in results["conditions"]["sas"] and "(n=2)" in again.stdout
    assert not any("learned nothing" in w for w in results["warnings"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Power" in report and "## Stability along training" in report and "](trajectory.png)" in report

    third = compare(path)  # one job at a time: the same guarantees, everything skipped
    assert third.returncode == 0 and third.stdout.count("done earlier, skipped") == 4

    # The kept results alone (a fresh clone: no model, checkpoint or samples) rebuild the same results.json.
    kept = tmp_path / "kept"
    for folder in [kept / c / f"seed{s}" for c in ("grpo", "sas") for s in (0, 1)]:
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert {p.suffix for p in files} == {".json"} and sum(p.stat().st_size for p in files) < 100_000
        assert not [p for p in files if "checkpoint" in str(p) or "samples" in p.name]
    original = (tmp_path / "out" / "results.json").read_text()
    for name in ("runs", "base_eval", "base_model"):
        shutil.rmtree(tmp_path / "out" / name)
    rebuilt = compare(path, "--report_only")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "out" / "results.json").read_text() == original
    fourth = compare(path)  # and nothing is trained or evaluated again
    assert fourth.returncode == 0 and fourth.stdout.count("skipped") == 4
    assert not (tmp_path / "out" / "runs").exists() and not (tmp_path / "out" / "base_model").exists()


def small_study(tmp_path, base_text: str, eval_options: dict | None = None):
    """A study over a copy of the smoke study's base recipe (so a test can edit the base's content)."""
    from sas_trl.compare import load_study

    base = tmp_path / "base.yaml"
    base.write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\n{base_text}")
    study = {
        "base_recipe": str(base),
        "output_dir": str(tmp_path / "out"),
        "seeds": [0],
        "reference": "grpo",
        "conditions": {"grpo": {"sas_strategy": "none"}},
        "eval": eval_options or {"benchmarks": "addition", "n": 2, "max_tokens": 16},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return load_study(path)


def test_a_trained_run_whose_base_recipe_content_changed_is_refused_naming_the_keys(tmp_path):
    from sas_trl.compare.records import check_training_record
    from sas_trl.compare.runner import plan_runs, write_run_recipe
    from sas_trl.errors import UserError

    study = small_study(tmp_path, "max_steps: 4\nlearning_rate: 1.0e-5\n")
    (run,) = plan_runs(study)
    write_run_recipe(study, run)
    check_training_record(run)
    made = json.loads((run.dir / "made_from.json").read_text())["recipe"]
    assert made["max_steps"] == 4 and made["seed"] == 0 and "base" not in made  # the base chain resolved
    (tmp_path / "base.yaml").write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nmax_steps: 8\n")
    write_run_recipe(study, run)  # the run's own file names the base by path: unchanged
    check_training_record(run)  # nothing trained yet: the new recipe is simply recorded
    assert json.loads((run.dir / "made_from.json").read_text())["recipe"]["max_steps"] == 8
    (run.dir / "checkpoint-2").mkdir()  # training started from that recipe
    (tmp_path / "base.yaml").write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nmax_steps: 6\n")
    with pytest.raises(UserError, match=r"trained from another recipe \(keys that differ: max_steps; a base recipe"):
        check_training_record(run)
    (tmp_path / "base.yaml").write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nmax_steps: 8\n")
    check_training_record(run)  # the recipe it was made from: resumed as before


def test_training_in_a_run_folder_by_a_process_the_study_did_not_start_is_refused(tmp_path):
    from sas_trl.compare.records import check_training_record
    from sas_trl.compare.runner import plan_runs, write_run_recipe
    from sas_trl.errors import UserError

    study = small_study(tmp_path, "max_steps: 4\n")
    (run,) = plan_runs(study)
    write_run_recipe(study, run)
    (run.dir / "checkpoint-2").mkdir()  # `sas-trl train` run by hand into the folder: no record of the study's
    with pytest.raises(UserError, match=r"grpo/seed0 holds training this study did not start .*no readable made_"):
        check_training_record(run)
    assert not (run.dir / "made_from.json").exists()  # not adopted
    (run.dir / "made_from.json").write_text("{cut sh")  # a damaged record is no record
    with pytest.raises(UserError, match=r"holds training this study did not start"):
        check_training_record(run)
    (run.dir / "made_from.json").unlink()
    (run.dir / "checkpoint-2").rmdir()
    check_training_record(run)  # the study's own run
    saved = json.loads((run.dir / "made_from.json").read_text())["recipe"]
    (run.dir / "checkpoint-2").mkdir()
    # training saves the recipe it ran with compare's `--resume_from_checkpoint last`: the same run
    trained = {**saved, "resume_from_checkpoint": "last"}
    (run.dir / "resolved_recipe.yaml").write_text(yaml.safe_dump(trained))
    check_training_record(run)
    # another process trained over the folder with other settings (the study's record unchanged)
    (run.dir / "resolved_recipe.yaml").write_text(yaml.safe_dump({**trained, "max_steps": 9, "seed": 3}))
    with pytest.raises(
        UserError,
        match=r"another recipe than this study's \(.*resolved_recipe.yaml: keys that "
        r"differ: max_steps, seed\)",
    ):
        check_training_record(run)


def test_an_evaluation_made_from_other_options_model_or_baseline_is_made_again(tmp_path, monkeypatch):
    from sas_trl.compare import runner

    ran = []

    def fake_run(command, log, what, env=None):
        ran.append(command)
        folder = log.parent
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "eval_results.json").write_text("{}")

    monkeypatch.setattr(runner, "_run_logged", fake_run)
    said = []
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"w1")
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"b": 1}')
    folder = tmp_path / "eval"

    def step(options):
        study = small_study(tmp_path, "", options)
        record = runner.eval_record(study, str(model), baseline)
        runner.run_eval_step(["sas-trl", "eval"], folder, record, "evaluating x", said.append)

    options = {"benchmarks": "addition", "n": 2, "max_tokens": 16}
    step(options)
    step(options)
    assert ran == [["sas-trl", "eval"]] and said == []  # made once, then skipped
    step({**options, "n": 4})
    assert ran[-1] == ["sas-trl", "eval", "--overwrite"] and "the eval options changed" in said[-1]
    (model / "model.safetensors").write_bytes(b"w2")
    step({**options, "n": 4})
    assert ran[-1][-1] == "--overwrite" and "the model's files changed" in said[-1]
    baseline.write_text('{"b": 2}')
    step({**options, "n": 4})  # only the baseline: the samples stay valid, AES is recomputed
    assert ran[-1] == ["sas-trl", "eval"] and "the baseline's results changed" in said[-1]
    assert len(ran) == 4
    (folder / "made_from.json").unlink()  # results of unknown origin are not trusted
    step({**options, "n": 4})
    assert len(ran) == 5 and "what its results were made from is not recorded" in said[-1]


def test_made_from_records_no_credential_of_a_condition_env(tmp_path):
    from sas_trl.compare.records import check_training_record
    from sas_trl.compare.runner import plan_runs, write_run_recipe

    secret = "hf_s3cr3tV4lue0fAC0ndition"
    study = small_study(tmp_path, f"max_steps: 4\nenv: {{HF_TOKEN: {secret}, SAS_TRL_PLAIN: kept}}\n")
    (run,) = plan_runs(study)
    write_run_recipe(study, run)
    check_training_record(run)
    text = (run.dir / "made_from.json").read_text()
    assert secret not in text
    assert json.loads(text)["recipe"]["env"] == {"HF_TOKEN": "<redacted>", "SAS_TRL_PLAIN": "kept"}
    check_training_record(run)  # the redacted record still matches the same recipe
