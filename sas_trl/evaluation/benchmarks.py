"""Benchmarks by name: the registered evaluation sets (`sas_trl.data.EVAL_SETS`) plus the built-in `addition`.

Where the data comes from, first match wins:

1. `--source NAME=PATH`: a local `.jsonl`, `.json` or `.parquet` file (or another Hub id) for that benchmark;
2. `--data_dir DIR`: `DIR/NAME.jsonl`, `DIR/NAME.json` or `DIR/NAME.parquet` if one exists;
3. the benchmark's Hub dataset (see `EVAL_SETS`).

Files have the Hub dataset's columns (e.g. MATH-500's `problem`, `answer`, `unique_id`). `addition` needs no
data: the built-in task's problems from a fixed seed, different from the training seed, with string answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import EVAL_SETS, FILE_TYPES, eval_spec, load_eval_spec
from ..recipes import RecipeError

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
    """ "aime24, math500" -> ["aime24", "math500"]; unknown names raise a RecipeError listing the known ones."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise RecipeError(f"--benchmarks is empty; known benchmarks: {', '.join(known_benchmarks())}")
    unknown = [n for n in names if n not in known_benchmarks()]
    if unknown:
        known = ", ".join(known_benchmarks())
        raise RecipeError(f"unknown benchmark(s) {', '.join(unknown)}; known benchmarks: {known}")
    return names


def parse_sources(pairs: list[str] | None) -> dict[str, str]:
    """["math500=a.jsonl", "amc=b.json,aime24=c.jsonl"] -> {"math500": "a.jsonl", ...}."""
    sources: dict[str, str] = {}
    for pair in (p for item in pairs or [] for p in item.split(",") if p.strip()):
        name, sep, path = pair.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise RecipeError(f"--source expects NAME=PATH, got {pair!r}")
        if name not in EVAL_SETS:
            raise RecipeError(f"--source {pair!r}: unknown benchmark {name!r}; known: {', '.join(EVAL_SETS)}")
        sources[name] = path
    return sources


def resolve_source(name: str, sources: dict[str, str], data_dir: str | None) -> str:
    """Where benchmark `name` is read from (see the module docstring)."""
    if name in sources:
        return sources[name]
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise RecipeError(f"--data_dir {data_dir!r} is not a folder")
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
    """The first `limit` problems of a benchmark; any loading failure becomes a RecipeError saying what to do.

    `addition_terms` = (fewest, most) addends of the built-in `addition` problems (default: the task's own).
    """
    if name == BUILTIN:
        return addition_items(limit or ADDITION_SIZE, terms=addition_terms)
    source = resolve_source(name, sources or {}, data_dir)
    try:
        dataset = load_eval_spec(eval_spec(name, source=source), name)
    except (FileNotFoundError, ValueError) as err:
        raise RecipeError(f"benchmark {name}: {err}") from err
    except Exception as err:  # a Hub failure: offline, gated, renamed
        raise RecipeError(
            f"benchmark {name}: cannot load {source!r} ({type(err).__name__}: {err}). Download it where the Hub is "
            f"reachable and pass --source {name}=FILE (or --data_dir DIR holding {name}.jsonl)"
        ) from err
    rows = dataset if limit is None else dataset.select(range(min(limit, len(dataset))))
    return [EvalItem(name, row["id"], row["prompt"], row["answers"]) for row in rows]


def addition_items(
    n: int = ADDITION_SIZE, seed: int = ADDITION_SEED, terms: tuple[int, int] | None = None
) -> list[EvalItem]:
    """The built-in `addition` benchmark: `n` problems of the built-in task from a fixed seed."""
    from ..task import AdditionTask, sample_problems

    try:
        task = AdditionTask() if terms is None else AdditionTask(min_terms=terms[0], max_terms=terms[1])
    except ValueError as err:
        raise RecipeError(f"--addition_terms: {err}") from err
    return [
        EvalItem(BUILTIN, str(i), [{"role": "user", "content": p.prompt}], [str(p.answer)])
        for i, p in enumerate(sample_problems(n, seed, task))
    ]
