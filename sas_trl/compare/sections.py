"""A study file's optional sections (`seeds_per_condition:`, `trajectory:`, `power:`), parsed and checked: what
the last two mean is compare/trajectory.py's and compare/power.py's (their docstrings show the sections); running
them is theirs too."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

TRAJECTORY_KEYS = ("every", "eval", "last")
POWER_KEYS = ("effect", "metric", "primary", "pilot")


def check_section(path: Path, name: str, data: Any, keys: Sequence[str]) -> None:
    """`UserError` unless the study file's `name:` section is a mapping whose keys are all in `keys`."""
    if not isinstance(data, dict):
        raise UserError(f"study {path}: {name} must be a mapping with keys {', '.join(keys)}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise UserError(f"study {path}: {name}: unknown key {unknown[0]!r}; known keys: {', '.join(keys)}")


@dataclass(frozen=True)
class TrajectorySpec:
    """The study file's `trajectory:`; `steps` (per condition, the checkpoints evaluated) is filled in from the
    conditions' recipes when the study is loaded."""

    every: int
    eval: dict[str, Any] = field(default_factory=dict)
    last: int = 3
    steps: dict[str, tuple[int, ...]] = field(default_factory=dict)


def parse_trajectory(path: Path, data: Any) -> TrajectorySpec | None:
    """The `trajectory:` section, checked (its steps come later, from the recipes); None when absent."""
    if data is None:
        return None
    check_section(path, "trajectory", data, TRAJECTORY_KEYS)
    every, last = data.get("every"), data.get("last", 3)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UserError(f"study {path}: trajectory.every must be a whole number of steps >= 1, got {every!r}")
    if isinstance(last, bool) or not isinstance(last, int) or last < 2:
        raise UserError(f"study {path}: trajectory.last must be a whole number >= 2, got {last!r}")
    options = data.get("eval") or {}
    if not isinstance(options, dict):
        raise UserError(f"study {path}: trajectory.eval must be a mapping of `sas-trl eval` options")
    return TrajectorySpec(every=every, eval=dict(options), last=last)


@dataclass(frozen=True)
class PowerSpec:
    """What a study is sized for (the study file's `power:`)."""

    effect: float | None = None
    metric: str = "pass@1"
    primary: tuple[tuple[str, str], ...] = ()
    pilot: Path | None = None


def parse_power(path: Path, data: Any, conditions: Sequence[str], reference: str) -> PowerSpec | None:
    """The study file's `power:` section, checked; None when absent."""
    if data is None:
        return None
    check_section(path, "power", data, POWER_KEYS)
    effect = data.get("effect")
    if effect is not None and (isinstance(effect, bool) or not isinstance(effect, int | float) or effect <= 0):
        raise UserError(f"study {path}: power.effect must be a number > 0 (0.02 = 2 points of a rate), got {effect!r}")
    metric = data.get("metric", "pass@1")
    if not isinstance(metric, str) or not metric:
        raise UserError(f"study {path}: power.metric must be an eval metric name such as 'pass@1', got {metric!r}")
    primary = data.get("primary")
    if primary is None:
        pairs = tuple((c, reference) for c in conditions if c != reference)
    else:
        if not isinstance(primary, list) or not all(isinstance(p, list) and len(p) == 2 for p in primary):
            raise UserError(f"study {path}: power.primary must be a list of [condition, against] pairs")
        pairs = tuple((str(a), str(b)) for a, b in primary)
        for pair in pairs:
            for name in pair:
                if name not in conditions:
                    raise UserError(
                        f"study {path}: power.primary names {name!r}, not a condition; "
                        f"conditions: {', '.join(conditions)}"
                    )
            if pair[0] == pair[1]:
                raise UserError(f"study {path}: power.primary compares {pair[0]!r} with itself")
    pilot = data.get("pilot")
    return PowerSpec(
        effect=None if effect is None else float(effect),
        metric=metric,
        primary=pairs,
        pilot=None if pilot is None else Path(str(pilot)),
    )


def parse_seeds_per_condition(
    path: Path, data: Any, seeds: Sequence[int], conditions: Sequence[str], reference: str, lines: Mapping[str, int]
) -> dict[str, int]:
    """The study file's `seeds_per_condition: {condition: N}` (each named condition runs the first N of `seeds`,
    the others all of them), checked; {} when absent. The reference needs at least as many seeds as any other
    condition: every paired comparison against it then has all of that condition's seeds."""
    if data is None:
        return {}
    key = "seeds_per_condition"
    if not isinstance(data, dict) or not data:
        raise UserError(
            f"study {path}, line {lines.get(key)}: {key} must be a mapping of condition: number of seeds, got {data!r}"
        )
    counts = {}
    for name, count in data.items():
        where = f"study {path}, line {lines.get(f'{key}.{name}', lines.get(key))}: {key}"
        if str(name) not in conditions:
            close = difflib.get_close_matches(str(name), conditions, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; conditions: {', '.join(conditions)}"
            raise UserError(f"{where} names {name!r}, not a condition{hint}")
        if isinstance(count, bool) or not isinstance(count, int):
            raise UserError(f"{where}.{name} must be a whole number of seeds, got {count!r}")
        if not 1 <= count <= len(seeds):
            raise UserError(
                f"{where}.{name} = {count} must lie in 1..{len(seeds)}: the first N of the study's {len(seeds)} seeds"
            )
        counts[str(name)] = count
    per = {c: counts.get(c, len(seeds)) for c in conditions}
    most = max(per, key=per.get)
    if per[reference] < per[most]:
        raise UserError(
            f"study {path}, line {lines.get(key)}: {key}: the reference {reference!r} has {per[reference]} seed(s), "
            f"fewer than {most!r} ({per[most]}): a comparison against the reference pairs only on the seeds both run, "
            f"so {most!r} would lose {per[most] - per[reference]}; give the reference at least {per[most]}"
        )
    return counts
