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


def t_critical(n: int, confidence: float = CONFIDENCE) -> float:
    """The t quantile a `confidence` interval over `n` values multiplies the standard error by."""
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1))


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


# A t-interval over few seeds can run beyond what a metric can take (a Pass@1 of 112%); the reports clip it to
# the metric's range and mark each clipped bound with CLIPPED, explained once under the table (CLIPPED_NOTE).
CLIPPED = "†"
CLIPPED_NOTE = (
    f"{CLIPPED} a bound of the t-interval clipped to what the metric can take (a rate: 0 to 100%, a difference of "
    "rates: -100 to +100 points): with few seeds the interval itself runs beyond it."
)


def metric_range(key: str, difference: bool = False) -> tuple[float | None, float | None]:
    """The values `key` can take (None: unbounded), or its paired differences' with `difference`."""
    if key.startswith(RATES):
        return (-1.0, 1.0) if difference else (0.0, 1.0)
    if key == "mean_tokens" and not difference:
        return 0.0, None
    return None, None


def clip_band(low, high, bounds: tuple[float | None, float | None]):
    """A figure's band or error bar (arrays or numbers) clipped to a metric's range `bounds` (None: open)."""
    if bounds == (None, None):
        return low, high
    return np.clip(low, bounds[0], bounds[1]), np.clip(high, bounds[0], bounds[1])


def _bounds(key: str, low: float, high: float, bounds: tuple[float | None, float | None], signed: bool) -> str:
    """'[low, high]' formatted, each bound clipped to `bounds` and marked when it was."""
    lower, upper = bounds
    if lower is not None and low < lower:
        low_cell = format_value(key, lower, signed) + CLIPPED
    else:
        low_cell = format_value(key, low, signed)
    if upper is not None and high > upper:
        high_cell = format_value(key, upper, signed) + CLIPPED
    else:
        high_cell = format_value(key, high, signed)
    return f"[{low_cell}, {high_cell}]"


def p_value_text(p: float) -> str:
    """A p-value as a table writes it, `p=0.150`; below 0.0005 `p<0.001`, which three decimals would show as 0."""
    return "p<0.001" if p < 0.0005 else f"p={p:.3f}"


def difference_cell(key: str, d: dict[str, float | int | None] | None, count: bool = True) -> str:
    """A `paired_difference` as a table cell, `+1.23 [-0.50, +2.96] p=0.150 (n=10)` (without `(n=10)` unless
    `count`, for a table that gives the pairs elsewhere); never a bare difference: without an interval, only the
    pair count. An interval beyond the metric's range is clipped and marked."""
    if not d or d["ci_low"] is None:
        return f"no interval (n={d['n'] if d else 0})"
    mean = format_value(key, d["mean"], signed=True)
    interval = _bounds(key, d["ci_low"], d["ci_high"], metric_range(key, difference=True), signed=True)
    return f"{mean} {interval} {p_value_text(d['p'])}" + (f" (n={d['n']})" if count else "")


def summary_cell(
    key: str,
    s: dict[str, float | int | None],
    spread: bool = True,
    signed: bool = False,
    bounds: tuple[float | None, float | None] | None = None,
    count: bool = True,
) -> str:
    """A `summarize` result as a table cell, `12.30 ± 1.10 [11.50, 13.10] (n=10)` (without `± sd` unless
    `spread`, without `(n=10)` unless `count`); one seed has no interval and says so. The interval is clipped to
    `bounds` (default: the metric's range) and each clipped bound marked."""
    if s["mean"] is None:
        return "n/a (n=0)"
    mean = format_value(key, s["mean"], signed)
    if s["ci_low"] is None:
        return f"{mean} (n=1, no interval)"
    interval = _bounds(key, s["ci_low"], s["ci_high"], bounds or metric_range(key), signed)
    sd = f" ± {format_value(key, s['std'])}" if spread else ""
    return f"{mean}{sd} {interval}" + (f" (n={s['n']})" if count else "")
