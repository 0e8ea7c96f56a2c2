"""`sas-trl train --dry_run`: a recipe read, resolved and checked as on its target hardware, then described.

Everything `sas-trl train` checks before model work runs, except this machine's CUDA checks (`preflight.
hardware_problems`: GPU-only settings without CUDA, more processes than GPUs), which are reported as skipped; the
other machine checks (packages, credentials, the Hub dataset) are reported as what a start on this machine would
still need. Then: the resolved settings, the launch command, the effective batch, the checkpoints' disk and the
GPU memory per device (`estimates`, each labelled as an estimate). No weights or data are loaded and nothing is
written.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import RecipeError
from ..evaluation.config import check_output_folder
from ..redaction import redact_text
from . import estimates, preflight
from .argv import pop_recipe_flag
from .launch import accelerate_config, launch_command
from .packaged import resolve_recipe
from .recipe_files import load_recipe
from .recipes import parse


def dry_run(argv: list[str]) -> str:
    """The report for `sas-trl train ARGV --dry_run` (ARGV without `--dry_run`); a `RecipeError` for a recipe
    that a start would refuse on its target hardware."""
    rest, source = pop_recipe_flag(list(argv))
    recipe = load_recipe(resolve_recipe(source)) if source is not None else {}
    values = preflight.effective_values(recipe, rest)
    originals = {key: preflight.as_bool(values.get(key, False)) for key in preflight.BUILD_ON_CPU}
    run_args, args, model_args, resolved = parse([*argv, *preflight.build_flags(values)])
    for key in preflight.BUILD_ON_CPU:  # the recipe's values, not the build's
        setattr(args, key, originals[key])
        if key in recipe or f"--{key}" in rest or any(a.startswith(f"--{key}=") for a in rest):
            resolved[key] = originals[key]
        else:
            resolved.pop(key, None)
    check_output_folder(Path(args.output_dir), "output_dir", probe=False)  # as a start checks it, reads only

    config = accelerate_config(run_args.accelerate_config)
    launch = estimates.launch_of(config, run_args.num_processes)
    per_step = args.per_device_train_batch_size * launch.processes
    if resolved.get("generation_batch_size") is not None:  # TRL divides it by the processes it runs on
        if args.generation_batch_size % per_step:
            raise RecipeError(
                f"generation_batch_size={args.generation_batch_size} is not a multiple of "
                f"per_device_train_batch_size x processes = {args.per_device_train_batch_size} x "
                f"{launch.processes}: TRL refuses it at start on {launch.processes} process(es)"
            )
        steps_per_generation = args.generation_batch_size // per_step
    else:
        steps_per_generation = args.steps_per_generation or args.gradient_accumulation_steps
    batch = estimates.Batch(
        args.per_device_train_batch_size, args.gradient_accumulation_steps, launch.processes, args.num_generations,
        steps_per_generation,
    )  # fmt: skip

    lines = [f"sas-trl train --dry_run: {source or '(no recipe)'}; nothing is loaded or written", ""]
    lines += _checks(values)
    lines += ["", "resolved settings (the recipe with the flags applied):"]
    lines += ["  " + line for line in yaml.safe_dump(_plain(resolved), sort_keys=False).splitlines()]
    lines += ["", *_launch_lines(run_args, args, argv, launch)]
    lines += ["", *_batch_lines(batch, args)]
    size = estimates.model_size(model_args.model_name_or_path, model_args.model_revision, model_args.dtype)
    adapter = _adapter(model_args)
    lines += ["", *_disk_lines(size, launch, args, Path(args.output_dir), adapter)]
    lines += ["", *_memory_lines(size, launch, args, model_args, run_args, adapter)]
    return redact_text("\n".join(lines))  # no credential printed


def _plain(value: Any) -> Any:
    """Enums as their values, mappings and lists recursively: what YAML can write."""
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _checks(values: dict[str, Any]) -> list[str]:
    skipped, _ = preflight.hardware_problems(values)
    lines = ["checks: the recipe, its values and its files passed, as on the target hardware."]
    note = f"; on this machine they say: {preflight.join_problems(skipped)}" if skipped else " (none would refuse)"
    lines.append(
        "  skipped: this machine's CUDA checks (GPU-only settings without a CUDA device, processes vs GPUs)" + note
    )
    others = preflight.machine_problems(values, hardware=False)
    if others:
        lines.append("  a start on this machine would also refuse (the target machine needs these too):")
        lines += [f"    - {problem}" for problem in others]
    else:
        lines.append("  packages, credentials and the dataset: what the recipe needs is here")
    return lines


def _launch_lines(run_args, args, argv: list[str], launch: estimates.Launch) -> list[str]:
    command = launch_command(run_args, argv, cuda=not args.use_cpu)
    if command is None:
        command = [sys.executable, "-m", "sas_trl.cli", "train", *argv]
        how = "one process"
    else:
        how = f"{launch.processes} processes, {launch.label}"
    return [f"launch command ({how}):", f"  {shlex.join(command)}"]


def _batch_lines(batch: estimates.Batch, args) -> list[str]:
    g = batch.generations

    def both(rollouts: int) -> str:
        return f"{batch.prompts(rollouts):g} prompts x {g} generations = {rollouts:,} rollouts"

    lines = [
        "effective batch (per optimizer step):",
        f"  per GPU: {both(batch.rollouts_per_step_per_process)} "
        f"(per_device_train_batch_size {batch.per_device} x gradient_accumulation_steps {batch.accumulation})",
        f"  in all:  {both(batch.rollouts_per_step)} ({batch.processes} process(es))",
        f"  each generation: {both(batch.rollouts_per_generation)}, used for "
        f"{batch.rollouts_per_generation / batch.rollouts_per_step:g} optimizer step(s) x num_iterations "
        f"{args.num_iterations} (steps_per_generation {batch.steps_per_generation} micro-batches)",
    ]
    if args.max_steps and args.max_steps > 0:
        prompts = batch.prompts(batch.rollouts_per_step) * args.max_steps / args.num_iterations
        lines.append(f"  max_steps {args.max_steps:,}: {prompts:,.0f} prompts sampled over the run")
    else:
        lines.append(f"  num_train_epochs {args.num_train_epochs:g}: steps depend on the dataset's size (not loaded)")
    return lines


def _adapter(model_args) -> int | None:
    """The LoRA adapter's parameters (`use_peft`), None without one; -1 when it cannot be counted."""
    if not model_args.use_peft:
        return None
    config, _ = estimates.find_config(model_args.model_name_or_path, model_args.model_revision)
    count = estimates.lora_parameters(config, model_args.lora_r, model_args.lora_target_modules) if config else None
    return -1 if count is None else count


