"""What a run needs, from its settings alone: parameters, batch, checkpoint disk, GPU memory (`--dry_run`).

No weights are read: the parameter count comes from the model's `config.json` (a local folder, the Hugging Face
cache, or `KNOWN_CONFIGS` for the paper's models when neither has it), counted for the decoder-only architectures
in `COUNTED_TYPES`. Every byte figure is an estimate (the conventions below), meant to size a machine, not to
replace a measurement (`benchmarks/gpu_step.py` measures the paper's shape).

Conventions (N parameters, P processes, AdamW):
- mixed precision with an fp32 master copy (DeepSpeed, FSDP): 2N bf16 weights, 2N gradients, 12N optimizer state
  (fp32 master 4N, exp_avg 4N, exp_avg_sq 4N); ZeRO-1 shards the optimizer state over P, ZeRO-2 the gradients too,
  ZeRO-3 and FSDP everything (FSDP keeps its shard of weights and gradients in fp32: 16N / P in all).
- without sharding (one process, DDP): weights, gradients and AdamW's two states all in the model's dtype.
- a checkpoint holds the weights in the model's dtype plus the optimizer state as the engine saves it (DeepSpeed:
  the 12N fp32 state and a 2N copy of the weights; FSDP sharded: fp32 weights 4N and state 8N; plain: the two AdamW
  states in the model's dtype); `save_only_model` keeps only the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_MODEL

GB = 1e9
# config.json numbers of the models the recipes name, for when neither a local folder nor the cache has the file.
_QWEN2_1_5B_DISTILL = {
    "model_type": "qwen2",
    "hidden_size": 1536,
    "num_hidden_layers": 28,
    "intermediate_size": 8960,
    "vocab_size": 151936,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "agentica-org/DeepScaleR-1.5B-Preview": _QWEN2_1_5B_DISTILL,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": _QWEN2_1_5B_DISTILL,
}
# Decoder-only architectures whose parameters `count_parameters` counts (embedding, attention, gated MLP, RMSNorm).
COUNTED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class ModelSize:
    """A parameter count (None when unknown), where the config came from, and the weights' bytes per parameter."""

    parameters: int | None
    source: str
    dtype_bytes: int = 2


def count_parameters(config: dict[str, Any]) -> int | None:
    """Parameters of a Llama/Qwen2/Qwen3/Mistral-style decoder from its config numbers (None for other types).

    Per layer: q (h x H*d, Qwen2 with bias), k and v (h x K*d each, Qwen2 with bias), o (H*d x h), the gated MLP
    (3 x h x I), two RMSNorms (2h), Qwen3's q/k norms (2d); plus the embedding (V x h), the LM head unless tied,
    and the final norm (h)."""
    kind = config.get("model_type")
    if kind not in COUNTED_TYPES:
        return None
    h, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    vocab, heads = config["vocab_size"], config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    d = config.get("head_dim") or h // heads
    attention = h * heads * d + 2 * h * kv * d + heads * d * h
    if kind == "qwen2" or config.get("attention_bias"):
        attention += heads * d + 2 * kv * d + (h if config.get("attention_bias") else 0)
    if kind == "qwen3":
        attention += 2 * d
    mlp = 3 * h * inter + ((2 * inter + h) if config.get("mlp_bias") else 0)
    per_layer = attention + mlp + 2 * h
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", False) else 2)
    return layers * per_layer + embeddings + h


def find_config(model: str, revision: str | None = None) -> tuple[dict[str, Any] | None, str]:
    """`model`'s config numbers and where they came from: the built-in model's settings, a local folder's
    config.json, the Hugging Face cache's (no network), then `KNOWN_CONFIGS`; (None, why) otherwise."""
    if model == BUILTIN_MODEL:
        from ..task import TASK_MODEL_KWARGS
        from ..tiny import build_tokenizer

        kw = TASK_MODEL_KWARGS
        config = {
            "model_type": "llama",
            "hidden_size": kw["hidden_size"],
            "num_hidden_layers": kw["num_layers"],
            "intermediate_size": kw["intermediate_size"],
            "vocab_size": len(build_tokenizer()),
            "num_attention_heads": kw["num_heads"],
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
        }
        return config, "the built-in model's settings (sas_trl.task)"
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text(encoding="utf-8")), f"{folder / 'config.json'}"
    cached = _cached_config(model, revision)
    if cached is not None:
        return cached, "its config.json in the Hugging Face cache"
    if model in KNOWN_CONFIGS:
        return KNOWN_CONFIGS[model], "sas-trl's table of known models (no config.json at hand)"
    return None, "no config.json here or in the Hugging Face cache, and not a known model"


def model_size(model: str, revision: str | None = None, dtype: str | None = None) -> ModelSize:
    """The parameter count of `model` without loading it (`find_config`); unknown when no config is found."""
    config, source = find_config(model, revision)
    if config is None:
        return ModelSize(None, source, _bytes(dtype))
    return _sized(config, source, dtype)


