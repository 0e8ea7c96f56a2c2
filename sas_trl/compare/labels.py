"""What the selection did against the ground truth, and the policy's entropy, per condition, from the training logs.

On the built-in tasks the trainer labels every step (correct, wrong, redundant) and logs, per training step
(docs/metrics.md): the share of mislabelled rollouts (failed, truncated, reasoning correct so far) that still got a
negative advantage, the share of shielded steps of failed rollouts that were correct, and the share of zeroed steps
of correct rollouts that were redundant or wrong. TRL logs the policy's `entropy`. Each run gives its mean over the
logged steps and over the last quarter of them (entropy: its first and its last quarter); a condition gives the mean
over seeds with its t-interval.
"""

from __future__ import annotations

import math
from typing import Any

from .stats import CLIPPED, CONFIDENCE, format_value, summarize

# The metrics SAS logs against the step labels (sas_trl/sas_metrics.py): shares in [0, 1], reported in percent.
MISLABELLED = "sas/mislabelled_frac"
PUNISHED = "sas/mislabelled_punished_frac"
SHIELDED = "sas/shielded_steps_correct_frac"
ZEROED_USELESS = "sas/zeroed_steps_redundant_or_wrong_frac"
# (logged metric, what the report's tables call it)
LABEL_METRICS = (
    (PUNISHED, "mislabelled rollouts punished"),
    (SHIELDED, "shielded steps (failed rollouts) that were correct"),
    (ZEROED_USELESS, "zeroed steps (correct rollouts) that were redundant or wrong"),
    (MISLABELLED, "rollouts mislabelled by the budget"),
)
ENTROPY = "entropy"
STEPS = "sas/steps_per_rollout"  # how many steps SAS's selection had to choose from (a count, not a share)
PART = 0.25  # "last steps" (and entropy's "early" and "late"): this share of a run's logged steps, at least one


def _series(history: list[dict[str, Any]], key: str) -> list[float]:
    """The logged training values of `key` in step order (evaluation entries carry `eval_` names; NaN dropped)."""
    values = []
    for entry in history:
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            values.append(float(value))
    return values


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _part(values: list[float]) -> int:
    return max(1, math.ceil(PART * len(values)))


def run_labels(history: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per logged metric of one run (the label shares and steps per rollout): `{"mean", "last", "steps"}` (entropy:
    `{"early", "late", "steps"}`); a metric the run never logged is absent (GRPO shields nothing; data without step
    labels logs none of them)."""
    out: dict[str, dict[str, float]] = {}
    for key in [k for k, _ in LABEL_METRICS] + [STEPS]:
        values = _series(history, key)
        if values:
            out[key] = {"mean": _mean(values), "last": _mean(values[-_part(values) :]), "steps": len(values)}
    values = _series(history, ENTROPY)
    if values:
        k = _part(values)
        out[ENTROPY] = {"early": _mean(values[:k]), "late": _mean(values[-k:]), "steps": len(values)}
    return out


def condition_labels(per_seed: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Over a condition's seeds: each metric's `summarize` of the runs' means and last parts; entropy's early,
    late and late minus early (paired by run)."""
    runs = list(per_seed.values())
    out: dict[str, Any] = {"runs": per_seed}
    for key in [k for k, _ in LABEL_METRICS] + [STEPS]:
        out[key] = {part: summarize([r[key][part] for r in runs if key in r]) for part in ("mean", "last")}
    entropy = [r[ENTROPY] for r in runs if ENTROPY in r]
    out[ENTROPY] = {
        "early": summarize([e["early"] for e in entropy]),
        "late": summarize([e["late"] for e in entropy]),
        "change": summarize([e["late"] - e["early"] for e in entropy]),
    }
    return out


def percent_cell(s: dict[str, Any], count: bool = True) -> str:
    """A share's `summarize` in percent, `82.9 [73.4, 92.5] (n=2)` (without `(n=2)` unless `count`), its interval
    clipped to 0-100% and each clipped bound marked CLIPPED."""
    if s["mean"] is None:
        return "n/a"
    if s["ci_low"] is None:
        return f"{100 * s['mean']:.1f} (n=1, no interval)"
    low = f"{100 * s['ci_low']:.1f}" if s["ci_low"] >= 0 else f"{0:.1f}{CLIPPED}"
    high = f"{100 * s['ci_high']:.1f}" if s["ci_high"] <= 1 else f"{100:.1f}{CLIPPED}"
    return f"{100 * s['mean']:.1f} [{low}, {high}]" + (f" (n={s['n']})" if count else "")


def entropy_cell(s: dict[str, Any], signed: bool = False, count: bool = True) -> str:
    """Entropy's `summarize`, `0.064 [0.062, 0.066] (n=2)` (without `(n=2)` unless `count`)."""
    if s["mean"] is None:
        return "n/a"
    mean = format_value(ENTROPY, s["mean"], signed)
    if s["ci_low"] is None:
        return f"{mean} (n=1, no interval)"
    low, high = (format_value(ENTROPY, s[k], signed) for k in ("ci_low", "ci_high"))
    return f"{mean} [{low}, {high}]" + (f" (n={s['n']})" if count else "")


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's sections: the selection against the step labels (only when some run logged them), and entropy
    early and late in training (only when some run logged it)."""
    rows = {name: c["step_labels"] for name, c in results["conditions"].items() if "step_labels" in c}
    pct = int(100 * results.get("confidence", CONFIDENCE))
    lines: list[str] = []
    shown = [(k, label) for k, label in LABEL_METRICS if any(r[k]["mean"]["n"] for r in rows.values())]
    if shown:
        lines += [
            "## Selection against the step labels",
            "",
            "Per training step, on the built-in task's ground truth (docs/metrics.md), in %: mean over all logged "
            f"steps, then over the last {int(100 * PART)}% of them; mean over seeds [{pct}% t-interval] (n = seeds). "
            "n/a: nothing to count (GRPO zeroes no step; the rollout oracle none of a correct rollout).",
            "",
            "| condition | " + " | ".join(f"{label}: all / last" for _, label in shown) + " |",
            "|---|" + "---:|" * len(shown),
        ]
        for name, r in rows.items():  # a clipped bound is explained once, at the report's end
            cells = [f"{percent_cell(r[k]['mean'])} / {percent_cell(r[k]['last'])}" for k, _ in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if any(r[ENTROPY]["early"]["n"] for r in rows.values()):
        lines += [""] if lines else []
        lines += [
            "## Policy entropy along training",
            "",
            f"TRL's `entropy` (mean over completion tokens), averaged over the first and the last {int(100 * PART)}% "
            f"of logged steps, and late minus early per run; mean over seeds [{pct}% t-interval] (n = seeds).",
            "",
            "| condition | early | late | late - early |",
            "|---|---:|---:|---:|",
        ]
        for name, r in rows.items():
            e = r[ENTROPY]
            cells = [entropy_cell(e["early"]), entropy_cell(e["late"]), entropy_cell(e["change"], signed=True)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
