"""The training data: GRPO prompts from the built-in task or a DeepScaleR-style table, long prompts dropped."""

from __future__ import annotations

from ..constants import BUILTIN_DATASET
from ..errors import RecipeError, UserError
from .arguments import RunArguments


def offline_dataset_hint(name: str) -> str:
    """What to do when the Hub dataset `name` cannot be reached: a local copy in `dataset_name`."""
    stem = name.rstrip("/").rsplit("/", 1)[-1]
    return (
        f". Without the Hub, save it where the Hub is reachable (datasets.load_dataset({name!r}, split='train')"
        f".to_json('{stem}.jsonl')) and pass --dataset_name {stem}.jsonl (a local .jsonl, .json or .parquet file "
        "with the problem and answer columns)"
    )


def load_train_dataset(run_args: RunArguments, args):
    """GRPO prompts (`prompt` messages, `answer`): the built-in task or a DeepScaleR-style table."""
    if run_args.dataset_name == BUILTIN_DATASET:
        from ..task import grpo_dataset

        size = min(run_args.builtin_num_problems, run_args.max_train_samples or run_args.builtin_num_problems)
        return grpo_dataset(size, seed=args.seed, task=run_args.builtin_task())
    return _load_table(run_args, run_args.dataset_split, run_args.max_train_samples)


def load_eval_dataset(run_args: RunArguments, args):
    """TRL's evaluation set: the `dataset_test_split` split of the same Hub dataset when `eval_strategy` is not
    "no" (None when it is). The built-in task draws other problems (seed + 1); a local file has one table and no
    test split, so evaluating on it is refused."""
    if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
        return None
    if run_args.dataset_name == BUILTIN_DATASET:
        from ..task import grpo_dataset

        return grpo_dataset(
            min(EVAL_PROBLEMS, run_args.builtin_num_problems), seed=args.seed + 1, task=run_args.builtin_task()
        )
    if _is_file(run_args.dataset_name):
        raise RecipeError(
            f"eval_strategy {args.eval_strategy.value!r} evaluates on dataset_test_split, but dataset_name "
            f"{run_args.dataset_name!r} is a local file (one table, no splits): pass --eval_strategy no, or a Hub "
            "dataset with that split"
        )
    return _load_table(run_args, run_args.dataset_test_split, None)


EVAL_PROBLEMS = 256  # the built-in task's evaluation problems


def _is_file(name: str) -> bool:
    from pathlib import Path

    return Path(name).expanduser().exists() or Path(name).suffix != "" or name.startswith((".", "/", "~"))


def _load_table(run_args: RunArguments, split: str, limit: int | None):
    from ..data import load_deepscaler

    try:
        return load_deepscaler(
            run_args.dataset_name,
            split=split,
            prompt_template=run_args.prompt_template,
            problem_column=run_args.problem_column,
            answer_column=run_args.answer_column,
            limit=limit,
            config=run_args.dataset_config,
        )
    except UserError as err:
        if not str(err).startswith("Hub dataset"):
            raise
        raise UserError(f"{err}{offline_dataset_hint(run_args.dataset_name)}") from err


def drop_long_prompts(dataset, model_id: str, model_args, max_tokens: int):
    """Keep problems whose chat-templated prompt fits in `max_tokens` (the paper's 1024-token prompt limit)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, revision=model_args.model_revision)

    def fits(batch):
        ids = tokenizer.apply_chat_template(batch["prompt"], add_generation_prompt=True, tokenize=True)
        return [len(x) <= max_tokens for x in ids]

    kept = dataset.filter(fits, batched=True)
    if len(kept) == 0:
        raise RecipeError(f"max_prompt_tokens={max_tokens}: no prompt of the dataset is that short")
    return kept
