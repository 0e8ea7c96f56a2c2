"""The valid range of every TRL, transformers and torch setting that can be known when the recipe is read.

TRL's `GRPOConfig` and transformers' `TrainingArguments` check few of their numeric fields; the others are
refused by torch, numpy or the generation code minutes later, after the warm-up, as a traceback that sometimes
names another field (a zero `gradient_accumulation_steps` surfaces as "batch_size=0"). `check_values` checks the
typed values of all recipe fields before any dataclass is built (so before TRL's own `__post_init__` divides by
them); `check_model_init_kwargs` checks the keys the model loader would be handed. Each failure is a `RecipeError`
naming the field, its value, the allowed values and where the value was set.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import importlib.util
import inspect
import json
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_MODEL
from ..errors import RecipeError
from .arguments import all_fields

SEED_MAX = 2**32 - 1  # numpy's `np.random.seed` (called by transformers' `set_seed`) takes 0..2**32 - 1


@dataclass(frozen=True)
class Range:
    """The numbers a field allows: `low`/`high` bounds (open or closed), plus a few `extra` values."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    extra: tuple[Any, ...] = ()
    note: str = ""  # what an extra value means, or why the bound

    def allows(self, value) -> bool:
        if value in self.extra:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self, integer: bool) -> str:
        kind = "an integer" if integer else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        text = f"{kind} {' and '.join(parts)}" if parts else kind
        extra = ", ".join(_number(v) for v in self.extra)
        text = f"{text}, or {extra}" if extra else text
        return f"{text} ({self.note})" if self.note else text


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


POSITIVE = Range(0, low_open=True)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
FRACTION = Range(0, 1)
PORT = Range(1, 65535)
SEED = Range(0, SEED_MAX, note="numpy's seed range")

# Field -> allowed numbers. None is allowed wherever the field's type allows it (TRL's "unset").
RANGES: dict[str, Range] = {
    # transformers.TrainingArguments
    "max_steps": Range(1, extra=(-1,), note="-1 trains num_train_epochs epochs; 0 would still train one step"),
    "num_train_epochs": POSITIVE,
    "per_device_train_batch_size": AT_LEAST_1,
    "per_device_eval_batch_size": AT_LEAST_1,
    "gradient_accumulation_steps": AT_LEAST_1,
    "eval_accumulation_steps": AT_LEAST_1,
    "learning_rate": AT_LEAST_0,
    "weight_decay": AT_LEAST_0,
    "adam_beta1": Range(0, 1, high_open=True),
    "adam_beta2": Range(0, 1, high_open=True),
    "adam_epsilon": AT_LEAST_0,
    "max_grad_norm": Range(0, note="0 turns clipping off; a negative norm would flip the gradients"),
    "warmup_steps": AT_LEAST_0,
    "label_smoothing_factor": Range(0, 1, high_open=True),
    "neftune_noise_alpha": AT_LEAST_0,
    "logging_steps": POSITIVE,
    "eval_steps": POSITIVE,
    "save_steps": POSITIVE,
    "eval_delay": AT_LEAST_0,
    "save_total_limit": AT_LEAST_0,
    "seed": SEED,
    "data_seed": SEED,
    "dataloader_num_workers": AT_LEAST_0,
    "dataloader_prefetch_factor": AT_LEAST_1,
    "ddp_bucket_cap_mb": AT_LEAST_1,
    "ddp_timeout": AT_LEAST_1,
    "torch_empty_cache_steps": AT_LEAST_1,
    # trl.GRPOConfig
    "num_generations": Range(2, note="GRPO's advantages compare rollouts of one prompt"),
    "num_generations_eval": AT_LEAST_1,
    "max_completion_length": AT_LEAST_1,
    "generation_batch_size": AT_LEAST_1,
    "steps_per_generation": AT_LEAST_1,
    "temperature": Range(0, low_open=True, note="sampling divides the logits by it"),
    "top_p": Range(0, 1, low_open=True),
    "top_k": Range(0, note="0 turns top-k off"),
    "min_p": FRACTION,
    "repetition_penalty": POSITIVE,
    "vllm_server_port": PORT,
    "vllm_group_port": PORT,
    "vllm_server_timeout": POSITIVE,
    "vllm_gpu_memory_utilization": Range(0, 1, low_open=True),
    "vllm_max_model_length": AT_LEAST_1,
    "vllm_tensor_parallel_size": AT_LEAST_1,
    "beta": AT_LEAST_0,
    "num_iterations": AT_LEAST_1,
    "epsilon": AT_LEAST_0,
    "epsilon_high": AT_LEAST_0,
    "delta": POSITIVE,
    "sapo_temperature_neg": POSITIVE,
    "sapo_temperature_pos": POSITIVE,
    "vespo_k_pos": AT_LEAST_0,
    "vespo_lambda_pos": AT_LEAST_0,
    "vespo_k_neg": AT_LEAST_0,
    "vespo_lambda_neg": AT_LEAST_0,
    "router_aux_loss_coef": AT_LEAST_0,
    "ref_model_mixup_alpha": FRACTION,
    "ref_model_sync_steps": AT_LEAST_1,
    "top_entropy_quantile": FRACTION,
    "entropy_coef_min": AT_LEAST_0,
    "entropy_coef_max": AT_LEAST_0,
    "max_tool_calling_iterations": AT_LEAST_0,
    "vllm_importance_sampling_clip_max": POSITIVE,
    "vllm_importance_sampling_clip_min": AT_LEAST_0,
    "vllm_importance_sampling_cap": POSITIVE,
    "off_policy_mask_threshold": AT_LEAST_0,
    "num_completions_to_print": AT_LEAST_0,
    # trl.ModelConfig
    "lora_r": AT_LEAST_1,
    "lora_alpha": AT_LEAST_1,
    "lora_dropout": Range(0, 1, high_open=True),
}

