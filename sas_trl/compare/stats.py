"""Statistics over seeds: a mean with its spread and 95% interval, and paired differences between conditions.

Seeds are few (5 is typical), so intervals use Student's t distribution; with one seed there is no interval
(None), and reports say so instead of printing a bare number as if it were a result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _interval(mean: float, sem: float, n: int, confidence: float) -> tuple[float, float] | tuple[None, None]:
    if n < 2:
        return None, None
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(low), float(high)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float | int | None]:
    """Mean, sample standard deviation, and the t-interval of the mean over `values` (NaNs dropped).

    Returns `{"n", "mean", "std", "ci_low", "ci_high"}`; `std` and the interval are None for fewer than two values.
    """
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else None
    low, high = _interval(mean, (std or 0.0) / math.sqrt(n), n, confidence)
    return {"n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def paired_difference(
    values: Sequence[float], reference: Sequence[float], confidence: float = CONFIDENCE
) -> dict[str, float | int | None]:
    """`values - reference` paired by seed: the mean difference, its t-interval and the paired t-test's p-value.

    Pairs where either side is missing are dropped. With fewer than two pairs the interval and p are None.
    """
    pairs = [
        (a, b)
        for a, b in zip(values, reference, strict=True)
        if a is not None and b is not None and not (math.isnan(a) or math.isnan(b))
    ]
    d = np.asarray([a - b for a, b in pairs], dtype=float)
    n = int(d.size)
    if n == 0:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None, "p": None}
    mean = float(d.mean())
    if n < 2:
        return {"n": n, "mean": mean, "ci_low": None, "ci_high": None, "p": None}
    sem = float(d.std(ddof=1)) / math.sqrt(n)
    low, high = _interval(mean, sem, n, confidence)
    if sem == 0:  # every pair differs by the same amount: the t statistic is undefined
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
    return {"n": n, "mean": mean, "ci_low": low, "ci_high": high, "p": p}


RATES = ("pass@", "truncated")  # metrics that are shares, shown in percentage points


def format_value(key: str, value: float | None, signed: bool = False) -> str:
    """One metric's value as the reports print it: rates in points, tokens to 0.1, anything else to 0.001."""
    if value is None:
        return "n/a"
    if key.startswith(RATES):
        return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"
    if key == "mean_tokens":
        return f"{value:+.1f}" if signed else f"{value:.1f}"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def difference_cell(key: str, d: dict[str, float | int | None] | None) -> str:
    """A `paired_difference` as a table cell, `+1.23 [-0.50, +2.96] p=0.150 (n=10)`; never a bare difference:
    without an interval, only the pair count."""
    if not d or d["ci_low"] is None:
        return f"no interval (n={d['n'] if d else 0})"
    low, mean, high = (format_value(key, d[k], signed=True) for k in ("ci_low", "mean", "ci_high"))
    return f"{mean} [{low}, {high}] p={d['p']:.3f} (n={d['n']})"


def summary_cell(key: str, s: dict[str, float | int | None], spread: bool = True, signed: bool = False) -> str:
    """A `summarize` result as a table cell, `12.30 ± 1.10 [11.50, 13.10] (n=10)` (without `± sd` unless
    `spread`); one seed has no interval and says so."""
    if s["mean"] is None:
        return "n/a (n=0)"
    mean = format_value(key, s["mean"], signed)
    if s["ci_low"] is None:
        return f"{mean} (n=1, no interval)"
    low, high = (format_value(key, s[k], signed) for k in ("ci_low", "ci_high"))
    sd = f" ± {format_value(key, s['std'])}" if spread else ""
    return f"{mean}{sd} [{low}, {high}] (n={s['n']})"
