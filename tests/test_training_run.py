"""sas_trl.training.run: the built-in default end to end, two processes, kill and resume, wandb."""

from __future__ import annotations

import json

import pytest
from cli_helpers import QUICK, ROOT, kill_when, sas_trl

from sas_trl.cli import main
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


@pytest.mark.slow
def test_tiny_cpu_recipe_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recipe resolved" in printed and "sas_ratio: 0.3" in printed
    assert "step 2/2" in printed and "zeroed" in printed and "reward" in printed
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        "recipe.yaml",
        "resolved_recipe.yaml",
        "train_metrics.json",
        "run_info.json",
        "base_model/config.json",
    ):
        assert (out / name).is_file(), name
    info = json.loads((out / "run_info.json").read_text())
    assert (info["num_processes"], info["global_step"]) == (1, 2)
    card = (out / "README.md").read_text()
    assert "sas_ratio" in card and "`0.3`" in card and "sas/zeroed_frac" in card and "base_model: builtin:tiny" in card
    assert "model_name_or_path: builtin:tiny" in card
    # The saved resolved recipe is itself a valid recipe that reproduces the run's settings.
    _, args, _, resolved = parse(["--recipe", str(out / "resolved_recipe.yaml")])
    assert args.max_steps == 2 and resolved["output_dir"] == str(out)


@pytest.mark.slow
def test_two_processes_through_the_cli(tmp_path):
    out = tmp_path / "run"
    result = sas_trl(
        "train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--num_processes", "2", "--output_dir", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.distributed.run" in result.stdout
    info = json.loads((out / "run_info.json").read_text())
    assert info["num_processes"] == 2 and "MULTI_CPU" in info["distributed_type"]
    assert info["global_step"] == 2


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_save(tmp_path):
    out = tmp_path / "run"
    args = [*QUICK, "--max_steps", "40", "--save_steps", "2", "--output_dir", str(out)]
    # A crash at step 4: no chance to clean up, maybe in the middle of a save.
    done = out / "checkpoint-4" / "trainer_state.json"
    kill_when(["train", "--recipe", "recipes/tiny_cpu.yaml", *args], done, "the run ended before its 4th step")
    # A checkpoint is complete once its trainer_state.json is written (last); a half-written one is skipped.
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    assert saved and saved[-1] >= 4

    result = sas_trl(
        "train",
        "--recipe",
        "recipes/tiny_cpu.yaml",
        *args,
        "--max_steps",
        str(saved[-1] + 2),
        "--resume_from_checkpoint",
        "last",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / f"checkpoint-{saved[-1] + 2}" / "trainer_state.json").read_text())
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps[-2:] == [saved[-1] + 1, saved[-1] + 2]  # continued after the last save, lost nothing before it


@pytest.mark.slow
def test_wandb_offline_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--recipe",
                "recipes/tiny_cpu.yaml",
                *QUICK,
                "--output_dir",
                str(out),
                "--report_to",
                "wandb",
                "--run_name",
                "tiny-wandb-test",
            ]
        )
        == 0
    )
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # An offline run is one protobuf log; its metric names, config keys and run name are stored as plain bytes.
    log = next(runs[0].glob("*.wandb")).read_bytes()
    for needle in (
        b"train/sas/zeroed_frac",
        b"train/sas/steps_per_rollout",
        b"train/reward",
        b"sas_ratio",
        b"tiny-wandb-test",
    ):
        assert needle in log, needle
