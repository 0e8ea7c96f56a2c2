"""Hugging Face Hub: check access before training, write a model card, upload after training.

Uploading is done here rather than by `Trainer(push_to_hub=True)`: the access check runs in seconds at
start, and a failed upload leaves the local checkpoint in place with the command that retries it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..output_files import write_text
from ..redaction import find_secrets, redact_text, remember, secret_values
from .arguments import RunArguments
from .recipe_files import dump_recipe

# The project's source repository (pyproject's [project.urls] Repository; a test keeps the two equal).
REPOSITORY_URL = "https://github.com/sas-trl/sas-trl"
CARD = "README.md"
EVAL_RESULTS = "eval_results.md"  # evaluation.runner.TABLE_FILE
EVAL_SAMPLES = "eval_samples.jsonl"  # evaluation.runner.SAMPLES_FILE: its header records the weights evaluated
METRICS = "train_metrics.json"
NO_EVALUATION = "No evaluation was run for this checkpoint yet."
# Never uploaded: intermediate checkpoints, the built-in model's starting copy, torch state, logger folders.
UPLOAD_IGNORE = ("checkpoint-*", "checkpoint-*/**", "base_model/**", "*.pt", "runs/**", "wandb/**")
SCAN_LIMIT = 256 * 2**20  # files larger than this (weights) are not searched for credentials
PARSE_LIMIT = 16 * 2**20  # YAML/JSON files up to this size are also searched by key name
SAS_FIELDS = (
    "sas_ratio",
    "sas_strategy",
    "sas_selection",
    "sas_granularity",
    "sas_ranking",
    "sas_failed_scope",
    "sas_count_mode",
    "sas_min_steps",
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


def card_title(args) -> str:
    """`run_name`, else `hub_model_id`'s name, else the output folder's name (never "None")."""
    for name in (getattr(args, "run_name", None), getattr(args, "hub_model_id", None)):
        if name:
            return str(name).rstrip("/").rsplit("/", 1)[-1]
    return Path(args.output_dir).resolve().name


def _recipe_value(recipe: dict[str, Any], key: str) -> Any:
    """A `RunArguments` key from the resolved recipe, or its default when the recipe leaves it out."""
    if key in recipe:
        return recipe[key]
    default = RunArguments.__dataclass_fields__[key]
    return default.default_factory() if callable(default.default_factory) else default.default


def _inline(value: Any) -> str:
    """A recipe value on one line, in backticks."""
    return f"`{json.dumps(value) if isinstance(value, dict | list) else value}`"


def method_text(args, base: str, recipe: dict[str, Any]) -> str:
    """What was trained, in words: SAS with its settings, or (SAS off) the baseline's rewards and transforms."""
    rule = args.sas_rule
    rewards = _recipe_value(recipe, "reward_funcs")
    reward_params = _recipe_value(recipe, "reward_params") or {}
    transforms = _recipe_value(recipe, "prompt_transforms") or []
    reward_line = f"Rewards: {', '.join(f'`{r}`' for r in rewards)}"
    if getattr(args, "reward_weights", None):
        reward_line += f" (weights {', '.join(f'{w:g}' for w in args.reward_weights)})"
    if reward_params:
        reward_line += f"; reward parameters {_inline(reward_params)}"
    if transforms:
        reward_line += f"; prompt transforms {', '.join(f'`{t}`' for t in transforms)}"
        transform_params = _recipe_value(recipe, "transform_params") or {}
        if transform_params:
            reward_line += f" with {_inline(transform_params)}"
    if rule.needs_labels:
        return (
            f"Post-trained from `{base}` with GRPO and the diagnostic `{rule.selection}` selection: advantages zeroed "
            "by the built-in task's ground-truth step labels (an oracle that bounds what Step-level Advantage "
            f"Selection can gain, not a method).\n\n{reward_line}. The full settings and recipe are below."
        )
    if rule.enabled:
        scope = {"both": "correct and failed rollouts", "correct_only": "correct rollouts only"}.get(
            rule.strategy, "failed rollouts only"
        )
        reasoning = f"before {rule.think_end!r}" if rule.think_end else "in the whole completion"
        return (
            f"Post-trained from `{base}` with GRPO and **Step-level Advantage Selection** (SAS, arXiv 2604.24003): "
            f"in correct rollouts the least confident reasoning steps, and in verifier-failed rollouts the most "
            f"confident ones, get advantage 0. Here: ratio r = {rule.ratio:g} applied to {scope}, "
            f"`{rule.selection}` selection of `{rule.granularity}`s ranked by `{rule.ranking}` log-prob, "
            f"`{rule.count_mode}` counting, steps ending at {rule.delimiter!r} {reasoning}.\n\n"
            f"{reward_line}. The full settings and recipe are below."
        )
    kind = "GRPO" if list(rewards) == ["accuracy"] and not transforms else "a GRPO baseline"
    return (
        f"Post-trained from `{base}` with {kind}, with Step-level Advantage Selection **off** "
        f"(`sas_strategy: {rule.strategy}`, `sas_ratio: {rule.ratio:g}`): every token keeps its GRPO advantage.\n\n"
        f"{reward_line}. The full recipe is below."
    )


