"""sas_trl.training.run: the built-in default end to end, two processes, kill and resume, wandb."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from cli_helpers import QUICK, ROOT, sas_trl

from sas_trl.cli import main
from sas_trl.errors import RecipeError
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
    process = subprocess.Popen(
        [sys.executable, "-m", "sas_trl.cli", "train", "--recipe", "recipes/tiny_cpu.yaml", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (out / "checkpoint-4" / "trainer_state.json").is_file():
        assert process.poll() is None and time.time() < deadline, "the run ended before its 4th step"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # a crash: no chance to clean up, maybe in the middle of a save
    process.wait()
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


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    from sas_trl.training.run import resolve_resume

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


class OneProcess:
    """What `prepare_model` needs of accelerate's PartialState, for one process."""

    is_main_process = True
    main_process_first = staticmethod(contextlib.nullcontext)


def test_the_warm_up_cache_is_keyed_by_the_settings_that_made_it(tmp_path, capsys):
    from sas_trl.training.run import WARMUP_KEY, prepare_model

    def prepare(*flags):
        run_args, args, model_args, _ = parse(
            ["--recipe", "recipes/tiny_cpu.yaml", *flags, "--output_dir", str(tmp_path)]
        )
        path = prepare_model(run_args, model_args, args, OneProcess())
        return path, capsys.readouterr().out

    base = ["--sft_warmup_steps", "2"]
    path, printed = prepare(*base)
    weights = tmp_path / "base_model" / "model.safetensors"
    assert path == str(tmp_path / "base_model") and "warm-up of builtin:tiny on the built-in task, 2 steps" in printed
    key = json.loads((tmp_path / "base_model" / WARMUP_KEY).read_text())
    assert (key["sft_warmup_steps"], key["seed"], key["builtin_min_terms"], key["builtin_max_terms"]) == (2, 0, 2, 4)
    built = weights.read_bytes()

    _, printed = prepare(*base)  # same settings: reused, no warm-up
    assert "reusing the warmed-up builtin:tiny" in printed and "warm-up of" not in printed
    assert weights.read_bytes() == built

    for flags, change in (
        (["--sft_warmup_steps", "3"], "sft_warmup_steps: 2 -> 3"),
        ([*base, "--seed", "1"], "seed: 0 -> 1"),
        ([*base, "--builtin_max_terms", "3"], "builtin_max_terms: 4 -> 3"),
        ([*base, "--builtin_min_terms", "3"], "builtin_min_terms: 2 -> 3"),
    ):
        _, printed = prepare(*flags)
        assert f"rebuilding {tmp_path / 'base_model'}" in printed and change in printed, printed
        assert "warm-up of builtin:tiny" in printed

    (tmp_path / "base_model" / WARMUP_KEY).unlink()  # a cache from before the key, or a build cut short
    _, printed = prepare(*base)
    assert "without a record of its settings" in printed and weights.read_bytes() == built  # same settings, same model


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
    from sas_trl.training.run import finished_message

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
