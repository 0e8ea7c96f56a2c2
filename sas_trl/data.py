"""Training data, from the Hugging Face Hub or local files, checked early; the table loading evaluation shares.

Training (`load_deepscaler`): DeepScaleR-Preview-Dataset with the paper's prompt as one user message,
giving a `prompt` column (chat messages) and an `answer` column that the reward reads through TRL's
reward kwargs. Evaluation sets live in `sas_trl.evaluation.datasets`.

A source is a Hub dataset id or a local `.jsonl`, `.json` or `.parquet` file. Bad data fails here, with a
message that names the problem: a missing column (and the columns found), an empty dataset or split,
an unsupported file type.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset, load_dataset

from .constants import DEEPSCALER_ID, PROMPT_TEMPLATE
from .rewards import gold_strings

FILE_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


# --------------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------------


def load_table(source: str | Path, split: str = "train", config: str | None = None) -> Dataset:
    """Load a Hub dataset (`owner/name`, its `config` and `split`) or a local file (one table; `split` unused).

    Raises:
        FileNotFoundError: a local-looking path that does not exist.
        ValueError: an unsupported file type, or an empty dataset or split.
    """
    path = Path(source).expanduser()
    looks_local = path.exists() or path.suffix != "" or str(source).startswith((".", "/", "~"))
    if looks_local:
        if not path.is_file():
            raise FileNotFoundError(f"dataset file {str(source)!r} does not exist (or is not a file)")
        builder = FILE_TYPES.get(path.suffix.lower())
        if builder is None:
            accepted = ", ".join(FILE_TYPES)
            raise ValueError(
                f"unsupported file type {path.suffix or '(none)'!r} for {str(source)!r}: accepted types are {accepted}"
            )
        where = str(source)
        try:
            dataset = load_dataset(builder, data_files=str(path), split="train")
        except StopIteration:  # how the json builder reacts to a file without a single record
            raise ValueError(f"dataset {where} is empty") from None
    else:
        dataset = load_dataset(str(source), config, split=split)
        where = f"{source} (config {config!r}, split {split!r})" if config else f"{source} (split {split!r})"
    if len(dataset) == 0:
        raise ValueError(f"dataset {where} is empty")
    return dataset


def require_columns(dataset: Dataset, columns: Sequence[str], source: str) -> None:
    """Raise a ValueError naming the first missing column and listing the columns found."""
    for column in columns:
        if column not in dataset.column_names:
            raise ValueError(f"column {column!r} not found in {source}; columns found: {dataset.column_names}")


def format_prompt(template: str, **fields: str) -> str:
    """Fill `{name}` fields by plain replacement: a template's literal `\\boxed{}` must survive."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


def text_cell(value, column: str, row: int, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"row {row} of {source}: column {column!r} must be a non-empty string, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------------------------------


def load_deepscaler(
    source: str | Path = DEEPSCALER_ID,
    split: str = "train",
    prompt_template: str = PROMPT_TEMPLATE,
    problem_column: str = "problem",
    answer_column: str = "answer",
    prompt_key: str = "prompt",
    answer_key: str = "answer",
    limit: int | None = None,
) -> Dataset:
    """DeepScaleR-Preview-Dataset (or any problem/answer table) as GRPO prompts.

    Returns a dataset with `prompt_key` = [{"role": "user", "content": template(problem)}] and
    `answer_key` = the gold answer as given (str, number or list; the reward accepts all three).
    """
    dataset = load_table(source, split)
    require_columns(dataset, [problem_column, answer_column], str(source))
    if "{problem}" not in prompt_template:
        raise ValueError(f"prompt_template must contain '{{problem}}', got {prompt_template!r}")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    source = str(source)

    def convert(row: dict, index: int) -> dict:
        problem = text_cell(row[problem_column], problem_column, index, source)
        if not any(gold_strings(row[answer_column])):
            raise ValueError(f"row {index} of {source}: column {answer_column!r} is empty")
        content = format_prompt(prompt_template, problem=problem)
        return {prompt_key: [{"role": "user", "content": content}], answer_key: row[answer_column]}

    # Rebuilt rather than mapped: the answer column may change type (e.g. float) and extra columns go.
    rows = [convert(row, i) for i, row in enumerate(dataset)]
    return Dataset.from_list(rows)