# Numeric fields without a range here: checked by their own dataclass (`RunArguments`, `SASConfig` and its
# `SASRule`), set by the launcher (`local_rank`), or signed by design (the adaptive entropy bonus may push either
# way). `pad_to_multiple_of` (int or "auto") has its own check below. tests/test_training_settings_checks.py
# holds every numeric field of the three dataclasses to be in `RANGES` or here.
CHECKED_ELSEWHERE = (
    "max_train_samples", "max_prompt_tokens", "builtin_num_problems", "builtin_min_terms", "builtin_max_terms",
    "builtin_double_check_traces", "sft_warmup_steps", "num_processes", "sas_ratio", "sas_min_steps",
    "sas_correct_reward_index", "sas_correct_threshold", "local_rank", "pad_to_multiple_of", "entropy_coef",
    "entropy_coef_delta", "entropy_target", "reward_timeout",
)  # fmt: skip

# Text fields whose values TRL lists only in its help (transformers' enums and argparse choices are read from the
# fields themselves, see `_choices`).
CHOICES: dict[str, tuple[Any, ...]] = {
    "vllm_mode": ("colocate", "server"),
    "vllm_model_impl": ("vllm", "transformers"),
    "importance_sampling_level": ("token", "sequence"),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "scale_rewards": ("group", "batch", "none", True, False),
    "vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
}

# `from_pretrained` keywords that transformers 5 takes from **kwargs (its named parameters are read from the
# signature); anything else must be an attribute of the model's config, or the model's __init__ raises.
LOADING_KWARGS = (
    "adapter_kwargs", "adapter_name", "allow_all_kernels", "attn_implementation", "device_map", "device_mesh",
    "distributed_config", "dtype", "experts_implementation", "generation_config", "gguf_file", "kernel_config",
    "key_mapping", "low_cpu_mem_usage", "max_memory", "offload_buffers", "offload_folder", "offload_state_dict",
    "output_loading_info", "proxies", "quantization_config", "state_dict", "subfolder", "torch_dtype", "tp_plan",
    "tp_size", "tqdm_class", "trust_remote_code", "use_kernels", "variant",
)  # fmt: skip
DTYPES = ("auto", "bfloat16", "float16", "float32")  # what TRL's model loader accepts as text


Where = Callable[[str], str]  # a key -> " (set in FILE, line N)", " (set on the command line)" or ""


def check_values(values: Mapping[str, Any], where: Where = lambda key: "") -> None:
    """Every recipe field's typed value (before any dataclass is built) in its allowed range; reward weights one
    per reward. `values` maps field names to values (defaults included)."""
    for key, value in values.items():
        _check_finite(key, value, where)
        if value is None:
            continue
        _check_size(key, value, where)
        if key in RANGES and isinstance(value, int | float) and not isinstance(value, bool):
            spec = RANGES[key]
            if not spec.allows(value):
                raise RecipeError(
                    f"{key}={value!r} is not valid; allowed values: {spec.describe(_is_int(key))}{where(key)}"
                )
        allowed = _choices(key)
        if allowed is not None:
            for item in value if isinstance(value, list | tuple) else [value]:
                if item not in allowed:
                    shown = ", ".join(repr(a) for a in allowed)
                    raise RecipeError(f"{key}={value!r} is not valid; allowed values: {shown}{where(key)}")
    _check_text_numbers(values, where)
    _check_dict_fields(values, where)
    _check_reward_weights(values, where)


