"""The built-in model's warm-up cache: `builtin:tiny` built and supervised once, reused while its settings match.

The cache is `output_dir/base_model`, with `sas_trl_warmup.json` (written last, so it also marks the build
complete) recording the settings that made it; any difference rebuilds it, with a message saying why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_MODEL
from .arguments import RunArguments

WARMUP_KEY = "sas_trl_warmup.json"  # next to the cached built-in model: the settings that made it


def warmup_settings(run_args: RunArguments, seed: int) -> dict[str, Any]:
    """Everything the cached warm-up of the built-in model depends on."""
    from ..task import TASK_MODEL_KWARGS

    return {
        "model": BUILTIN_MODEL,
        "model_kwargs": dict(TASK_MODEL_KWARGS),
        "seed": seed,
        "sft_warmup_steps": run_args.sft_warmup_steps,
        "builtin_min_terms": run_args.builtin_min_terms,
        "builtin_max_terms": run_args.builtin_max_terms,
    }


def cached_warmup_changes(base: Path, settings: dict[str, Any]) -> str | None:
    """None when `base` holds a warm-up made with `settings`, else why it must be rebuilt."""
    key = base / WARMUP_KEY
    if not (base / "config.json").is_file():
        return "no cached model" if not base.exists() else "an incomplete cached model"
    if not key.is_file():
        return "a cached model without a record of its settings"
    try:
        saved = json.loads(key.read_text())
    except ValueError:
        return f"an unreadable {WARMUP_KEY}"
    changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
    if not changed:
        return None
    return (
        "a cached model made with other settings ("
        + ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        + ")"
    )


def prepare_model(run_args: RunArguments, model_args, args, state) -> str:
    """The model to train: a Hub id or folder as given, or the built-in tiny model (built and warmed up once).

    The built-in model is cached in `output_dir/base_model` with the settings that made it
    (`sas_trl_warmup.json`: seed, sft_warmup_steps, builtin_* terms); it is reused only when they match and
    rebuilt, with a message saying why, when they differ.
    """
    if model_args.model_name_or_path != BUILTIN_MODEL:
        return model_args.model_name_or_path
    base = Path(args.output_dir) / "base_model"
    settings = warmup_settings(run_args, args.seed)
    with state.main_process_first():  # one process builds it, the others load the saved copy
        if state.is_main_process:
            reason = cached_warmup_changes(base, settings)
            if reason is not None:
                if base.exists():
                    import shutil

                    print(f"sas-trl: rebuilding {base}: it held {reason}", flush=True)
                    shutil.rmtree(base)
                build_builtin_model(base, run_args, args.seed)
                (base / WARMUP_KEY).write_text(json.dumps(settings, indent=2) + "\n")  # last: marks it complete
            else:
                print(f"sas-trl: reusing the warmed-up {BUILTIN_MODEL} in {base} (same settings)", flush=True)
    return str(base)


def build_builtin_model(path: Path, run_args: RunArguments, seed: int) -> None:
    """Build the built-in model and tokenizer into `path`, after `sft_warmup_steps` supervised steps if any."""
    from ..task import build_task_model, evaluate, sft_warmup
    from ..tiny import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_task_model(tokenizer, seed=seed)
    sft_steps, task = run_args.sft_warmup_steps, run_args.builtin_task()
    if sft_steps:
        start = time.perf_counter()
        print(f"sas-trl: supervised warm-up of {BUILTIN_MODEL} on the built-in task, {sft_steps} steps", flush=True)
        model = sft_warmup(model, tokenizer, sft_steps, seed=seed, task=task, log_every=max(1, sft_steps // 5))
        result = evaluate(model, tokenizer, n=100, greedy=True, task=task)
        print(
            f"sas-trl: warm-up done in {time.perf_counter() - start:.0f} s; greedy accuracy "
            f"{result.accuracy:.2f}, {result.mean_tokens:.1f} tokens",
            flush=True,
        )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
