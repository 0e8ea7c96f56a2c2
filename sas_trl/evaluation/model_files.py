"""Is a saved model folder whole? Cheap checks (file headers and sizes, no tensor read) of what transformers loads.

Shared by eval, inspect and analyze-truncation (`--model`), training (`model_name_or_path`) and the checkpoint
check (`training/checkpoints.py`): a folder without `config.json` or its `model_type`, without weights, with
weights cut short or a shard missing is named by its file before any model work, instead of transformers'
traceback halfway through loading.
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def model_folder_problem(folder: Path) -> str | None:
    """None when `folder` holds a loadable saved model (or a LoRA adapter), else what is wrong, naming the file.

    Checked: `config.json` is a JSON object with a `model_type` (what transformers' Auto classes dispatch on;
    a LoRA adapter folder has `adapter_config.json` instead), the weights are there (`weights_problem`).
    """
    config = folder / "config.json"
    if not config.is_file():
        if (folder / "adapter_config.json").is_file():
            return weights_problem(folder)
        return f"{folder} holds no saved model (no config.json)"
    try:
        value = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"{config} is not valid JSON ({err})"
    if not isinstance(value, dict) or not isinstance(value.get("model_type"), str):
        return f"{config} has no model_type (a partial or hand-made folder): save the model with save_pretrained"
    return weights_problem(folder)


def weights_problem(folder: Path, extra_states: bool = False) -> str | None:
    """None when `folder`'s weights are whole, else what is wrong, naming the file.

    Single file, sharded with their index (every shard it names must exist), or a LoRA adapter; every
    `.safetensors` file's size matches its header and every torch file (`*.bin`) has its archive directory,
    which a file cut short lacks. `extra_states`: also accept an FSDP / DeepSpeed state folder (checkpoints).
    """
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
    states = extra_states and any(
        p.is_dir() and ("pytorch_model_fsdp" in p.name or p.name.startswith("global_step")) for p in folder.iterdir()
    )
    if not weights and not states and not any(folder.glob("*/adapter_model.*")):
        return f"{folder} holds no model weights (model.safetensors)"
    for path in sorted({*weights, *folder.glob("*.pt"), *folder.glob("*.pth"), *folder.glob("*.bin")}):
        problem = safetensors_problem(path) if path.suffix == ".safetensors" else torch_file_problem(path)
        if problem is not None:
            return f"{path} {problem}"
    return None


def safetensors_problem(path: Path) -> str | None:
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


def torch_file_problem(path: Path) -> str | None:
    """A torch file is a zip archive; one cut short has no archive directory."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return "is cut short or damaged (not a whole torch archive)"
    return None
