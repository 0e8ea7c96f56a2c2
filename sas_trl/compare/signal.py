"""Did a run have anything to learn from? GRPO's advantage is a reward minus its group's mean: a group whose
rollouts all earned the same reward gives no gradient. TRL logs `frac_reward_zero_std`, the share of groups
with equal rewards, at each logging step; a logged step at 1.0 had no learning signal at all.
"""

from __future__ import annotations

import math
from typing import Any

from .stats import summarize

KEY = "frac_reward_zero_std"
# A condition whose runs spent at least this share of logged steps without any signal gets a note.
MOSTLY_SILENT = 0.5


def run_signal(history: list[dict[str, Any]]) -> dict[str, float | int] | None:
    """From a run's log history: the share of logged steps where every group's rewards were equal
    (`no_signal_share`), the mean share of such groups (`mean_zero_std`), and the logged steps counted; None when
    the run logged no `frac_reward_zero_std`. A logged value averages the steps since the previous log, so with
    `logging_steps > 1` a logged step counts as silent only when all of its steps were."""
    values = [float(e[KEY]) for e in history if KEY in e and not math.isnan(float(e[KEY]))]
    if not values:
        return None
    silent = sum(v >= 1.0 - 1e-9 for v in values)
    return {
        "logged_steps": len(values),
        "no_signal_share": silent / len(values),
        "mean_zero_std": sum(values) / len(values),
    }


def condition_signal(per_seed: dict[str, dict[str, float | int] | None]) -> dict[str, Any]:
    return {
        "runs": per_seed,
        "no_signal_share": summarize([s["no_signal_share"] for s in per_seed.values() if s]),
        "mean_zero_std": summarize([s["mean_zero_std"] for s in per_seed.values() if s]),
    }


def warnings(results: dict[str, Any]) -> list[str]:
    """One line per condition that learned nothing (every logged step of every run without signal) or little."""
    out = []
    for name, c in results["conditions"].items():
        runs = [s for s in c["learning_signal"]["runs"].values() if s]
        if not runs:
            continue
        shares = [s["no_signal_share"] for s in runs]
        if min(shares) >= 1.0:
            out.append(
                f"WARNING: condition `{name}` learned nothing: in all {len(runs)} runs every group's rewards were "
                "equal at every logged step (no advantage, no gradient). Its results are the starting model's; "
                "make the task easier or the model stronger (more warm-up) so that rewards differ within groups."
            )
        elif sum(shares) / len(shares) >= MOSTLY_SILENT:
            out.append(
                f"Note: condition `{name}` had no learning signal on {100 * sum(shares) / len(shares):.0f}% of its "
                "logged steps (mean over runs): most of its training changed nothing."
            )
    return out


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's learning-signal table; empty when no run logged `frac_reward_zero_std`."""
    rows = {n: c["learning_signal"] for n, c in results["conditions"].items()}
    if not any(r["no_signal_share"]["n"] for r in rows.values()):
        return []
    lines = [
        "## Learning signal",
        "",
        "Share of logged training steps where every group's rewards were equal (no gradient), and the mean share of "
        "such groups (TRL's `frac_reward_zero_std`): mean over runs (n).",
        "",
        "| condition | steps without signal (%) | groups without signal (%) |",
        "|---|---:|---:|",
    ]
    for name, r in rows.items():
        cells = [
            "n/a" if r[k]["mean"] is None else f"{100 * r[k]['mean']:.1f} (n={r[k]['n']})"
            for k in ("no_signal_share", "mean_zero_std")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