def model_card(
    repo_id: str | None,
    args,
    base_model: str,
    recipe: dict[str, Any],
    metrics: dict[str, float],
    eval_table: str | None,
) -> str:
    """Markdown model card: what was trained (SAS and its settings, or the baseline), its recipe, how it went.

    `repo_id` is the Hub repo pushed to (None when not pushing); the title is `card_title(args)`.
    """
    rule = args.sas_rule
    settings = {**rule.settings(), **{name: getattr(args, name) for name in SAS_FIELDS if hasattr(args, name)}}
    sas_rows = "\n".join(f"| `{name}` | `{value!r}` |" for name, value in settings.items())
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
    evaluation = eval_table.strip() if eval_table else NO_EVALUATION
    base = base_model if not base_model.startswith("/") else Path(base_model).name
    tags = ("sas-trl", *(("sas",) if rule.enabled else ()), "grpo", "trl", "reasoning")
    tag_lines = "\n".join(f"- {tag}" for tag in tags)
    hub_line = f"\nHub repository: `{repo_id}`.\n" if repo_id else ""
    return redact_text(f"""---
library_name: transformers
base_model: {base}
tags:
{tag_lines}
---

# {card_title(args)}

{method_text(args, base, recipe)}
Trained with [sas-trl]({REPOSITORY_URL}).
{hub_line}
- Steps: {args.max_steps if args.max_steps > 0 else "see recipe"}; max completion length: {args.max_completion_length}
- Generations per prompt: {args.num_generations}; learning rate: {args.learning_rate}; KL beta: {args.beta}

## SAS settings{"" if rule.enabled else " (off)"}

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
""")


