"""A study at a glance: the few numbers a reader deciding on a method reads first, in three tables.

- Outcome, per condition: Pass@1 and length after training, each with its paired difference from the reference,
  and how far the last trajectory evaluation fell below the best one.
- Mechanism, per condition, from the training logs (on tasks with step labels): how many steps a rollout had, how
  many training rollouts the budget mislabelled, how many of those still got a negative advantage, how precise
  the selection was against the step labels, and how the policy's entropy moved.
- The primary comparisons (`power.primary`): each difference with its interval, p-value and minimum detectable
  effect.

Every cell is a mean over seeds with its t-interval (the seeds column says how many); no bare point estimate.
The README quotes this section of the report as it is (a test holds the two equal).
"""

from __future__ import annotations

from typing import Any

from . import labels
from .power import MAX_SEEDS
from .stats import RATES, difference_cell, format_value, summary_cell

PASS = "pass@1"
TOKENS = "mean_tokens"
STABILITY = "final_minus_peak"
MECHANISM = (  # the step-label metrics in the order a reader follows them, with shorter column names
    (labels.MISLABELLED, "training rollouts mislabelled by the budget (%)"),
    (labels.PUNISHED, "of those, punished (%)"),
    (labels.SHIELDED, "shielded steps (failed rollouts) that were correct (%)"),
    (labels.ZEROED_USELESS, "zeroed steps (correct rollouts) redundant or wrong (%)"),
)


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's "At a glance" section (empty when no condition has results)."""
    conditions = results["conditions"]
    if not any((c["summary"].get(PASS) or {}).get("n") for c in conditions.values()):
        return []  # no run evaluated yet (or an evaluation without Pass@1)
    ref = results["reference"]
    pct = int(100 * results["confidence"])
    lines = [
        "## At a glance",
        "",
        f"Mean over seeds [{pct}% t-interval]; differences are paired by seed with `{ref}` [{pct}% t-interval], "
        "p-value of the paired t-test (not corrected for the number of comparisons).",
        "",
        f"| condition | seeds | Pass@1 (%) | vs `{ref}` (points) | tokens | vs `{ref}` (tokens) "
        "| final minus peak along training (points) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    start = results.get("starting_model") or {}
    if PASS in start:
        tokens = format_value(TOKENS, start[TOKENS]) if TOKENS in start else ""
        lines.append(f"| starting model | | {format_value(PASS, start[PASS])} | | {tokens} | | |")
    for name, c in conditions.items():
        vs, summary = c.get("vs_reference") or {}, c["summary"]
        cells = [str((summary.get(PASS) or {}).get("n", 0))]
        for key in (PASS, TOKENS):
            cells.append(summary_cell(key, summary[key], spread=False, count=False) if key in summary else "n/a")
            cells.append("" if name == ref else difference_cell(key, vs.get(key), count=False))
        cells.append(_stability(c))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _mechanism(conditions)
    lines += _primary(results)
    return lines


def _stability(condition: dict[str, Any]) -> str:
    s = (condition.get("stability") or {}).get(STABILITY)
    if not s or not s["n"]:
        return "n/a"
    return summary_cell(PASS, s, spread=False, signed=True, bounds=(-1.0, 0.0), count=False)


def _mechanism(conditions: dict[str, Any]) -> list[str]:
    """Per condition, the step-label metrics over all logged training steps and entropy's late minus early."""
    rows = {name: c["step_labels"] for name, c in conditions.items() if "step_labels" in c}
    shown = [(k, label) for k, label in MECHANISM if any(r[k]["mean"]["n"] for r in rows.values())]
    if not shown:
        return []
    lines = [
        "",
        "What the selection had to act on and what it did, from the training logs (mean over all logged training "
        "steps, then over seeds): steps per rollout (those of the tokens the loss trains on: a rollout TRL's overlong "
        "filter drops counts none), and the selection against the step labels (n/a: nothing to count); and the "
        "policy's entropy, last quarter of training minus first:",
        "",
        "| condition | steps per rollout | "
        + " | ".join(label for _, label in shown)
        + " | entropy, late minus early |",
        "|---|" + "---:|" * (len(shown) + 2),
    ]
    for name, r in rows.items():
        cells = [_count_cell(r.get(labels.STEPS, {}).get("mean"))]
        cells += [labels.percent_cell(r[k]["mean"], count=False) for k, _ in shown]
        cells.append(labels.entropy_cell(r[labels.ENTROPY]["change"], signed=True, count=False))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _count_cell(s: dict[str, Any] | None) -> str:
    """A count's `summarize` (steps per rollout), `11.2 [11.0, 11.4]`."""
    if not s or s["mean"] is None:
        return "n/a"
    if s["ci_low"] is None:
        return f"{s['mean']:.1f} (n=1, no interval)"
    return f"{s['mean']:.1f} [{s['ci_low']:.1f}, {s['ci_high']:.1f}]"


def _primary(results: dict[str, Any]) -> list[str]:
    """The primary comparisons with their minimum detectable effect (80% power, alpha 0.05)."""
    power = results["power"]
    rows = power["comparisons"]
    if not rows:
        return []
    metric = power["metric"]
    scale = 100 if metric.startswith(RATES) else 1
    unit = " (points)" if metric.startswith(RATES) else ""
    effect = power.get("effect") or 0.02  # the effect the study was sized for, else 2 points
    lines = [
        "",
        f"The primary comparisons ({metric}), with the smallest difference their seeds would detect (80% power, "
        "alpha 0.05, from the observed spread of the paired differences):",
        "",
        f"| comparison | seed pairs | difference{unit} | minimum detectable{unit} "
        f"| seeds a {f'{scale * effect:g}-point' if unit else f'{effect:g}'} difference needs |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        mde = f"{scale * r['mde']:.2f}" if r.get("mde") is not None else "n/a"
        need = (r.get("needed") or {}).get(str(effect))
        cells = [
            str(r["pairs"]),
            difference_cell(metric, r.get("difference"), count=False),
            mde,
            str(need) if need is not None else ("n/a" if r.get("sd") is None else f"> {MAX_SEEDS}"),
        ]
        lines.append(f"| `{r['condition']}` vs `{r['against']}` | " + " | ".join(cells) + " |")
    return lines
