"""Shared by the command-line and training tests: the repository root, the shipped recipes, a short run."""

from __future__ import annotations

import os
import subprocess
import sys
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
    """`sas-trl ARGS` in a fresh process, from the repository root, one torch thread."""
    return subprocess.run(
        [sys.executable, "-m", "sas_trl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
