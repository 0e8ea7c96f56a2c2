"""What a study found, in words: each compared pair's answer on the study's metric (a difference these seeds can
tell apart, or not, with the smallest they would see), and which evaluation each table and figure rests on."""

from __future__ import annotations

import shlex
from typing import Any

from .stats import RATES, difference_cell, t_critical
from .study import eval_flags


def answer(results: dict[str, Any]) -> list[str]:
    """The report's "What the study found" section, from its power rows (the primary comparisons)."""
    metric = results["power"]["metric"]
    rows = results["power"]["comparisons"]
    if not rows:
        return []
    unit = " points" if metric.startswith(RATES) else ""
    lines = ["## What the study found", ""]
    fewest = min(r["pairs"] for r in rows)
    if fewest == 2:
        lines += [
            f"With 2 seeds an interval rests on one degree of freedom (t = {t_critical(2):.1f} instead of about 2), "
            "so 2 seeds cannot give an answer unless the difference is enormous: this study shows how the methods "
            "run, not which is better.",
            "",
        ]
    for r in rows:
        name = f"`{r['condition']}` vs `{r['against']}`"
        d = r.get("difference") or {}
        if r["pairs"] < 2 or d.get("ci_low") is None:
            lines.append(f"- {name}: fewer than 2 seed pairs with results, so no answer yet.")
            continue
        cell = difference_cell(metric, d)
        if d["ci_low"] > 0 or d["ci_high"] < 0:
            direction = "higher" if d["mean"] > 0 else "lower"
            lines.append(f"- {name}: {metric} {direction}, {cell}: these seeds tell it apart from no difference.")
            continue
        smallest = ""
        if r.get("mde") is not None:
            size = 100 * r["mde"] if metric.startswith(RATES) else r["mde"]
            smallest = f"; the smallest difference they would find is {size:.2f}{unit} (80% power, the power section)"
        need = (r.get("needed") or {}).get("0.02")
        if metric.startswith(RATES) and need is not None:
            smallest += f", and a 2-point difference would need {need} seeds"
        lines.append(f"- {name}: no difference in {metric} these seeds can tell apart, {cell}{smallest}.")
    lines += _lengths(results, rows)
    return lines


def _lengths(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The same comparisons' difference in response length (against the reference only: the table's pairs)."""
    lines = []
    for r in rows:
        d = results["conditions"].get(r["condition"], {}).get("vs_reference", {}).get("mean_tokens")
        if r["against"] != results["reference"] or not d or d.get("ci_low") is None:
            continue
        told = "told apart from no difference" if d["ci_low"] > 0 or d["ci_high"] < 0 else "not told apart"
        lines.append(
            f"- `{r['condition']}` vs `{r['against']}`, response length (tokens): "
            f"{difference_cell('mean_tokens', d)}, {told}."
        )
    return lines


def seed_note(results: dict[str, Any]) -> str:
    """' (grpo all 4, sas the first 2; ...)' for a study with `seeds_per_condition`, else ''."""
    counts = results.get("seeds_per_condition")
    if not counts:
        return ""
    total = len(results["seeds"])
    each = [f"{c} {'all ' if n == total else 'the first '}{n}" for c, n in counts.items()]
    return f" ({', '.join(each)}; differences pair on the seeds both conditions ran)"


def evaluations(results: dict[str, Any]) -> list[str]:
    """Which evaluation the tables, the stability section and each figure use: the final one, or the trajectory's
    own (often smaller) set, whose last step therefore need not match the tables."""
    final = _flags(results.get("eval") or {})
    lines = [f"Final evaluation (the tables and the accuracy-vs-length figure): `sas-trl eval {final}`."]
    if results.get("trajectory"):
        along = _flags(results["trajectory"]["eval"])
        lines.append(
            f"Trajectory evaluation (the stability section and the along-training figure): `sas-trl eval {along}`, "
            "each saved checkpoint; a different evaluation from the final one, so its last step need not equal "
            "the tables. The training curves are TRL's log of the training rollouts, not an evaluation."
        )
    else:
        lines.append("The training curves are TRL's log of the training rollouts, not an evaluation.")
    return [" ".join(lines), ""]


# Each figure of the report, with the numbers it shows.
CAPTIONS = {
    "training_curves.png": "training curves: TRL's log of the training rollouts",
    "accuracy_vs_length.png": "accuracy vs length: the final evaluation",
    "trajectory.png": "along training: the trajectory evaluation",
}


def _flags(options: dict[str, Any]) -> str:
    return shlex.join(eval_flags(options))
