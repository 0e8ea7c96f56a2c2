"""Training data, from the Hugging Face Hub or local files, checked early; the table loading evaluation shares.

Training (`load_deepscaler`): DeepScaleR-Preview-Dataset with the paper's prompt as one user message,
giving a `prompt` column (chat messages) and an `answer` column that the reward reads through TRL's
reward kwargs. Evaluation sets live in `sas_trl.evaluation.datasets`.

A source is a Hub dataset id or a local `.jsonl`, `.json` or `.parquet` file. Bad data fails here, before
any model work, with a `UserError` that names the problem: a missing column (and the columns found), a null
or empty cell (and its row), malformed JSON (the file and line), a file whose content is not its suffix's
format, an empty file, dataset or split, an unsupported file type, a Hub dataset that cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from datasets import Dataset, load_dataset

from .constants import DEEPSCALER_ID, PROMPT_TEMPLATE
from .errors import UserError
from .rewards import gold_strings

FILE_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


# --------------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------------


def load_table(source: str | Path, split: str = "train", config: str | None = None) -> Dataset:
    """Load a Hub dataset (`owner/name`, its `config` and `split`) or a local file (one table; `split` unused).

    Every failure is a `UserError` naming the file (and, for malformed JSON, the line) or the Hub dataset: a
    missing file, an unsupported or mislabelled file type, an empty file or split, malformed JSON, a Hub
    dataset that cannot be reached.
    """
    path = Path(source).expanduser()
    looks_local = path.exists() or path.suffix != "" or str(source).startswith((".", "/", "~"))
    if looks_local:
        return _load_local(path, str(source))
    where = f"{source} (config {config!r}, split {split!r})" if config else f"{source} (split {split!r})"
    try:
        dataset = load_dataset(str(source), config, split=split)
    except Exception as err:  # offline, gated, renamed, no such split: the message says which
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") else ""
        raise UserError(
            f"Hub dataset {where} cannot be loaded{offline}: {type(err).__name__}: {_one_line(err)}"
        ) from err
    if len(dataset) == 0:
        raise UserError(f"dataset {where} is empty")
    return dataset


def _load_local(path: Path, where: str) -> Dataset:
    if not path.is_file():
        raise UserError(f"dataset file {where!r} does not exist (or is not a file)")
    builder = FILE_TYPES.get(path.suffix.lower())
    if builder is None:
        accepted = ", ".join(FILE_TYPES)
        raise UserError(
            f"unsupported file type {path.suffix or '(none)'!r} for {where!r}: accepted types are {accepted}"
        )
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.strip():
        raise UserError(f"dataset file {where} is empty")
    if builder == "parquet" and not _is_parquet(path):
        raise UserError(f"dataset file {where} is not a parquet file (no parquet magic bytes); is it another format?")
    try:
        with quiet_datasets():
            dataset = load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:  # noqa: BLE001 - datasets and pyarrow raise many types; the message says which
        if builder == "json":
            problem = json_problem(path)
            if problem:
                raise UserError(f"dataset file {where}: {problem}") from err
        raise UserError(
            f"dataset file {where} cannot be read as {builder}: {type(err).__name__}: {_one_line(err)}"
        ) from err
    if len(dataset) == 0:
        raise UserError(f"dataset file {where} is empty")
    return dataset


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bar and no logged errors while `datasets` reads a local file: a bad file is then reported
    once, as this module's one-line `UserError` (the json reader logs its own error line before raising)."""
    from datasets.utils import logging as datasets_logging

    bars = datasets_logging.is_progress_bar_enabled()
    logger = logging.getLogger("datasets")
    level = logger.level
    datasets_logging.disable_progress_bar()
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets_logging.enable_progress_bar()


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        start = f.read(4)
        f.seek(0, os.SEEK_END)
        if f.tell() < 8:
            return False
        f.seek(-4, os.SEEK_END)
        return start == b"PAR1" and f.read(4) == b"PAR1"


def json_problem(path: Path) -> str | None:
    """Where a .json/.jsonl file is not valid JSON ("line N: ..."), or None if it parses."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        return f"line {line}: not UTF-8 text ({err.reason})"
    if text.lstrip().startswith(("[", "{")) and not _is_json_lines(text):
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            return f"line {err.lineno}, column {err.colno}: malformed JSON ({err.msg})"
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            return f"line {number}: malformed JSON ({err.msg} at column {err.colno})"
        if not isinstance(value, dict):
            return f"line {number}: expected one JSON object per line, got {type(value).__name__}"
    return None


def _is_json_lines(text: str) -> bool:
    """True when the first non-blank line is a complete JSON object (a .jsonl layout), not the start of one."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or repr(err)


def require_columns(dataset: Dataset, columns: Sequence[str], source: str) -> None:
    """Raise a `UserError` naming the first missing column and listing the columns found."""
    for column in columns:
        if column not in dataset.column_names:
            raise UserError(f"column {column!r} not found in {source}; columns found: {dataset.column_names}")


def format_prompt(template: str, **fields: str) -> str:
    """Fill `{name}` fields by plain replacement: a template's literal `\\boxed{}` must survive."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


def text_cell(value, column: str, row: int, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"row {row} of {source}: column {column!r} must be a non-empty string, got {value!r}")
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
    config: str | None = None,
) -> Dataset:
    """DeepScaleR-Preview-Dataset (or any problem/answer table) as GRPO prompts.

    Returns a dataset with `prompt_key` = [{"role": "user", "content": template(problem)}] and
    `answer_key` = the gold answer as given (str, number or list; the reward accepts all three).
    """
    dataset = load_table(source, split, config)  # `config`: a Hub dataset's configuration name
    require_columns(dataset, [problem_column, answer_column], str(source))
    if "{problem}" not in prompt_template:
        raise UserError(f"prompt_template must contain '{{problem}}', got {prompt_template!r}")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    source = str(source)

    def convert(row: dict, index: int) -> dict:
        problem = text_cell(row[problem_column], problem_column, index, source)
        if not any(gold_strings(row[answer_column])):
            raise UserError(f"row {index} of {source}: column {answer_column!r} is empty")
        content = format_prompt(prompt_template, problem=problem)
        return {prompt_key: [{"role": "user", "content": content}], answer_key: row[answer_column]}

    # Rebuilt rather than mapped: the answer column may change type (e.g. float) and extra columns go.
    rows = [convert(row, i) for i, row in enumerate(dataset)]
    return Dataset.from_list(rows)
