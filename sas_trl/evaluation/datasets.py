"""Benchmarks by name: the registered evaluation sets (`EVAL_SETS`) plus the built-in `addition`.

Each set is normalised to `id` (str), `prompt` (chat messages) and `answers` (list[str]; any may match:
OlympiadBench lists several, a multiple-choice key is a letter): the paper's five math benchmarks and three
out-of-distribution multiple-choice sets.

Where the data comes from, first match wins:

1. `--source NAME=PATH`: a local `.jsonl`, `.json` or `.parquet` file (or another Hub id) for that benchmark;
2. `--data_dir DIR`: `DIR/NAME.jsonl`, `DIR/NAME.json` or `DIR/NAME.parquet` if one exists;
3. the benchmark's Hub dataset (see `EVAL_SETS`).

Files have the Hub dataset's columns (e.g. MATH-500's `problem`, `answer`, `unique_id`). `addition` needs no
data: the built-in task's problems from a fixed seed, different from the training seed, with string answers.
"""

from __future__ import annotations

import dataclasses
import random
import string
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from ..constants import PROMPT_TEMPLATE
from ..data import FILE_TYPES, format_prompt, load_table, require_columns, text_cell
from ..errors import UserError
from ..rewards import gold_strings


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
        problem = "\n\n".join(text_cell(row[c], c, index, where) for c in spec.problem_columns)
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


BUILTIN = "addition"
ADDITION_SEED = 12345  # the task's held-out seed (sas_trl.task.evaluate); training uses the run's seed (0)
ADDITION_SIZE = 100
PAPER_BENCHMARKS = ("aime24", "aime25", "amc", "math500", "olympiad_bench")


@dataclass(frozen=True)
class EvalItem:
    """One problem: `messages` is the chat prompt, `answers` the gold answers (any may match)."""

    benchmark: str
    id: str
    messages: list[dict[str, str]]
    answers: list[str]


def known_benchmarks() -> list[str]:
    return [*EVAL_SETS, BUILTIN]


def parse_names(text: str) -> list[str]:
    """ "aime24, math500" -> ["aime24", "math500"]; unknown names raise a UserError listing the known ones."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise UserError(f"--benchmarks is empty; known benchmarks: {', '.join(known_benchmarks())}")
    unknown = [n for n in names if n not in known_benchmarks()]
    if unknown:
        known = ", ".join(known_benchmarks())
        raise UserError(f"unknown benchmark(s) {', '.join(unknown)}; known benchmarks: {known}")
    return names


def parse_sources(pairs: list[str] | None) -> dict[str, str]:
    """["math500=a.jsonl", "amc=b.json,aime24=c.jsonl"] -> {"math500": "a.jsonl", ...}."""
    sources: dict[str, str] = {}
    for pair in (p for item in pairs or [] for p in item.split(",") if p.strip()):
        name, sep, path = pair.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise UserError(f"--source expects NAME=PATH, got {pair!r}")
        if name not in EVAL_SETS:
            raise UserError(f"--source {pair!r}: unknown benchmark {name!r}; known: {', '.join(EVAL_SETS)}")
        sources[name] = path
    return sources


def resolve_source(name: str, sources: dict[str, str], data_dir: str | None) -> str:
    """Where benchmark `name` is read from (see the module docstring)."""
    if name in sources:
        return sources[name]
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise UserError(f"--data_dir {data_dir!r} is not a folder")
        for suffix in FILE_TYPES:
            path = Path(data_dir) / f"{name}{suffix}"
            if path.is_file():
                return str(path)
    return EVAL_SETS[name].source


def load_benchmark(
    name: str,
    sources: dict[str, str] | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    addition_terms: tuple[int, int] | None = None,
) -> list[EvalItem]:
    """The first `limit` problems of a benchmark; any loading failure becomes a UserError saying what to do.

    `addition_terms` = (fewest, most) addends of the built-in `addition` problems (default: the task's own).
    """
    if name == BUILTIN:
        return addition_items(limit or ADDITION_SIZE, terms=addition_terms)
    source = resolve_source(name, sources or {}, data_dir)
    try:
        dataset = load_eval_spec(eval_spec(name, source=source), name)
    except ValueError as err:  # UserError included: a bad file, column or cell, or the Hub unreachable
        hint = _download_hint(name) if str(err).startswith("Hub dataset") else ""
        raise UserError(f"benchmark {name}: {err}{hint}") from err
    except Exception as err:  # anything else a Hub download raises
        raise UserError(
            f"benchmark {name}: cannot load {source!r} ({type(err).__name__}: {err}){_download_hint(name)}"
        ) from err
    rows = dataset if limit is None else dataset.select(range(min(limit, len(dataset))))
    return [EvalItem(name, row["id"], row["prompt"], row["answers"]) for row in rows]


def _download_hint(name: str) -> str:
    return (
        f". Download it where the Hub is reachable and pass --source {name}=FILE (or --data_dir DIR holding "
        f"{name}.jsonl)"
    )


def addition_items(
    n: int = ADDITION_SIZE, seed: int = ADDITION_SEED, terms: tuple[int, int] | None = None
) -> list[EvalItem]:
    """The built-in `addition` benchmark: `n` problems of the built-in task from a fixed seed."""
    from ..task import AdditionTask, sample_problems

    try:
        task = AdditionTask() if terms is None else AdditionTask(min_terms=terms[0], max_terms=terms[1])
    except ValueError as err:
        raise UserError(f"--addition_terms: {err}") from err
    return [
        EvalItem(BUILTIN, str(i), [{"role": "user", "content": p.prompt}], [str(p.answer)])
        for i, p in enumerate(sample_problems(n, seed, task))
    ]
