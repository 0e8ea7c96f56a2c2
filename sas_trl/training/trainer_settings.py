"""Settings read before they are built, and those transformers refuses only when the trainer is built.

`preflight.py` reads a recipe's values with its flags applied (`effective_values`) and asks this module what
they mean: a flag's text as a bool, the accelerate config a launch uses, the attention implementation the
model loads with (`model_init_kwargs` included), how many processes start; `settings_problems` names FSDP in
one process and a quantized model trained without a LoRA adapter, whatever the machine. `OPTIMIZER_PACKAGES`:
the package each of transformers' `optim` values needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .launch import is_launched_child
from .packaged import resolve_accelerate_config

# transformers' `optim` values -> the module they need and its pip name (transformers checks only when the
# trainer builds its optimizer, after the model is loaded). bitsandbytes' 8-bit and paged optimizers need CUDA.
OPTIMIZER_PACKAGES = {
    **dict.fromkeys(
        (
            "adamw_bnb_8bit",
            "adamw_8bit",
            "paged_adamw_32bit",
            "paged_adamw_8bit",
            "ademamix",
            "ademamix_8bit",
            "paged_ademamix_32bit",
            "paged_ademamix_8bit",
            "lion_32bit",
            "lion_8bit",
            "paged_lion_32bit",
            "paged_lion_8bit",
            "rmsprop_bnb",
            "rmsprop_bnb_8bit",
            "rmsprop_bnb_32bit",
        ),
        ("bitsandbytes", "bitsandbytes"),
    ),
    **dict.fromkeys(
        (
            "galore_adamw",
            "galore_adamw_8bit",
            "galore_adafactor",
            "galore_adamw_layerwise",
            "galore_adamw_8bit_layerwise",
            "galore_adafactor_layerwise",
        ),
        ("galore_torch", "galore-torch"),
    ),
    **dict.fromkeys(("apollo_adamw", "apollo_adamw_layerwise"), ("apollo_torch", "apollo-torch")),
    **dict.fromkeys(("lomo", "adalomo"), ("lomo_optim", "lomo-optim")),
    "grokadamw": ("grokadamw", "grokadamw"),
    **dict.fromkeys(("adamw_torch_4bit", "adamw_torch_8bit"), ("torchao", "torchao")),
    **dict.fromkeys(
        ("schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd"), ("schedulefree", "schedulefree")
    ),
    "adamw_anyprecision": ("torchdistx", "torchdistx"),
    "stable_adamw": ("optimi", "torch-optimi"),
    "adamw_torch_xla": ("torch_xla", "torch_xla"),
    "adamw_torch_npu_fused": ("torch_npu", "torch_npu"),
}


def as_bool(value: Any) -> bool:
    """A recipe or flag value as a bool (flags are still text: "true", "yes", "1")."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "t", "y", "1")
    return bool(value)


def is_none(value: Any) -> bool:
    """Unset: None, or a flag's "null", "none" or empty text."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", ""))


def launch_config(value: Any) -> tuple[str, dict]:
    """The accelerate config's path (packaged `recipes/...` mapped) and mapping ({} when absent/unreadable)."""
    if is_none(value):
        return "", {}
    path = resolve_accelerate_config(str(value))
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return str(value), {}  # reported where the file is read (validation, launch)
    return str(value), config if isinstance(config, dict) else {}


def init_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """`model_init_kwargs` as a mapping (a flag's JSON text parsed; {} when absent or unreadable: the settings'
    own check names a malformed value)."""
    value = values.get("model_init_kwargs")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


def attention(values: dict[str, Any]) -> tuple[str | None, str]:
    """The attention implementation the model will load with, and the setting that asks for it:
    `attn_implementation`, else `model_init_kwargs`' own (which reaches the loader unchecked otherwise)."""
    attn = values.get("attn_implementation")
    if not is_none(attn):
        return str(attn), "attn_implementation"
    attn = init_kwargs(values).get("attn_implementation")
    if isinstance(attn, str) and attn:
        return attn, "model_init_kwargs.attn_implementation"
    return None, "attn_implementation"


def processes(values: dict[str, Any]) -> int:
    """How many processes the run starts (num_processes, else the accelerate config's, else 1)."""
    flag = values.get("num_processes")
    _, config = launch_config(values.get("accelerate_config"))
    try:
        return int(flag) if not is_none(flag) else int(config.get("num_processes", 1) or 1)
    except (TypeError, ValueError):
        return 1


def settings_problems(values: dict[str, Any]) -> list[str]:
    """Settings transformers refuses only when the trainer is built, whatever the machine: FSDP in one
    process, a quantized model trained without a LoRA adapter."""
    problems = []
    fsdp = values.get("fsdp")
    sharded = not is_none(fsdp) and fsdp not in (False, []) and str(fsdp).strip() not in ("", "False", "false")
    if sharded and not is_launched_child() and processes(values) <= 1:
        problems.append(
            f"fsdp {fsdp!r} shards the model over several processes, but this run starts one (transformers "
            "refuses it when the trainer is built); pass --num_processes N (on N GPUs) or --fsdp ''"
        )
    for key in ("load_in_4bit", "load_in_8bit"):
        if as_bool(values.get(key, False)) and not as_bool(values.get("use_peft", False)):
            problems.append(
                f"{key}: true loads a quantized model, which transformers refuses to train without a LoRA adapter; "
                f"pass --use_peft true (QLoRA), or --{key} false"
            )
    return problems


def on_cuda(device_map: str | int) -> bool:
    """A `device_map` that places the model on a CUDA device ("cuda", "cuda:1", a device index)."""
    return isinstance(device_map, int) or str(device_map).lower().startswith("cuda")