def _saves(args) -> int | None:
    """Checkpoints saved over the run (None when it depends on the dataset's size)."""
    strategy = getattr(args.save_strategy, "value", args.save_strategy)
    if strategy == "no":
        return 0
    if strategy != "steps" or not args.max_steps or args.max_steps <= 0:
        return None
    every = args.save_steps if args.save_steps >= 1 else max(1, int(args.save_steps * args.max_steps))
    return int(args.max_steps // every)


def _disk_lines(
    size: estimates.ModelSize, launch: estimates.Launch, args, output_dir: Path, adapter: int | None
) -> list[str]:
    state = "exists: a start resumes or refuses it, see `sas-trl train`" if output_dir.exists() else "a new folder"
    lines = [f"output_dir: {output_dir} ({state})"]
    if size.parameters is None:
        return [*lines, f"model parameters: unknown ({size.source}); no disk or memory estimate"]
    n = size.parameters
    lines.append(f"model parameters: {n:,} ({n / 1e9:.3f}B, counted from {size.source}; no weights loaded)")
    if adapter == -1:
        return [*lines, "LoRA adapter parameters: unknown (a lora_target_modules entry not counted); no estimates"]
    if adapter is not None:
        lines.append(f"LoRA adapter parameters: {adapter:,} (trained; the base weights stay frozen)")
    parts = estimates.checkpoint_bytes(n, size.dtype_bytes, launch, args.save_only_model, adapter)
    one = sum(parts.values())
    lines.append(f"disk, estimate (one checkpoint under {launch.label}): {estimates.bytes_text(one)}")
    lines += [f"  {name}: {estimates.bytes_text(value)}" for name, value in parts.items()]
    saves = _saves(args)
    final = n * size.dtype_bytes if adapter is None else 4.0 * adapter  # a LoRA run saves its adapter
    limit = args.save_total_limit
    if saves is None:
        lines.append(
            f"  checkpoints kept: {limit if limit else 'every one saved'} (how many are saved depends on the "
            "dataset's size)"
        )
        return lines
    kept = min(saves, limit) if limit else saves
    total = kept * one + final
    lines.append(
        f"disk for the whole run, estimate: {estimates.bytes_text(total)} ({kept} of {saves} checkpoint(s) kept"
        f"{f' by save_total_limit {limit}' if limit else ', no save_total_limit'}, plus the final model "
        f"{estimates.bytes_text(final)})"
    )
    if limit and saves > limit:  # the Trainer writes the new checkpoint before it deletes the oldest
        lines.append(
            f"  peak, while a checkpoint is written before the oldest is deleted: {estimates.bytes_text(total + one)}"
        )
    return lines


def _checkpointing(args) -> bool:
    return bool(getattr(args, "activation_checkpointing", None) or getattr(args, "gradient_checkpointing", False))


def _memory_lines(
    size: estimates.ModelSize, launch: estimates.Launch, args, model_args, run_args, adapter: int | None
) -> list[str]:
    if size.parameters is None or adapter == -1:
        return []
    n = size.parameters
    reference = bool(args.beta) and not model_args.use_peft
    parts = estimates.memory_per_device(n, size.dtype_bytes, launch, reference, adapter)
    prompt = run_args.max_prompt_tokens or getattr(args, "max_prompt_length", None) or 0
    tokens = prompt + args.max_completion_length
    numbers = estimates.config_numbers(model_args.model_name_or_path, model_args.model_revision)
    rough = estimates.activation_bytes(
        numbers, args.per_device_train_batch_size, tokens, args.max_completion_length, _checkpointing(args)
    )
    where = "memory per process (a CPU run)" if args.use_cpu else "GPU memory per device"
    lines = [f"{where}, estimate ({launch.label}, {launch.processes} process(es), AdamW):"]
    lines += [f"  {name}: {estimates.bytes_text(value)}" for name, value in {**parts, **rough}.items()]
    total = sum(parts.values()) + sum(rough.values())
    lines.append(f"  total, estimate: {estimates.bytes_text(total)}")
    if not prompt:
        lines.append("  (prompt length unbounded: max_prompt_tokens unset, completions only counted)")
    if args.use_vllm and str(getattr(args, "vllm_mode", "")) == "colocate":
        lines.append(
            f"  plus vLLM (colocate) reserves vllm_gpu_memory_utilization {args.vllm_gpu_memory_utilization:g} of "
            "each GPU's memory for its copy of the weights and its KV cache"
        )
    optim = str(getattr(args.optim, "value", args.optim))
    if "adamw" not in optim:
        lines.append(f"  (optim {optim}: the optimizer state above assumes AdamW)")
    return lines