MAX_INTEGER = 2**63 - 1  # what torch, numpy and a dataset column (int64) hold
# Sizes that make something of that size before training: a typo of 10**12 must not allocate it.
MAX_SIZES = {"builtin_num_problems": 10_000_000, "builtin_max_terms": 10_000}


def _check_size(key: str, value, where: Where) -> None:
    """Integers too large for int64 (an overflow deep inside torch or a dataset map) and `MAX_SIZES`."""
    items = value if isinstance(value, list | tuple) else [value]
    limit = MAX_SIZES.get(key, MAX_INTEGER)
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > limit:
            raise RecipeError(f"{key}={item} is too large; allowed values: at most {limit:,} in size{where(key)}")


def _check_finite(key: str, value, where: Where) -> None:
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            raise RecipeError(f"{key}={value!r} is not valid; allowed values: finite numbers{where(key)}")


@functools.cache
def _fields() -> dict[str, tuple[Any, dict]]:
    """Every recipe field -> (its type hint, its metadata), read once (type hints are slow to evaluate)."""
    hints = {cls: typing.get_type_hints(cls) for cls in {cls for cls, _ in all_fields().values()}}
    return {key: (hints[cls].get(f.name), dict(f.metadata)) for key, (cls, f) in all_fields().items()}


def _is_int(key: str) -> bool:
    return _fields()[key][0] in (int, int | None)


@functools.cache
def _choices(key: str) -> tuple[Any, ...] | None:
    """The values a text field allows: ours, argparse's `choices`, or the values of the enum in its type."""
    if key in CHOICES:
        return CHOICES[key]
    if key == "report_to":
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        return ("all", "none", *INTEGRATION_TO_CALLBACK)
    if key not in _fields():
        return None
    hint, metadata = _fields()[key]
    if "choices" in metadata:
        return tuple(metadata["choices"])
    for arg in (hint, *typing.get_args(hint)):
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return tuple(member.value for member in arg)
    return None


def _check_text_numbers(values: Mapping[str, Any], where: Where) -> None:
    # `pad_to_multiple_of` is int | str: TRL reads a text value with int() and would report only "invalid literal".
    value = values.get("pad_to_multiple_of")
    if isinstance(value, str) and value.lower() not in ("auto", "none", "null"):
        try:
            value = int(value)
        except ValueError:
            value = None
        if value is None or value < 1:
            raise RecipeError(
                f"pad_to_multiple_of={values['pad_to_multiple_of']!r} is not valid; allowed values: an integer >= 1, "
                f"'auto' or none{where('pad_to_multiple_of')}"
            )
    elif isinstance(value, int) and value < 1:
        raise RecipeError(
            f"pad_to_multiple_of={value} is not valid; allowed values: an integer >= 1, 'auto' or none"
            f"{where('pad_to_multiple_of')}"
        )


# Fields transformers also reads from a JSON file when the text does not start with '{' (a path).
JSON_FILE_FIELDS = ("accelerator_config", "fsdp_config", "deepspeed")


def _check_dict_fields(values: Mapping[str, Any], where: Where) -> None:
    # TrainingArguments json-decodes these when given as text starting with '{' and would report only the JSON error;
    # `JSON_FILE_FIELDS` take a path to a JSON file otherwise (the standard DeepSpeed/FSDP/accelerator configs).
    from ..config import SASConfig

    for key in SASConfig._VALID_DICT_FIELDS:
        value = values.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        if key in JSON_FILE_FIELDS and not value.startswith("{"):
            _check_json_file(key, value, where)
            continue
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as err:
            raise RecipeError(f"{key}: {value!r} is not a JSON mapping ({err.msg}){where(key)}") from err
        if not isinstance(decoded, dict):
            raise RecipeError(f"{key}: {value!r} is not a JSON mapping{where(key)}")
    if values.get("deepspeed") and not _installed("deepspeed"):
        # TrainingArguments would fail with a bare PackageNotFoundError while it is built
        raise RecipeError(
            f"deepspeed: {values['deepspeed']!r} needs DeepSpeed, which is not installed: pip install "
            f"'sas-trl[deepspeed]'{where('deepspeed')}"
        )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check_json_file(key: str, value: str, where: Where) -> None:
    """A `JSON_FILE_FIELDS` path: an existing file (relative to the current folder, as transformers opens it)
    holding a JSON mapping; errors name the file."""
    path = Path(value)
    expected = "inline JSON starting with '{' or the path of a JSON file"
    if not path.exists():
        raise RecipeError(f"{key}: file {value!r} not found ({expected}){where(key)}")
    if not path.is_file():
        raise RecipeError(f"{key}: {value!r} is a folder, not a JSON file{where(key)}")
    try:
        decoded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{key}: file {value!r} cannot be read ({err}){where(key)}") from err
    except json.JSONDecodeError as err:
        raise RecipeError(
            f"{key}: file {value!r} is not valid JSON ({err.msg}, line {err.lineno}, column {err.colno}){where(key)}"
        ) from err
    if not isinstance(decoded, dict):
        raise RecipeError(f"{key}: file {value!r} holds a JSON {type(decoded).__name__}, not a mapping{where(key)}")


