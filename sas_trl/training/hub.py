"""Hugging Face Hub: check access before training, write a model card, upload after training.

Uploading is done here rather than by `Trainer(push_to_hub=True)`: the access check runs in seconds at
start, and a failed upload leaves the local checkpoint in place with the command that retries it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ..errors import UserError
from .recipe_files import dump_recipe

CARD = "README.md"
EVAL_RESULTS = "eval_results.md"
METRICS = "train_metrics.json"
SAS_FIELDS = (
    "sas_ratio",
    "sas_strategy",
    "sas_selection",
    "sas_granularity",
    "sas_ranking",
    "sas_failed_scope",
    "sas_count_mode",
    "sas_delimiter",
    "sas_think_end",
    "sas_correct_reward_index",
    "sas_correct_threshold",
)


def hub_repo_id(args) -> str:
    """`hub_model_id`, or the output folder's name (the user's namespace is added by the Hub)."""
    return args.hub_model_id or Path(args.output_dir).name


def check_hub_access(repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Fail in seconds, before training, when the repo cannot be written. Returns the full repo id."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        user = api.whoami()["name"]
    except Exception as err:  # offline, no token, bad token: all the same to the user
        raise UserError(
            "push_to_hub is set but the Hugging Face Hub cannot be reached with valid credentials "
            f"({type(err).__name__}: {err}). Log in with `hf auth login` or set HF_TOKEN, or drop push_to_hub."
        ) from err
    full_id = repo_id if "/" in repo_id else f"{user}/{repo_id}"
    try:
        api.create_repo(full_id, exist_ok=True, private=private)
    except Exception as err:
        raise UserError(f"cannot create or write Hub repo {full_id!r} as {user!r}: {err}") from err
    return full_id


def final_metrics(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged value of every training metric (SAS metrics, reward, lengths, loss, ...)."""
    metrics: dict[str, float] = {}
    for entry in log_history:
        for key, value in entry.items():
            if isinstance(value, int | float) and key not in ("epoch", "step"):
                metrics[key] = value
    return metrics


def model_card(
    repo_id: str, args, base_model: str, recipe: dict[str, Any], metrics: dict[str, float], eval_table: str | None
) -> str:
    """Markdown model card: what was trained, with which SAS settings and recipe, and how it went."""
    sas_rows = "\n".join(f"| `{name}` | `{getattr(args, name)!r}` |" for name in SAS_FIELDS)
    keys = (
        "reward",
        "completions/mean_length",
        "sas/zeroed_frac_correct",
        "sas/zeroed_frac_failed",
        "sas/truncated_frac",
        "loss",
        "train_runtime",
    )
    metric_rows = "\n".join(f"| `{k}` | {metrics[k]:.4g} |" for k in keys if k in metrics)
    evaluation = eval_table.strip() if eval_table else "No evaluation was run for this checkpoint yet."
    base = base_model if not base_model.startswith("/") else Path(base_model).name
    return f"""---
library_name: transformers
base_model: {base}
tags:
- sas-trl
- grpo
- trl
- reasoning
---

# {repo_id}

Post-trained from `{base}` with GRPO and **Step-level Advantage Selection** (SAS, arXiv 2604.24003)
using [sas-trl](https://pypi.org/project/sas-trl/): in correct rollouts the least confident reasoning
steps, and in verifier-failed rollouts the most confident ones, get advantage 0.

- Steps: {args.max_steps if args.max_steps > 0 else "see recipe"}; max completion length: {args.max_completion_length}
- Generations per prompt: {args.num_generations}; learning rate: {args.learning_rate}; KL beta: {args.beta}

## SAS settings

| setting | value |
| --- | --- |
{sas_rows}

## Training metrics (last logged values)

| metric | value |
| --- | --- |
{metric_rows or "| (none logged) | |"}

## Evaluation

{evaluation}

## Recipe

Reproduce with `sas-trl train --recipe recipe.yaml`:

```yaml
{dump_recipe(recipe).strip()}
```
"""


def write_card(
    output_dir: str | Path,
    repo_id: str,
    args,
    base_model: str,
    recipe: dict[str, Any],
    log_history: list[dict[str, Any]],
) -> Path:
    """Write README.md, recipe.yaml and train_metrics.json into the output folder."""
    output_dir = Path(output_dir)
    metrics = final_metrics(log_history)
    eval_path = output_dir / EVAL_RESULTS
    eval_table = eval_path.read_text() if eval_path.is_file() else None
    (output_dir / METRICS).write_text(json.dumps(metrics, indent=2))
    (output_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    card = output_dir / CARD
    card.write_text(model_card(repo_id, args, base_model, recipe, metrics, eval_table))
    return card


def add_eval_table(output_dir: str | Path) -> bool:
    """Put `eval_results.md` (written by `sas-trl eval --output_dir` in this folder) into the model card.

    Returns True if the card changed. The card's Evaluation section is replaced, the rest is kept.
    """
    output_dir = Path(output_dir)
    card, table = output_dir / CARD, output_dir / EVAL_RESULTS
    if not (card.is_file() and table.is_file()):
        return False
    text = card.read_text()
    start, end = text.find("## Evaluation\n"), text.find("\n## Recipe")
    if start < 0 or end < start:
        return False
    updated = f"{text[:start]}## Evaluation\n\n{table.read_text().strip()}\n{text[end:]}"
    card.write_text(updated)
    return updated != text


def retry_command(output_dir: str | Path, repo_id: str) -> str:
    return f"sas-trl push --output_dir {shlex.quote(str(output_dir))} --hub_model_id {shlex.quote(repo_id)}"


def upload(output_dir: str | Path, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Upload the output folder (model, tokenizer, card; not the intermediate checkpoints). Returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "base_model/**", "*.pt", "runs/**", "wandb/**"],
        commit_message="Upload model trained with sas-trl",
    )
    return f"https://huggingface.co/{repo_id}"
