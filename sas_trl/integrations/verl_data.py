"""verl's RL parquet files for `recipes/verl/`: DeepScaleR's training problems and the evaluation benchmarks.

verl's `RLHFDataset` reads one row per prompt:

* `data_source` (str): the set's name (`deepscaler`, `aime24`); verl groups validation scores by it;
* `prompt` (list of `{"role", "content"}`): the chat messages, the same prompt the TRL recipes train and
  evaluate with (the problem, then " Let's think step by step and output the final answer within \\boxed{}.");
* `ability` (str): `math`;
* `reward_model` (`{"style": "rule", "ground_truth": ...}`): what the recipes' reward grades against: a string,
  or, in a file where some problem has several accepted answers (OlympiadBench), a list of strings in every row;
* `extra_info` (`{"split", "index", "id"}`): where the row came from.

The rows come from the loaders training and evaluation use (`sas_trl.data.load_deepscaler`,
`sas_trl.evaluation.datasets.load_benchmark`), so a Hub dataset or a local `.jsonl`/`.json`/`.parquet` file
works, with the same checks and one-line errors. Nothing here imports verl.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..constants import DEEPSCALER_ID
from ..errors import UserError

TRAIN_FILE = "train.parquet"  # the name recipes/verl's data.train_files expects
ABILITY = "math"


@dataclass(frozen=True)
class VerlFile:
    """One parquet file to write: its rows and where."""

    path: Path
    rows: list[dict]


def _rows(data_source: str, split: str, items: Sequence[tuple[str, list, list[str]]]) -> list[dict]:
    """verl rows from (id, prompt messages, gold answers) triples; `ground_truth` one type per file."""
    several = any(len(answers) > 1 for _, _, answers in items)
    return [
        {
            "data_source": data_source,
            "prompt": prompt,
            "ability": ABILITY,
            "reward_model": {"style": "rule", "ground_truth": list(answers) if several else answers[0]},
            "extra_info": {"split": split, "index": index, "id": row_id},
        }
        for index, (row_id, prompt, answers) in enumerate(items)
    ]


def train_rows(source: str = DEEPSCALER_ID, split: str = "train", limit: int | None = None) -> list[dict]:
    """DeepScaleR-Preview-Dataset (a Hub id or a local file with `problem` and `answer`) as verl rows."""
    from ..data import load_deepscaler
    from ..rewards import gold_strings

    dataset = load_deepscaler(source, split=split, limit=limit)
    items = [(str(i), row["prompt"], gold_strings(row["answer"])) for i, row in enumerate(dataset)]
    return _rows("deepscaler", "train", items)


def benchmark_rows(
    name: str, sources: dict[str, str] | None = None, data_dir: str | None = None, limit: int | None = None
) -> list[dict]:
    """A registered benchmark (`aime24`, `aime25`, ...: Hub dataset, `--source NAME=FILE` or `DIR/NAME.jsonl`)."""
    from ..evaluation.datasets import EVAL_SETS, load_benchmark

    if name not in EVAL_SETS or EVAL_SETS[name].multiple_choice:
        known = ", ".join(n for n, spec in EVAL_SETS.items() if not spec.multiple_choice)
        raise UserError(f"--benchmarks: {name!r} is not a free-form math benchmark; known: {known}")
    items = load_benchmark(name, sources, data_dir, limit)
    return _rows(name, "test", [(item.id, item.messages, list(item.answers)) for item in items])


def plan(
    output_dir: str | Path,
    train_source: str | None,
    benchmarks: Sequence[str],
    *,
    train_split: str = "train",
    sources: dict[str, str] | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    overwrite: bool = False,
) -> list[VerlFile]:
    """The files to write (`train.parquet`, then `NAME.parquet` per benchmark), every source read and checked.

    Raises a `UserError` before reading any data when a file exists and `overwrite` is False (a file a user made
    is never replaced silently), and for any data problem, naming the file or dataset.
    """
    folder = Path(output_dir).expanduser()
    names = ([TRAIN_FILE] if train_source else []) + [f"{name}.parquet" for name in benchmarks]
    if not names:
        raise UserError("nothing to write: pass --train_source and/or --benchmarks")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output_dir {str(folder)!r} is a file, not a folder")
    existing = [str(folder / name) for name in names if (folder / name).exists()]
    if existing and not overwrite:
        raise UserError(
            f"{', '.join(existing)} already exist(s): pass --overwrite to replace, or another --output_dir"
        )
    files = [VerlFile(folder / TRAIN_FILE, train_rows(train_source, train_split, limit))] if train_source else []
    files += [
        VerlFile(folder / f"{name}.parquet", benchmark_rows(name, sources, data_dir, limit)) for name in benchmarks
    ]
    return files


def write(files: Sequence[VerlFile]) -> None:
    """Write each file whole: to a temporary name first, so an interrupted run leaves no half file."""
    from datasets import Dataset

    for file in files:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        partial = file.path.with_name(file.path.name + ".partial")
        Dataset.from_list(file.rows).to_parquet(str(partial))
        partial.replace(file.path)
