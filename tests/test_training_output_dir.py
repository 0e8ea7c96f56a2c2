"""sas_trl.training.output_dir: resume values, half-written checkpoints, finished runs, another recipe's run."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_helpers import QUICK, ROOT

from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.training.output_dir import (
    RESUME_LAST,
    RESUME_OFF,
    OutputPlan,
    differing_settings,
    finished_message,
    plan_output_dir,
    resolve_resume,
    resume_kind,
    saved_training_settings,
    training_settings,
)
from sas_trl.training.recipe_files import dump_recipe
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "off"),
        ("", "off"),
        ("false", "off"),
        ("False", "off"),
        ("none", "off"),
        ("NONE", "off"),
        ("last", "last"),
        ("LAST", "last"),
        ("true", "last"),
        ("True", "last"),
        ("checkpoint-4", "path"),
        ("runs/a/checkpoint-4", "path"),
        ("null", "path"),  # not an "off" spelling of resume_from_checkpoint: a folder name like any other
        ("lastest", "path"),
    ],
)
def test_one_reading_of_the_resume_spellings(value, kind):
    assert resume_kind(value) == kind


def test_every_resume_spelling_means_the_same_in_the_plan_and_the_resolution(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text(json.dumps({"global_step": 3, "max_steps": 3}))
    run_args, args, model_args, recipe = parse(
        ["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path), "--max_steps", "3"]
    )
    for spelling in (*RESUME_LAST, "LAST", "True"):
        assert resolve_resume(spelling, tmp_path) == str(tmp_path / "checkpoint-3")
        args.resume_from_checkpoint = spelling  # a finished run resumed: nothing to do
        plan = plan_output_dir(run_args, args, model_args, recipe, main_process=False)
        assert plan.resume == str(tmp_path / "checkpoint-3") and "step 3 of max_steps 3" in plan.finished
    for spelling in (*RESUME_OFF, None, "NONE", "False"):
        assert resolve_resume(spelling, tmp_path) is None
        args.resume_from_checkpoint = spelling  # not resuming, and no finished run in the folder
        assert plan_output_dir(run_args, args, model_args, recipe, main_process=False) == OutputPlan(None)


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert resolve_resume("last", tmp_path) == str(tmp_path / "checkpoint-4")
    assert resolve_resume("last", tmp_path / "missing") is None
    assert resolve_resume(None, tmp_path) is None
    with pytest.raises(RecipeError, match="checkpoint-6"):
        resolve_resume(str(tmp_path / "checkpoint-6"), tmp_path)


def test_training_settings_leave_out_where_a_run_is_written(tmp_path):
    run_args, args, model_args, recipe = parse(["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path)])
    now = training_settings(run_args, args, model_args)
    assert "output_dir" not in now and "logging_steps" not in now and now["sas_ratio"] == 0.3
    assert now["lr_scheduler_type"] == args.lr_scheduler_type.value  # enums as their values
    saved = tmp_path / "resolved_recipe.yaml"
    saved.write_text(dump_recipe({**recipe, "output_dir": "elsewhere", "sas_ratio": 0.5}))
    before = saved_training_settings(saved)
    assert differing_settings(before, {**now, "env": {}}) == {"sas_ratio": (0.5, 0.3)}
    saved.write_text("unknown_key: 1\n")
    assert saved_training_settings(saved) is None  # cannot be built any more: "cannot compare"


@pytest.mark.slow
def test_a_finished_run_is_neither_trained_again_nor_replaced_by_another_recipe(tmp_path, capsys):
    out = tmp_path / "run"
    # Weight decay moves the weights at every optimizer step, even when 2 warm-up steps leave every reward at 0.
    base = ["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--weight_decay", "0.1", "--output_dir", str(out)]
    assert main(base) == 0
    weights = (out / "model.safetensors").read_bytes()
    checkpoints = {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")}
    assert "checkpoint-2" in checkpoints
    capsys.readouterr()

    # Resuming a finished run: nothing trained, nothing written, and it says so.
    for _ in range(2):
        assert main([*base, "--resume_from_checkpoint", "last"]) == 0
        printed = capsys.readouterr().out
        assert f"{out} is a finished run (step 2 of max_steps 2): nothing to resume, nothing changed" in printed
        assert "raise --max_steps" in printed and "trained" not in printed
        assert (out / "model.safetensors").read_bytes() == weights
        assert {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")} == checkpoints

    # Another recipe in the same folder: refused, naming the folder and what differs.
    assert main([*base, "--sas_strategy", "none", "--learning_rate", "0.001"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert f"output_dir {str(out)!r} holds a finished run of a different recipe" in captured.err
    assert "learning_rate: 5e-05 -> 0.001" in captured.err and "sas_strategy: 'both' -> 'none'" in captured.err
    assert "--overwrite_output_dir true" in captured.err
    assert (out / "model.safetensors").read_bytes() == weights

    # Raising max_steps continues the finished run.
    assert main([*base, "--max_steps", "3", "--resume_from_checkpoint", "last"]) == 0
    assert json.loads((out / "run_info.json").read_text())["global_step"] == 3
    continued = (out / "model.safetensors").read_bytes()
    assert continued != weights
    capsys.readouterr()

    # --overwrite_output_dir true replaces it: the other recipe's checkpoints go first.
    assert main([*base, "--sas_strategy", "none", "--overwrite_output_dir", "true"]) == 0
    printed = capsys.readouterr().out
    assert "removed the earlier run's checkpoint-2, checkpoint-3, run_info.json" in printed
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (out / "model.safetensors").read_bytes() != continued
    assert yaml.safe_load((out / "resolved_recipe.yaml").read_text())["sas_strategy"] == "none"


def test_what_counts_as_a_finished_run(tmp_path):
    def checkpoint(step: int, max_steps: int) -> str:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
        return str(folder)

    early, last = checkpoint(4, 10), checkpoint(10, 10)
    assert finished_message(tmp_path, early, 10) is None  # interrupted: resume it
    assert finished_message(tmp_path, last, 12) is None  # max_steps raised: train on
    assert "step 10 of max_steps 10" in finished_message(tmp_path, last, 10)
    assert "step 10 of max_steps 10" in finished_message(tmp_path, last, -1)  # epochs: the run's own step count
    assert f"final model is not in {tmp_path}; the weights are in {last}" in finished_message(tmp_path, last, 10)
    (tmp_path / "run_info.json").write_text(json.dumps({"global_step": 10}))
    assert f"its model is in {tmp_path}" in finished_message(tmp_path, last, 10)
    assert "step 10 of" in finished_message(tmp_path, early, 10)  # `last` found an older one: the final save counts
    assert finished_message(tmp_path, early, 10, latest=False) is None  # an earlier checkpoint named on purpose
    assert "step 10 of" in finished_message(tmp_path, None, 10)  # finished without checkpoints (save_strategy no)
