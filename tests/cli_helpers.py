"""Shared by the command-line and training tests: the repository root, the shipped recipes, a short run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Later stages start from an earlier stage's output folder, which must exist to validate: tests/test_baselines.py.
LATER_STAGES = [
    ROOT / "recipes" / "baselines" / name
    for name in (
        "thinkprune_3k.yaml",
        "thinkprune_2k.yaml",
        "lapo_stage2.yaml",
        "tiny_cpu/thinkprune_stage2.yaml",
        "tiny_cpu/lapo_stage2.yaml",
    )
]
RECIPES = [
    recipe
    for folder in ("", "ablations", "baselines", "baselines/tiny_cpu")
    for recipe in sorted((ROOT / "recipes" / folder).glob("*.yaml"))
    if recipe not in LATER_STAGES
]
GPU_RECIPES = [r for r in RECIPES if r.name != "tiny_cpu.yaml" and "tiny_cpu" not in r.parts]
CPU_OVERRIDES = ["--use_cpu", "true", "--bf16", "false"]  # GPU recipes validated on a CPU machine
# Short versions of the built-in default, for tests.
QUICK = [
    "--sft_warmup_steps",
    "2",
    "--max_steps",
    "2",
    "--per_device_train_batch_size",
    "8",
    "--num_generations",
    "4",
    "--builtin_num_problems",
    "64",
    "--logging_steps",
    "1",
    "--disable_tqdm",
    "true",
]


def sas_trl(*args, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`sas-trl ARGS` in a fresh process, from the repository root, one torch thread. It runs in a process group
    of its own, killed whole when it ends or times out: nothing it started (grading workers, launched processes)
    outlives the test."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sas_trl.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        stop_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop_group(process: subprocess.Popen) -> None:
    """Kill what is left of the process group `process` leads (SIGKILL) and reap `process`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_when(args: list[str], done: Path, what: str, timeout: float = 300) -> None:
    """Run `sas-trl ARGS` in its own process group and kill the whole group (SIGKILL: a crash, no clean-up) as
    soon as the file `done` exists; fails with `what` if the command ends or times out first (the group is
    killed then too)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sas_trl.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not done.is_file():
            assert process.poll() is None and time.monotonic() < deadline, what
            time.sleep(0.5)
    finally:
        stop_group(process)


def trip_model_work(monkeypatch, extra: tuple[str, ...] = ()) -> None:
    """Fail the test if a training run gets as far as preparing or loading a model (or any of `extra`, more
    functions of sas_trl.training.run)."""
    from sas_trl.training import run as run_module
    from sas_trl.training import warmup

    def tripwire(*args, **kwargs):
        raise AssertionError("reached model work before the user error was reported")

    for name in ("prepare_model", "build_trainer", "drop_long_prompts", *extra):
        monkeypatch.setattr(run_module, name, tripwire)
    monkeypatch.setattr(warmup, "build_builtin_model", tripwire)


SMOKE_BASE = "recipes/studies/tiny_smoke_base.yaml"
SMOKE_EVAL = {"benchmarks": "addition", "n": 2, "max_tokens": 16}


def write_study(tmp_path, conditions, seeds=(0,), eval_options=None, trajectory=None) -> str:
    """A study file on the smoke base recipe (reference `grpo`), written to tmp_path; returns its path."""
    import yaml

    study = {
        "base_recipe": SMOKE_BASE,
        "output_dir": str(tmp_path / "out"),
        "seeds": list(seeds),
        "reference": "grpo",
        "conditions": conditions,
        "eval": SMOKE_EVAL if eval_options is None else eval_options,
    }
    if trajectory is not None:
        study["trajectory"] = trajectory
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)
