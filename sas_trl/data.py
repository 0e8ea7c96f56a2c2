"""Training and evaluation datasets, from the Hugging Face Hub or local files, checked early.

Training (`load_deepscaler`): DeepScaleR-Preview-Dataset with the paper's prompt as one user message,
giving a `prompt` column (chat messages) and an `answer` column that the reward reads through TRL's
reward kwargs.

Evaluation (`load_eval_set`, registry `EVAL_SETS`): the paper's five math benchmarks and three
out-of-distribution multiple-choice sets, each normalised to `id` (str), `prompt` (chat messages) and
`answers` (list[str]; any may match: OlympiadBench lists several, a choice key is a letter).

A source is a Hub dataset id or a local `.jsonl`, `.json` or `.parquet` file. Bad data fails here, with a
message that names the problem: a missing column (and the columns found), an empty dataset or split,
an unsupported file type.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, load_dataset

from .rewards import gold_strings

DEEPSCALER_ID = "agentica-org/DeepScaleR-Preview-Dataset"
PROMPT_TEMPLATE = "{problem} Let's think step by step and output the final answer within \\boxed{}."
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


def _text(value, column: str, row: int, source: str) -> str:
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
        problem = _text(row[problem_column], problem_column, index, source)
        if not any(gold_strings(row[answer_column])):
            raise ValueError(f"row {index} of {source}: column {answer_column!r} is empty")
        content = format_prompt(prompt_template, problem=problem)
        return {prompt_key: [{"role": "user", "content": content}], answer_key: row[answer_column]}

    # Rebuilt rather than mapped: the answer column may change type (e.g. float) and extra columns go.
    rows = [convert(row, i) for i, row in enumerate(dataset)]
    return Dataset.from_list(rows)


# --------------------------------------------------------------------------------------------------
# Evaluation registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSpec:
    """Where an evaluation set lives and how its columns map to (id, prompt, answers).

    Three shapes: free-form (`answer_column` holds a str, number or list of gold answers); multiple
    choice with a list column (`choices_column` + `answer_column` holding the correct index or letter);
    GPQA-style (`answer_column` holds the correct text and `distractor_columns` the wrong ones, shuffled
    with a per-question seed so the key is not always "A").
    """

    source: str
    split: str = "test"
    config: str | None = None
    problem_columns: tuple[str, ...] = ("problem",)  # joined by a blank line (e.g. passage, question)
    answer_column: str = "answer"
    id_column: str | None = None  # None: the row index
    choices_column: str | None = None
    distractor_columns: tuple[str, ...] = ()
    limit: int | None = None  # a seeded random subset of this size (MMLU's 500)
    seed: int = 0
    prompt_template: str = PROMPT_TEMPLATE

    @property
    def multiple_choice(self) -> bool:
        return self.choices_column is not None or bool(self.distractor_columns)

    def columns(self) -> list[str]:
        optional = [self.id_column, self.choices_column]
        return [*self.problem_columns, self.answer_column, *self.distractor_columns, *(c for c in optional if c)]


EVAL_SETS: dict[str, EvalSpec] = {
    "aime24": EvalSpec("HuggingFaceH4/aime_2024", split="train", id_column="id"),
    "aime25": EvalSpec("math-ai/aime25", split="test", id_column="id"),
    "amc": EvalSpec("AI-MO/aimo-validation-amc", split="train", id_column="id"),  # float answers (142.0)
    "math500": EvalSpec("HuggingFaceH4/MATH-500", split="test", id_column="unique_id"),
    "olympiad_bench": EvalSpec(  # the 675 text-only, open-ended English competition math problems
        "Hothan/OlympiadBench",
        config="OE_TO_maths_en_COMP",
        split="train",
        problem_columns=("question",),
        answer_column="final_answer",  # a list of str: any element may match
        id_column="id",
    ),
    "gpqa_diamond": EvalSpec(
        "Idavidrein/gpqa",
        config="gpqa_diamond",
        split="train",
        problem_columns=("Question",),
        answer_column="Correct Answer",
        distractor_columns=("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
        id_column="Record ID",
    ),
    "lsat": EvalSpec(  # AR-LSAT analytical reasoning, 230 test questions
        "lighteval/lsat_qa",
        config="all",
        split="test",
        problem_columns=("passage", "question"),
        choices_column="references",
        answer_column="gold_index",
    ),
    "mmlu": EvalSpec(
        "cais/mmlu", config="all", split="test", problem_columns=("question",), choices_column="choices", limit=500
    ),
}


def eval_spec(name: str, **overrides) -> EvalSpec:
    """The registered spec for `name`, with fields replaced (e.g. `source="local.jsonl"`)."""
    if name not in EVAL_SETS:
        raise KeyError(f"unknown evaluation set {name!r}; known: {sorted(EVAL_SETS)}")
    fields = {f.name for f in dataclasses.fields(EvalSpec)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown EvalSpec field(s) {sorted(unknown)}; fields are {sorted(fields)}")
    return dataclasses.replace(EVAL_SETS[name], **overrides)


def load_eval_set(name: str, **overrides) -> Dataset:
    """Load a registered evaluation set as `id` (str), `prompt` (chat messages) and `answers` (list[str])."""
    spec = eval_spec(name, **overrides)
    return load_eval_spec(spec, name)


def load_eval_spec(spec: EvalSpec, name: str = "eval") -> Dataset:
    """Load and normalise any `EvalSpec` (see `load_eval_set`)."""
    dataset = load_table(spec.source, spec.split, spec.config)
    where = f"{name} ({spec.source})"
    require_columns(dataset, spec.columns(), where)
    if spec.limit is not None and spec.limit < len(dataset):
        chosen = sorted(random.Random(spec.seed).sample(range(len(dataset)), spec.limit))
        dataset = dataset.select(chosen)
    rows = []
    for index, row in enumerate(dataset):
        problem = "\n\n".join(_text(row[c], c, index, where) for c in spec.problem_columns)
        row_id = str(row[spec.id_column]) if spec.id_column else str(index)
        if spec.multiple_choice:
            problem, answers = _with_choices(spec, row, row_id, problem, index, where)
        else:
            answers = gold_strings(row[spec.answer_column])
            if not any(answers):
                raise ValueError(f"row {index} of {where}: column {spec.answer_column!r} is empty")
        prompt = format_prompt(spec.prompt_template, problem=problem)
        rows.append({"id": row_id, "prompt": [{"role": "user", "content": prompt}], "answers": answers})
    return Dataset.from_list(rows)


def _with_choices(
    spec: EvalSpec, row: dict, row_id: str, problem: str, index: int, where: str
) -> tuple[str, list[str]]:
    """Append lettered choices to the problem; the gold answer is the correct letter."""
    if spec.choices_column:
        choices = [str(c) for c in row[spec.choices_column]]
        key = row[spec.answer_column]
        if isinstance(key, list):  # some sets store the index in a one-element list
            key = key[0] if len(key) == 1 else None
        if isinstance(key, str) and len(key.strip()) == 1 and key.strip().isalpha():
            correct = string.ascii_uppercase.index(key.strip().upper())
        elif isinstance(key, int) and not isinstance(key, bool):
            correct = key
        else:
            raise ValueError(
                f"row {index} of {where}: {spec.answer_column!r} must be a choice index or letter, got {key!r}"
            )
    else:
        choices = [str(row[spec.answer_column]), *(str(row[c]) for c in spec.distractor_columns)]
        order = list(range(len(choices)))
        random.Random(f"{spec.seed}:{row_id}").shuffle(order)  # stable per question, independent of row order
        choices = [choices[i] for i in order]
        correct = order.index(0)
    if not 0 <= correct < len(choices) <= 26:
        raise ValueError(f"row {index} of {where}: answer index {correct} is out of range for {len(choices)} choices")
    lines = [f"({string.ascii_uppercase[i]}) {choice.strip()}" for i, choice in enumerate(choices)]
    return problem + "\n\n" + "\n".join(lines), [string.ascii_uppercase[correct]]