def _check_reward_weights(values: Mapping[str, Any], where: Where) -> None:
    weights, rewards = values.get("reward_weights"), values.get("reward_funcs")
    if weights is None or rewards is None:
        return
    if len(weights) != len(rewards):
        raise RecipeError(
            f"reward_weights={list(weights)} has {len(weights)} weight(s) but reward_funcs lists {len(rewards)} "
            f"reward(s) ({', '.join(map(str, rewards))}); allowed values: one weight per reward"
            f"{where('reward_weights')}"
        )


def check_model_init_kwargs(kwargs: Any, model: str | None, revision: str | None, where: Where) -> None:
    """`model_init_kwargs` keys the model loader takes: `from_pretrained`'s keywords and the model config's
    attributes. When the config cannot be read without a download (a Hub model not in the local cache), only
    near-misses of the loader's keywords are refused."""
    if kwargs is None:
        return
    at = where("model_init_kwargs")
    if not isinstance(kwargs, dict):
        raise RecipeError(f"model_init_kwargs: {kwargs!r} is not a mapping of from_pretrained keywords{at}")
    loading = set(_from_pretrained_parameters()) | set(LOADING_KWARGS)
    config_keys = _config_keys(model, revision)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise RecipeError(f"model_init_kwargs: key {key!r} is not a keyword name{at}")
        if key in ("dtype", "torch_dtype") and value is not None and not isinstance(value, str):
            shown = ", ".join(repr(d) for d in DTYPES)
            raise RecipeError(
                f"model_init_kwargs: {key}={value!r} is not a dtype name (transformers would ignore it and load in "
                f"float32); allowed values: {shown}{at}"
            )
        if key in ("dtype", "torch_dtype") and isinstance(value, str) and value not in DTYPES:
            shown = ", ".join(repr(d) for d in DTYPES)
            raise RecipeError(f"model_init_kwargs: {key}={value!r} is not valid; allowed values: {shown}{at}")
        if key in loading or (config_keys is not None and key in config_keys):
            continue
        known = loading | (config_keys or set())
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75 if config_keys is not None else 0.85)
        if config_keys is None and not close:
            continue  # maybe an attribute of a config we cannot read offline
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        what = "from_pretrained keyword or model config attribute" if config_keys is not None else "keyword"
        raise RecipeError(f"model_init_kwargs: unknown key {key!r} (not a {what}){hint}{at}")


def _from_pretrained_parameters() -> list[str]:
    from transformers import PreTrainedModel

    params = inspect.signature(PreTrainedModel.from_pretrained).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]


def _config_keys(model: str | None, revision: str | None) -> set[str] | None:
    """The attribute names of the model's config class, or None when it cannot be known without a download."""
    config_class = _config_class(model, revision)
    if config_class is None:
        return None
    # transformers sets a keyword on the config when `hasattr(config, key)`, else hands it to the model's __init__
    keys = {name for name in inspect.signature(config_class.__init__).parameters if name not in ("self", "kwargs")}
    keys |= set(getattr(config_class, "attribute_map", {}))
    if dataclasses.is_dataclass(config_class):
        keys |= {f.name for f in dataclasses.fields(config_class)}
    try:
        keys |= {name for name in dir(config_class()) if not name.startswith("_")}
    except Exception:  # a config that needs arguments: its signature is what we have
        keys |= {name for name in dir(config_class) if not name.startswith("_")}
    return keys


def _config_class(model: str | None, revision: str | None):
    if model is None:
        return None
    if model == BUILTIN_MODEL:
        from transformers import LlamaConfig  # sas_trl.tiny's architecture

        return LlamaConfig
    config_file = Path(model) / "config.json"
    if not config_file.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except Exception:  # not a repo id
            return None
        if not isinstance(cached, str):
            return None
        config_file = Path(cached)
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None  # the loader reports a damaged config itself, naming the file
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    # None: a remote-code model, whose config we cannot know. (The lazy mapping's .get() skips its loading.)
    return CONFIG_MAPPING[model_type] if model_type in CONFIG_MAPPING else None  # noqa: SIM401
