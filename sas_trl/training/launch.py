"""Relaunching `sas-trl train` as several processes.

On GPUs, `accelerate launch` (with the recipe's accelerate config: DDP, DeepSpeed ZeRO, FSDP). On a CPU-only
machine accelerate's multi-CPU launcher needs MPI and otherwise silently starts one process, so CPU runs
use `torchrun`, which really starts N gloo processes that accelerate then sees as MULTI_CPU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from ..errors import RecipeError
from .arguments import RunArguments

GPU_ONLY = ("DEEPSPEED", "FSDP", "MULTI_GPU", "XLA")


LAUNCHED_ENV = "SAS_TRL_LAUNCHED"  # set for the relaunched processes, so they never relaunch again


def is_launched_child() -> bool:
    """True inside a process started by `launch_command` (or by torchrun / accelerate launch directly)."""
    return LAUNCHED_ENV in os.environ or "LOCAL_RANK" in os.environ


def accelerate_config(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RecipeError(f"accelerate_config {path!r} cannot be read: {err}") from err
    if not isinstance(config, dict):
        raise RecipeError(f"accelerate_config {path!r} must be a YAML mapping")
    return config


def launch_command(run_args: RunArguments, argv: list[str], cuda: bool | None = None) -> list[str] | None:
    """The command that relaunches `sas-trl train argv` as several processes, or None to run in this one."""
    if is_launched_child():
        return None
    config = accelerate_config(run_args.accelerate_config)
    processes = run_args.num_processes or int(config.get("num_processes", 1))
    if processes <= 1 and run_args.accelerate_config is None:
        return None
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    module = ["-m", "sas_trl.cli", "train", *argv]
    if cuda:
        command = [sys.executable, "-m", "accelerate.commands.launch"]
        if run_args.accelerate_config:
            command += ["--config_file", run_args.accelerate_config]
        if run_args.num_processes:
            command += ["--num_processes", str(run_args.num_processes)]
        return [*command, *module]
    kind = str(config.get("distributed_type", "MULTI_CPU")).upper()
    if kind in GPU_ONLY:
        raise RecipeError(
            f"accelerate_config {run_args.accelerate_config!r} uses distributed_type {kind}, which needs GPUs; "
            "this machine has none (for a CPU run, drop accelerate_config and set num_processes)"
        )
    if processes <= 1:
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), *module]
