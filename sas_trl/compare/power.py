"""How large an effect a study can see: the paired t-test's power from the spread of paired differences.

A study compares conditions seed by seed, so its test is the paired t-test on the differences `d_i` (one per
seed). With `n` seeds, the differences' standard deviation `sd` and a true mean difference `effect`, the test
statistic follows a noncentral t distribution with `n - 1` degrees of freedom and noncentrality
`effect / (sd / sqrt(n))`; the power is the chance it lands beyond the two-sided critical value (scipy's `nct`).

A study file may state what it is sized for (checked when the study is loaded):

```yaml
power:
  effect: 0.02                  # the smallest difference it should see (metric units: 0.02 = 2 Pass@1 points)
  metric: pass@1                # default
  primary: [[sas, grpo_short], [sas, grpo_overlong_filter]]   # (condition, against); default: each vs reference
  pilot: outputs/studies/pilot  # a finished pilot's output folder (its results.json): the spread to plan with
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

from ..errors import UserError
from .sections import PowerSpec
from .stats import difference_cell, paired_difference
from .study import Study

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000
# Effects the report always sizes for, in metric units of a rate (1 and 2 points).
POINTS = (0.01, 0.02)


def paired_power(sd: float, n: int, effect: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with `n` pairs whose differences have standard deviation `sd`
    against a true mean difference `effect`. 1.0 when `sd` is 0 and `effect` is not; NaN for fewer than 2 pairs."""
    if n < 2:
        return math.nan
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(effect) / (sd / math.sqrt(n))
    upper = stats.nct.sf(critical, df, ncp)
    # The opposite tail is negligible for a large ncp, where scipy's nct.cdf can return NaN.
    lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, ncp), nan=0.0))
    return float(upper + lower)


def minimum_detectable_effect(sd: float, n: int, power: float = POWER, alpha: float = ALPHA) -> float | None:
    """The smallest mean difference the paired t-test finds with probability `power` (None for n < 2)."""
    if n < 2:
        return None
    if sd == 0:
        return 0.0
    # Power rises with the effect; it reaches any target below 1 within 100 standard errors for n >= 2.
    high = 100 * sd
    return float(optimize.brentq(lambda e: paired_power(sd, n, e, alpha) - power, 0.0, high, xtol=1e-10 * sd))


def seeds_needed(sd: float, effect: float, power: float = POWER, alpha: float = ALPHA) -> int | None:
    """The fewest seeds (pairs) for which the paired t-test finds `effect` with probability `power`, or None
    beyond `MAX_SEEDS`."""
    if effect == 0:
        return None
    if sd == 0:
        return 2
    # Start from the normal approximation (close below the answer), then step to the smallest n that suffices.
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2, min(MAX_SEEDS, int((z * sd / effect) ** 2)))
    while n > 2 and paired_power(sd, n - 1, effect, alpha) >= power:
        n -= 1
    while paired_power(sd, n, effect, alpha) < power:
        n += 1
        if n > MAX_SEEDS:
            return None
    return n


def paired_sd(values: Sequence[float | None], reference: Sequence[float | None]) -> tuple[int, float | None]:
    """The number of complete pairs and the sample standard deviation of their differences (None below 2)."""
    d = np.asarray(
        [a - b for a, b in zip(values, reference, strict=True) if _number(a) and _number(b)],
        dtype=float,
    )
    return int(d.size), (float(d.std(ddof=1)) if d.size > 1 else None)


def _number(x) -> bool:
    return x is not None and not math.isnan(x)


def comparisons(study: Study) -> tuple[tuple[str, str], ...]:
    """The paired comparisons a study sizes: its stated primary ones, else each condition against the reference."""
    if study.power is not None and study.power.primary:
        return study.power.primary
    return tuple((c, study.reference) for c in study.conditions if c != study.reference)


