"""Is a checkpoint folder whole and usable? Checks of what transformers loads, before any model work.

A save cut short (no `trainer_state.json`, which transformers writes last), a trainer state that is not JSON,
weights cut short, a missing shard, a torch file that is not a whole archive: each named by its file, before any
model work. And the optimizer state, without which transformers silently resumes with a new optimizer.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RecipeError
from ..evaluation.model_files import model_folder_problem, weights_problem

TRAINER_STATE = "trainer_state.json"  # written last in a checkpoint folder


def checkpoint_folders(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every `checkpoint-N` folder in `output_dir`, complete or not."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    found = []
    for path in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[-1]
        if step.isdigit() and path.is_dir():
            found.append((int(step), path))
    return found


# --------------------------------------------------------------------------------------------------
# Is a checkpoint whole? Headers, sizes, the readers transformers uses, finite weights
# --------------------------------------------------------------------------------------------------


def checkpoint_problem(folder: Path) -> str | None:
    """None when `folder` is a whole checkpoint, else what is wrong, naming the file.

    Checked: `trainer_state.json` is a JSON object with a `global_step`; model weights are there (single file,
    sharded with their index, a LoRA adapter, or an FSDP / DeepSpeed state folder), every `.safetensors` file's
    size matches its header, every shard an index names exists, and every torch file (`*.pt`, `*.pth`, `*.bin`:
    zip archives) has its archive directory, which a file cut short lacks. And what only shows when the
    checkpoint is used: transformers' own reader accepts the trainer state (a field of a newer transformers, a
    byte that is not UTF-8), a full model's `config.json` is JSON with a `model_type`, and no safetensors weight
    holds NaN or infinity (the only check that reads tensors, one at a time).
    """
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"{state} is missing (a save cut short)"
    try:
        value = json.loads(state.read_text(encoding="utf-8"))  # as transformers reads it
    except (OSError, ValueError) as err:
        return f"{state} is not valid JSON ({err})"
    if not isinstance(value, dict) or not isinstance(value.get("global_step"), int):
        return f"{state} has no global_step"
    problem = _trainer_state_problem(state)
    if problem is not None:
        return problem
    config = folder / "config.json"
    if config.is_file():  # a full model's checkpoint (a LoRA one has adapter_config.json)
        problem = model_folder_problem(folder)
        if problem is not None:
            return problem
    problem = weights_problem(folder, extra_states=True)
    if problem is not None:
        return problem
    return _nonfinite_weights(folder)


def _trainer_state_problem(state: Path) -> str | None:
    """What transformers' own reader (`TrainerState.load_from_json`) refuses: a field of another transformers
    version, a value it cannot take."""
    from transformers import TrainerState

    try:
        TrainerState.load_from_json(str(state))
    except TypeError as err:  # TrainerState(**fields): a field this transformers version does not have
        return f"{state} cannot be read by this transformers version ({err}; saved by another version?)"
    except Exception as err:  # noqa: BLE001 - whatever the reader trips on, named with its file
        return f"{state} cannot be read ({type(err).__name__}: {err})"
    return None


def _nonfinite_weights(folder: Path) -> str | None:
    """The first safetensors weight holding NaN or infinity (a diverged run's save), named with its file; one
    tensor in memory at a time."""
    import torch
    from safetensors import safe_open

    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return f"{path} holds NaN or infinite values (tensor {name!r}): the run had diverged"
    return None


def _deepspeed(path: Path) -> bool:
    return path.name.startswith("global_step")


def optimizer_problem(folder: Path) -> str | None:
    """None when `folder` holds the optimizer and scheduler state transformers restores, else the missing file.

    transformers restores the optimizer only when both `optimizer.pt` (or `optimizer.bin`, an FSDP optimizer
    folder) and `scheduler.pt` are there, and otherwise silently starts it from zero; DeepSpeed keeps both in
    its `global_step*` folder.
    """
    children = [p for p in folder.iterdir() if p.is_dir()]
    if any(_deepspeed(p) for p in children):
        return None
    has_optimizer = (
        (folder / "optimizer.pt").is_file()
        or (folder / "optimizer.bin").is_file()
        or any("optimizer" in p.name for p in children)
    )
    if not has_optimizer:
        return f"{folder / 'optimizer.pt'} is missing"
    if not (folder / "scheduler.pt").is_file():
        return f"{folder / 'scheduler.pt'} is missing"
    return None


def optimizer_notes(folder: Path, without_optimizer: bool) -> list[str]:
    """What to say about resuming `folder` without optimizer state; `RecipeError` unless `without_optimizer`."""
    problem = optimizer_problem(folder)
    if problem is None:
        return []
    if not without_optimizer:
        raise RecipeError(
            f"resume_from_checkpoint: {folder} has no optimizer state ({problem}; `save_only_model` saves none): "
            "resuming would silently restart the optimizer. Pass --resume_without_optimizer true to resume its "
            "weights with a new optimizer, or name an earlier checkpoint with --resume_from_checkpoint"
        )
    return [f"resuming {folder} without its optimizer state ({problem}): the optimizer starts anew"]