# PEFT's default LoRA targets for the counted architectures, and the shapes (in, out) of each linear layer.
LORA_DEFAULT_TARGETS = ("q_proj", "v_proj")


def lora_parameters(config: dict[str, Any], r: int, targets) -> int | None:
    """A LoRA adapter's parameters: r x (in + out) for each targeted linear layer of every decoder layer
    (`targets` None: PEFT's default q_proj, v_proj; "all-linear": all seven). None when a target is not one of
    the decoder's linear layers or the architecture is not counted."""
    if config.get("model_type") not in COUNTED_TYPES:
        return None
    h, inter, heads = config["hidden_size"], config["intermediate_size"], config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    d = config.get("head_dim") or h // heads
    shapes = {
        "q_proj": (h, heads * d),
        "k_proj": (h, kv * d),
        "v_proj": (h, kv * d),
        "o_proj": (heads * d, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    if targets is None:
        targets = LORA_DEFAULT_TARGETS
    elif targets == "all-linear" or list(targets) == ["all-linear"]:
        targets = tuple(shapes)
    if any(t not in shapes for t in targets):
        return None
    return config["num_hidden_layers"] * sum(r * sum(shapes[t]) for t in set(targets))


def _cached_config(model: str, revision: str | None) -> dict[str, Any] | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id, no cache: simply not cached
        return None
    if not isinstance(path, str):
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _bytes(dtype: str | None, config: dict[str, Any] | None = None) -> int:
    """Bytes per weight: the recipe's `dtype`, else ("auto"/unset) the config's `torch_dtype`, else 2 (bf16)."""
    for value in (dtype, (config or {}).get("torch_dtype"), (config or {}).get("dtype")):
        if isinstance(value, str) and value.replace("torch.", "") in DTYPE_BYTES:
            return DTYPE_BYTES[value.replace("torch.", "")]
    return 2


def _sized(config: dict[str, Any], source: str, dtype: str | None) -> ModelSize:
    try:
        count = count_parameters(config)
    except (KeyError, TypeError):
        count = None
    if count is None:
        source += f" (model_type {config.get('model_type')!r} is not one sas-trl counts: {', '.join(COUNTED_TYPES)})"
    return ModelSize(count, source, _bytes(dtype, config))


@dataclass(frozen=True)
class Launch:
    """How the run is spread: processes in all, and how parameters, gradients and optimizer state are sharded."""

    processes: int
    engine: str  # "single", "ddp", "deepspeed", "fsdp", "multi_cpu"
    zero_stage: int = 0

    @property
    def label(self) -> str:
        if self.engine == "deepspeed":
            return f"DeepSpeed ZeRO-{self.zero_stage}"
        return {"single": "one process", "ddp": "DDP", "fsdp": "FSDP (full sharding)", "multi_cpu": "CPU"}[self.engine]


def launch_of(config: dict[str, Any], num_processes: int | None) -> Launch:
    """The `Launch` an accelerate config (a mapping, {} for none) and `num_processes` describe."""
    processes = num_processes or int(config.get("num_processes", 1) or 1)
    kind = str(config.get("distributed_type", "NO")).upper()
    if kind == "DEEPSPEED":
        stage = int((config.get("deepspeed_config") or {}).get("zero_stage", 0) or 0)
        return Launch(processes, "deepspeed", stage)
    if kind == "FSDP":
        return Launch(processes, "fsdp")
    if kind == "MULTI_CPU":
        return Launch(processes, "multi_cpu")
    return Launch(processes, "ddp" if processes > 1 else "single")


@dataclass(frozen=True)
class Batch:
    """Rollouts (prompts x generations) per optimizer step, per process and in all, and per generation."""

    per_device: int  # per_device_train_batch_size: rollouts per forward/backward on one process
    accumulation: int
    processes: int
    generations: int  # num_generations: rollouts per prompt
    steps_per_generation: int

    @property
    def rollouts_per_step_per_process(self) -> int:
        return self.per_device * self.accumulation

    @property
    def rollouts_per_step(self) -> int:
        return self.rollouts_per_step_per_process * self.processes

    @property
    def rollouts_per_generation(self) -> int:
        return self.per_device * self.processes * self.steps_per_generation

    def prompts(self, rollouts: int) -> float:
        return rollouts / self.generations


def bytes_text(value: float) -> str:
    """`value` bytes in GB (1e9) with 1 decimal, or MB below 0.1 GB."""
    return f"{value / GB:,.1f} GB" if value >= 0.1 * GB else f"{value / 1e6:,.1f} MB"


def checkpoint_bytes(
    n: int, weight_bytes: int, launch: Launch, save_only_model: bool, adapter: int | None = None
) -> dict[str, float]:
    """One checkpoint's files (estimate), by part: the weights, and the optimizer state as the engine saves it.
    With a LoRA adapter of `adapter` parameters, only the adapter (fp32) and its optimizer state are saved."""
    if adapter is not None:
        parts = {"LoRA adapter weights (fp32)": 4.0 * adapter}
        return parts if save_only_model else {**parts, "optimizer state (AdamW fp32, the adapter's)": 8.0 * adapter}
    parts = {"weights (model dtype)": float(n * weight_bytes)}
    if save_only_model:
        return parts
    if launch.engine == "deepspeed":
        parts["DeepSpeed optimizer state (fp32 master, exp_avg, exp_avg_sq: 12 bytes/param)"] = 12.0 * n
        parts["DeepSpeed's own copy of the weights (bf16)"] = 2.0 * n
    elif launch.engine == "fsdp":
        parts = {
            "FSDP sharded weights (fp32)": 4.0 * n,
            "FSDP optimizer state (exp_avg, exp_avg_sq in fp32)": 8.0 * n,
        }
    else:
        parts["optimizer.pt (AdamW's two states in the model dtype)"] = 2.0 * n * weight_bytes
    return parts


def memory_per_device(
    n: int, weight_bytes: int, launch: Launch, reference_model: bool, adapter: int | None = None
) -> dict[str, float]:
    """Per-device bytes of weights, gradients, optimizer state and the reference model (estimate, AdamW).

    With a LoRA adapter of `adapter` parameters the base weights are frozen (sharded only under ZeRO-3 / FSDP)
    and the adapter carries fp32 weights, gradients and AdamW state (16 bytes per parameter); the reference
    model is the base with the adapter switched off (no copy)."""
    p = max(launch.processes, 1)
    if adapter is not None:
        sharded = launch.engine == "fsdp" or (launch.engine == "deepspeed" and launch.zero_stage >= 3)
        base = n * weight_bytes / (p if sharded else 1)
        return {
            f"base weights (frozen, model dtype{', sharded' if sharded else ''})": base,
            "LoRA adapter (fp32 weights, gradients, AdamW: 16 bytes/param)": 16.0 * adapter,
        }
    if launch.engine == "deepspeed":
        stage = launch.zero_stage
        weights = 2.0 * n / (p if stage >= 3 else 1)
        grads = 2.0 * n / (p if stage >= 2 else 1)
        optimizer = 12.0 * n / (p if stage >= 1 else 1)
        reference = 2.0 * n / (p if stage >= 3 else 1)
        return {
            f"weights (bf16{', sharded' if stage >= 3 else ''})": weights,
            f"gradients (bf16{', sharded' if stage >= 2 else ''})": grads,
            f"optimizer state (fp32 master + AdamW, 12 bytes/param{', sharded' if stage >= 1 else ''})": optimizer,
            **({f"reference model (bf16{', sharded' if stage >= 3 else ''})": reference} if reference_model else {}),
        }
    if launch.engine == "fsdp":
        return {
            "weights and gradients (fp32 shards, 8 bytes/param / processes)": 8.0 * n / p,
            "optimizer state (AdamW fp32, 8 bytes/param / processes)": 8.0 * n / p,
            **({"reference model (bf16, sharded)": 2.0 * n / p} if reference_model else {}),
        }
    return {
        "weights (model dtype)": float(n * weight_bytes),
        "gradients (model dtype)": float(n * weight_bytes),
        "optimizer state (AdamW's two states in the model dtype)": 2.0 * n * weight_bytes,
        **({"reference model (model dtype)": float(n * weight_bytes)} if reference_model else {}),
    }


def activation_bytes(
    config_numbers: tuple[int, int, int] | None, micro_batch: int, tokens: int, completion: int, checkpointing: bool
) -> dict[str, float]:
    """A rough activation and logits term for one micro-batch (bf16): (hidden, layers, vocab) from the config.

    With activation checkpointing each layer keeps its input (2 B T h bytes) and one layer is recomputed at a time
    (~34 B T h bytes, the usual per-layer count with fused attention); without it every layer keeps ~34 B T h.
    The completion's logits (B x C x V, bf16) and their gradient come on top."""
    if config_numbers is None:
        return {}
    hidden, layers, vocab = config_numbers
    per_layer = 34.0 * micro_batch * tokens * hidden
    kept = 2.0 * micro_batch * tokens * hidden * layers + per_layer  # layer inputs + one layer recomputed
    activations = kept if checkpointing else per_layer * layers
    logits = 2.0 * 2 * micro_batch * completion * vocab
    label = "checkpointed" if checkpointing else "no checkpointing"
    return {
        f"activations ({label}; rough: {micro_batch} x {tokens:,} tokens)": activations,
        f"completion logits and their gradient (rough: {micro_batch} x {completion:,} x {vocab:,}, bf16)": logits,
    }


def config_numbers(model: str, revision: str | None = None) -> tuple[int, int, int] | None:
    """(hidden_size, num_hidden_layers, vocab_size) from `find_config`, or None (and for the built-in model,
    whose activations are negligible)."""
    if model == BUILTIN_MODEL:
        return None
    config, _ = find_config(model, revision)
    try:
        return (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) if config else None
    except (KeyError, TypeError):
        return None