def write_card(
    output_dir: str | Path,
    repo_id: str | None,
    args,
    base_model: str,
    recipe: dict[str, Any],
    log_history: list[dict[str, Any]],
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Write README.md, recipe.yaml and train_metrics.json into the output folder.

    The card's evaluation is `eval_results.md` only when it evaluates the weights now in the folder
    (`card_evaluation`); an earlier model's evaluation left there is named in the card and told to `echo`.
    """
    output_dir = Path(output_dir)
    metrics = final_metrics(log_history)
    evaluation, left_out = card_evaluation(output_dir)
    if left_out and echo is not None:
        echo(left_out)
    write_text(output_dir, METRICS, json.dumps(metrics, indent=2))  # a link there is replaced, not written through
    write_text(output_dir, "recipe.yaml", dump_recipe(recipe))
    return write_text(output_dir, CARD, model_card(repo_id, args, base_model, recipe, metrics, evaluation))


def evaluated_weights(output_dir: Path) -> str | None:
    """The weights fingerprint the folder's samples file was drawn from (its header's `weights`), or None."""
    try:
        with open(output_dir / EVAL_SAMPLES, encoding="utf-8") as f:
            header = json.loads(f.readline()).get("header")
    except (OSError, ValueError, AttributeError):
        return None
    return header.get("weights") if isinstance(header, dict) else None


def card_evaluation(output_dir: str | Path) -> tuple[str | None, str | None]:
    """The card's Evaluation section, and what was left out of it (None when nothing was).

    `eval_results.md` goes into the card only when its samples file records the weights now in the folder
    (`evaluation.backends.model_fingerprint`): after `--overwrite_output_dir` or a resumed run trained further,
    the table left in the folder evaluates an earlier model, and the card says so instead of showing it. The
    evaluation's files are kept as they are.
    """
    from ..evaluation.backends import model_fingerprint

    output_dir = Path(output_dir)
    table = output_dir / EVAL_RESULTS
    if not table.is_file() or table.is_symlink():  # a planted link would pull another file's text into the card
        return None, None
    evaluated, now = evaluated_weights(output_dir), model_fingerprint(str(output_dir))
    if evaluated is not None and evaluated == now:
        return table.read_text(), None
    what = (
        f"the weights {evaluated}, not the ones now in the folder ({now}): an earlier model's evaluation"
        if evaluated
        else f"weights it does not record (no readable {EVAL_SAMPLES} beside it)"
    )
    section = (
        f"No evaluation of this model yet. The folder's `{EVAL_RESULTS}` evaluates {what}; it is not shown here. "
        f"Evaluate this model with `sas-trl eval --model DIR --output_dir DIR --overwrite` (DIR: this folder; "
        f"`--overwrite` replaces that evaluation) and `sas-trl push` puts its table here."
    )
    note = f"the model card leaves out {output_dir / EVAL_RESULTS}: it evaluates {what} (the file is kept)"
    return section, note


def add_eval_table(output_dir: str | Path, echo: Callable[[str], None] | None = None) -> bool:
    """Put `eval_results.md` (written by `sas-trl eval --output_dir` in this folder) into the model card, when it
    evaluates the weights now in the folder (`card_evaluation`; else the card says why it is left out).

    Returns True if the table went into the card (and changed it). The card's Evaluation section is replaced,
    the rest is kept.
    """
    output_dir = Path(output_dir)
    card = output_dir / CARD
    section, left_out = card_evaluation(output_dir)
    if not card.is_file() or section is None:
        return False
    if left_out and echo is not None:
        echo(left_out)
    text = card.read_text()
    start, end = text.find("## Evaluation\n"), text.find("\n## Recipe")
    if start < 0 or end < start:
        return False
    updated = redact_text(f"{text[:start]}## Evaluation\n\n{section.strip()}\n{text[end:]}")
    if updated != text:
        write_text(output_dir, CARD, updated)
    return updated != text and left_out is None


def retry_command(output_dir: str | Path, repo_id: str) -> str:
    return f"sas-trl push --output_dir {shlex.quote(str(output_dir))} --hub_model_id {shlex.quote(repo_id)}"


def upload(
    output_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    echo: Callable[[str], None] | None = None,
) -> str:
    """Upload the output folder (model, tokenizer, card; not the intermediate checkpoints). Returns its URL.

    No credential is uploaded: a file that holds one (`upload_exclusions`) stays local, told to `echo`.
    """
    from huggingface_hub import HfApi

    remember(token)
    ignore = list(UPLOAD_IGNORE)
    for relative, why in upload_exclusions(output_dir, ignore).items():
        ignore.append(_literal_pattern(relative))
        if echo is not None:
            echo(f"not uploaded: {relative} ({why})")
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=ignore,
        commit_message="Upload model trained with sas-trl",
    )
    return f"https://huggingface.co/{repo_id}"


def upload_exclusions(output_dir: str | Path, ignore: list[str]) -> dict[str, str]:
    """The files `upload_folder(ignore_patterns=ignore)` would send that must stay local, and why: a link that
    leads out of the folder, or a file that holds a credential (a known one by value, the Hub's stored token
    included, or a secret-named key with a value in a YAML/JSON file, e.g. a study run's `study_recipe.yaml`)."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import filter_repo_objects
    from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

    remember(get_token())
    folder = Path(output_dir).expanduser().resolve()
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
    sent = filter_repo_objects(list(files), ignore_patterns=[*ignore, *DEFAULT_IGNORE_PATTERNS])
    values = [v.encode() for v in secret_values()]
    excluded = {}
    for relative in sent:
        path = files[relative]
        if not path.resolve().is_relative_to(folder):
            excluded[relative] = f"a link to {path.resolve()}, outside the folder"
            continue
        why = _credential_in(path, values)
        if why is not None:
            excluded[relative] = why
    return excluded


def _credential_in(path: Path, values: list[bytes]) -> str | None:
    """Why `path` holds a credential, or None. The model's own files (weights, config, tokenizer: transformers
    writes them, and a tokenizer's `pad_token` is no credential) are searched by value only."""
    from fnmatch import fnmatch

    from ..evaluation.backends import MODEL_FILE_PATTERNS

    size = path.stat().st_size
    if size > SCAN_LIMIT or path.suffix == ".safetensors":
        return None
    data = path.read_bytes()
    if any(value in data for value in values):
        return "holds a credential's value"
    model_file = any(fnmatch(path.name, pattern) for pattern in MODEL_FILE_PATTERNS)
    if model_file or size > PARSE_LIMIT or path.suffix not in (".yaml", ".yml", ".json"):
        return None
    import yaml

    try:
        document = json.loads(data) if path.suffix == ".json" else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError):
        return None
    keys = find_secrets(document)
    return f"holds a credential in clear: {', '.join(keys[:3])}" if keys else None


def _literal_pattern(relative: str) -> str:
    """An `fnmatch` pattern that matches exactly this path."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in relative)
