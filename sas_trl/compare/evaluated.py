"""What each of a study's evaluations evaluated, and with which options, against what the study evaluates now.

`sas-trl eval` writes the model it was given into its `eval_results.json` ("model"); the study records in the
evaluation's `made_from.json` the eval options, the model's fingerprint and the baseline's (`runner.py`). The
report names the evaluated model of each evaluation and checks it:

- an evaluation of another model than the run's (another path, or the run's folder whose model files changed
  since: retrained or replaced) is left out of the numbers, with a warning naming it;
- an evaluation made with other eval options than the study's `eval:` gives now (the study file changed, then
  `--report_only`) is kept, with a warning naming the runs and each option that differs (old -> new): its
  numbers are what those options measured, and `sas-trl compare` without `--report_only` evaluates it again.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNSET = "(unset)"


@dataclass(frozen=True)
class Evaluated:
    """One evaluation folder: the model its results name, why it is not the expected model's (None: it is), and
    the eval options that differ from the study's now ({flag: (then, now)})."""

    model: str | None
    not_the_model: str | None = None
    option_changes: dict[str, tuple[str, str]] = field(default_factory=dict)


def flag_values(argv: Any) -> dict[str, str]:
    """`sas-trl eval` flags as {flag: value} ("set" for a flag without a value); {} for what is not a list."""
    if not isinstance(argv, list):
        return {}
    values: dict[str, str] = {}
    key = None
    for token in map(str, argv):
        if token.startswith("--"):
            key = token[2:]
            values[key] = "set"
        elif key is not None:
            values[key] = token
            key = None
    return values


def option_changes(then: Any, now: list[str]) -> dict[str, tuple[str, str]]:
    """{flag: (value then, value now)} for every eval option that differs; a missing record is all of them."""
    before, after = flag_values(then), flag_values(now)
    return {
        key: (before.get(key, UNSET), after.get(key, UNSET))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }


def same_model(given: str, expected: str, root: Path | None = None) -> bool:
    """Whether `given` (the model an evaluation names) is `expected`: the same path, or, for a model inside the
    study folder `root`, the same place in it (a study folder moved or copied elsewhere since)."""
    if given == expected:
        return True
    a, b = Path(given).expanduser(), Path(expected).expanduser()
    if a.exists() and b.exists() and a.resolve() == b.resolve():
        return True
    if root is None or not b.is_relative_to(root):
        return False
    tail = b.relative_to(root).parts
    return bool(tail) and len(a.parts) > len(tail) and a.parts[-len(tail) :] == tail


def check_folder(
    folder: Path,
    expected_model: str,
    eval_argv: list[str] | None,
    root: Path | None = None,
    fingerprint: bool = True,
) -> Evaluated:
    """What the results in `folder` evaluated, against `expected_model` (the run's folder, a checkpoint, or the
    starting model; `root`: the study folder) and, given `eval_argv` (the study's eval flags now), the options
    they were made with. `fingerprint`: compare the model's files now with the recorded ones (not for results
    kept without their model)."""
    from ..evaluation.backends import model_fingerprint
    from .runs import EVAL_RESULTS, read_made_from

    try:
        results = json.loads((folder / EVAL_RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # the report's reader names a damaged file
        results = None
    model = results.get("model") if isinstance(results, dict) else None
    model = model if isinstance(model, str) else None
    record = read_made_from(folder)
    why = None
    if model is not None and not same_model(model, expected_model, root):
        why = f"evaluated `{model}`, not `{expected_model}`"
    elif fingerprint and record is not None and "model" in record:
        now = model_fingerprint(expected_model)  # None: not a local folder (a Hub id, or gone): nothing to compare
        if now is not None and record["model"] != now:
            why = f"evaluated `{expected_model}` before its model files changed (retrained or replaced)"
    changes = {}
    if eval_argv is not None and record is not None and "eval" in record:
        changes = option_changes(record["eval"], eval_argv)
    return Evaluated(model, why, changes)


def warnings(
    left_out: dict[str, str], changed: dict[str, dict[str, tuple[str, str]]], kept: Collection[str] = ()
) -> list[str]:
    """The report's lines: each evaluation left out (name: why), and the evaluations made with other options,
    grouped by what differs; of those, the ones read from kept results (`kept`: names), whose model is not kept."""
    lines = [
        f"WARNING: the evaluation of {name} is left out of the numbers: it {why}. Delete its folder and re-run "
        "`sas-trl compare` to evaluate the right model."
        for name, why in left_out.items()
    ]
    groups: dict[str, list[str]] = {}
    for name, changes in changed.items():
        if changes:
            text = "; ".join(f"{key}: {then} -> {now}" for key, (then, now) in changes.items())
            groups.setdefault(text, []).append(name)
    for text, names in groups.items():
        lines.append(
            f"WARNING: {len(names)} evaluation(s) were made with other `sas-trl eval` options than the study's "
            f"`eval:` gives now ({text}): {', '.join(names)}. Their numbers are what the old options measured; run "
            "`sas-trl compare` without --report_only to evaluate them again."
        )
    stale_kept = [name for name, changes in changed.items() if changes and name in kept]
    if stale_kept:
        lines.append(
            f"WARNING: {len(stale_kept)} of them are results kept in the study's results_dir without their model "
            f"({', '.join(stale_kept)}): `sas-trl compare` does not evaluate them again; delete their kept folders "
            "to train and evaluate those runs again."
        )
    return lines
