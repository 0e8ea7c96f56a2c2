"""Is a checkpoint folder whole? Cheap checks (file headers and sizes, no tensor read) of what transformers loads.

A save cut short (no `trainer_state.json`, which transformers writes last), a trainer state that is not JSON,
weights cut short, a missing shard, a torch file that is not a whole archive: each named by its file, before any
model work. And the optimizer state, without which transformers silently resumes with a new optimizer.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RecipeError

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
# Is a checkpoint whole? Cheap checks (headers and sizes, no tensors read) that transformers would fail on
# --------------------------------------------------------------------------------------------------

WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_problem(folder: Path) -> str | None:
    """None when `folder` is a whole checkpoint, else what is wrong, naming the file.

    Checked: `trainer_state.json` is a JSON object with a `global_step`; model weights are there (single file,
    sharded with their index, a LoRA adapter, or an FSDP / DeepSpeed state folder), every `.safetensors` file's
    size matches its header, every shard an index names exists, and every torch file (`*.pt`, `*.pth`, `*.bin`:
    zip archives) has its archive directory, which a file cut short lacks.
    """
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"{state} is missing (a save cut short)"
    try:
        value = json.loads(state.read_text())
    except (OSError, ValueError) as err:
        return f"{state} is not valid JSON ({err})"
    if not isinstance(value, dict) or not isinstance(value.get("global_step"), int):
        return f"{state} has no global_step"
    weights = [folder / n for n in WEIGHT_FILES if (folder / n).is_file()]
    for index in (folder / n for n in INDEX_FILES):
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return f"{index} is not a valid weights index"
            for shard in sorted(shards):
                if not (folder / shard).is_file():
                    return f"{folder / shard} is missing (named in {index.name})"
                weights.append(folder / shard)
    states = [p for p in folder.iterdir() if p.is_dir() and ("pytorch_model_fsdp" in p.name or _deepspeed(p))]
    if not weights and not states and not any(folder.glob("*/adapter_model.*")):
        return f"{folder} holds no model weights (model.safetensors)"
    for path in sorted({*weights, *folder.glob("*.pt"), *folder.glob("*.pth"), *folder.glob("*.bin")}):
        problem = _safetensors_problem(path) if path.suffix == ".safetensors" else _torch_file_problem(path)
        if problem is not None:
            return f"{path} {problem}"
    return None


def _deepspeed(path: Path) -> bool:
    return path.name.startswith("global_step")


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then exactly the tensors it lists."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or 8 + length > size:
                return "is cut short or damaged (its header runs past the end of the file)"
            header = json.loads(handle.read(length))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return "is damaged (its header is not valid safetensors)"
    if 8 + length + max(ends, default=0) != size:
        return "is cut short or damaged (its size does not match its header)"
    return None


def _torch_file_problem(path: Path) -> str | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return "is cut short or damaged (not a whole torch archive)"
    return None


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
