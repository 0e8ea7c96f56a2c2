"""A study's runs: one per (condition, seed), each in its own folder, and what that folder holds so far."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..output_files import write_text
from .study import Study

EVAL_RESULTS = "eval_results.json"
MADE_FROM = "made_from.json"


@dataclass(frozen=True)
class Run:
    condition: str
    seed: int
    dir: Path

    @property
    def name(self) -> str:
        return f"{self.condition} seed {self.seed}"

    @property
    def recipe_file(self) -> Path:
        return self.dir / "study_recipe.yaml"  # not recipe.yaml: the model card writes that one

    @property
    def eval_dir(self) -> Path:
        return self.dir / "eval"

    def trained(self) -> bool:
        return (self.dir / "run_info.json").is_file()  # written after the final save

    def started(self) -> bool:
        """Whether training left anything behind (a checkpoint or the final save)."""
        return self.trained() or any(self.dir.glob("checkpoint-*"))

    def evaluated(self) -> bool:
        return (self.eval_dir / EVAL_RESULTS).is_file()


def plan_runs(study: Study) -> list[Run]:
    """Every (condition, seed) the study runs, seed-major: for each seed in order, every condition that runs it
    (`seeds_per_condition`), in the study's order. A study stopped partway, or run `--jobs N` at a time, then has
    the same leading seeds finished across conditions, so its paired comparisons have pairs; the order changes no
    run's result."""
    root = study.output_dir.resolve() / "runs"
    seeds = {c: set(study.condition_seeds(c)) for c in study.conditions}
    return [Run(c, s, root / c / f"seed{s}") for s in study.seeds for c in study.conditions if s in seeds[c]]


def by_condition(study: Study, runs: list[Run]) -> list[Run]:
    """`runs` condition by condition (the study's order), each condition's seeds in order: how reports list runs."""
    order = {c: i for i, c in enumerate(study.conditions)}
    return sorted(runs, key=lambda r: (order[r.condition], study.seeds.index(r.seed)))


def base_eval_dir(study: Study) -> Path:
    """The starting model's evaluation, shared by every run."""
    return study.output_dir.resolve() / "base_eval"


def read_made_from(folder: Path) -> dict[str, Any] | None:
    """The record of what `folder`'s results were made from; None when there is none or it is damaged (then the
    results count as made from something unknown)."""
    try:
        record = json.loads((folder / MADE_FROM).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_made_from(folder: Path, record: dict[str, Any]) -> None:
    write_text(folder, MADE_FROM, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