def power_table(
    results: dict[str, Any],
    pairs: Sequence[tuple[str, str]],
    metric: str,
    n: int | Mapping[tuple[str, str], int] | None = None,
    effect: float | None = None,
) -> list[dict[str, Any]]:
    """Per comparison, from the per-run values in `results` (a study's results.json): the observed paired
    difference (mean, t-interval, p), the paired spread, the minimum detectable effect with `n` seed pairs (one
    number, or per comparison; default: the pairs observed), the power for `effect`, and the seeds a 1- or 2-point
    effect (and `effect`) would need. Pairs are the seeds both conditions have results for."""
    rows = []
    for condition, against in pairs:
        runs = results["conditions"].get(condition, {}).get("runs", {})
        ref_runs = results["conditions"].get(against, {}).get("runs", {})
        seeds = sorted(set(runs) & set(ref_runs), key=str)
        values = [(runs[s] or {}).get(metric) for s in seeds]
        reference = [(ref_runs[s] or {}).get(metric) for s in seeds]
        pairs_n, sd = paired_sd(values, reference)
        planned = pairs_n if n is None else n if isinstance(n, int) else n[(condition, against)]
        row: dict[str, Any] = {"condition": condition, "against": against, "pairs": pairs_n, "sd": sd}
        row["difference"] = paired_difference(
            [v if _number(v) else None for v in values], [v if _number(v) else None for v in reference]
        )
        row["seeds"] = planned
        row["mde"] = None if sd is None else minimum_detectable_effect(sd, planned)
        row["needed"] = {str(e): (None if sd is None else seeds_needed(sd, e)) for e in POINTS}
        if effect is not None:
            row["effect"] = effect
            row["power"] = None if sd is None or planned < 2 else paired_power(sd, planned, effect)
            row["needed"][str(effect)] = None if sd is None else seeds_needed(sd, effect)
        rows.append(row)
    return rows


def _points(x: float | None, metric: str) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.2f}" if metric.startswith(("pass@", "truncated")) else f"{x:.3f}"


def markdown(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """The report's power section (80% power, alpha 0.05, paired t-test); empty without comparisons."""
    if not rows:
        return []
    unit = " (points)" if metric.startswith(("pass@", "truncated")) else ""
    effects = sorted({float(e) for r in rows for e in r["needed"]})
    lines = [
        f"## Power: what these seeds can see ({metric})",
        "",
        f"Per comparison: the observed paired difference [95% t-interval] and paired t-test p-value; then, at alpha "
        f"{ALPHA} and {int(100 * POWER)}% power, from the observed standard deviation of the paired differences "
        "(scipy's noncentral t), the minimum detectable effect and the seeds an effect would need. A difference "
        "below the minimum detectable effect can be missed even when it is real.",
        "",
        f"| comparison | pairs | difference{unit} | sd of differences{unit} | minimum detectable effect{unit} | "
        + " | ".join(f"seeds for {_points(e, metric)}{' points' if unit else ''}" for e in effects)
        + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(effects),
    ]
    for r in rows:
        needed = [r["needed"].get(str(e)) for e in effects]
        cells = [f"{n}" if n is not None else ("n/a" if r["sd"] is None else f"> {MAX_SEEDS}") for n in needed]
        lines.append(
            f"| {r['condition']} vs {r['against']} | {r['pairs']} | {difference_cell(metric, r.get('difference'))} | "
            f"{_points(r['sd'], metric)} | "
            f"{_points(r['mde'], metric)} | " + " | ".join(cells) + " |"
        )
    return lines


def planned_power(study: Study) -> list[str]:
    """What `--print_commands` says about power: from a pilot's results (the study's `power.pilot`, else the
    study's own results so far), the minimum detectable effect with the seed pairs each comparison will have (the
    seeds both of its conditions run, `seeds_per_condition`) and the power for the study's stated effect."""
    spec = study.power or PowerSpec()
    source = spec.pilot if spec.pilot is not None else study.output_dir
    file = source / "results.json" if source.suffix != ".json" else source
    if not file.is_file():
        return [f"power: no pilot results yet ({file} not found); run a pilot, then --print_commands again"]
    try:
        results = json.loads(file.read_text())
        planned = {pair: len(study.shared_seeds(*pair)) for pair in comparisons(study)}
        rows = power_table(results, comparisons(study), spec.metric, n=planned, effect=spec.effect)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"study {study.path}: pilot results {file} cannot be read: {err}") from err
    counts = sorted({r["seeds"] for r in rows})
    alike = len(counts) == 1  # else each comparison says its own count (`seeds_per_condition`)
    seeds = f"{counts[0]} seeds" if alike else "each comparison's seed pairs"
    lines = [f"power with {seeds}, from the paired spread in {file} ({spec.metric}, 80%, alpha 0.05):"]
    for r in rows:
        name = f"{r['condition']} vs {r['against']}" + ("" if alike else f" with {r['seeds']} seeds")
        if r["sd"] is None:
            lines.append(f"  {name}: fewer than 2 pilot pairs, no estimate")
            continue
        text = (
            f"  {name}: sd {_points(r['sd'], spec.metric)} from {r['pairs']} pairs, "
            f"minimum detectable effect {_points(r['mde'], spec.metric)}"
        )
        if spec.effect is not None:
            needed = r["needed"][str(spec.effect)]
            text += (
                f"; power {100 * r['power']:.0f}% for {_points(spec.effect, spec.metric)}"
                f" ({needed if needed is not None else f'> {MAX_SEEDS}'} seeds needed for 80%)"
            )
        lines.append(text)
    return lines
