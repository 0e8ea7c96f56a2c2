"""Evaluation metrics as pure functions: Pass@1, unbiased pass@k, response length, truncation rate and AES.

Conventions follow the SAS paper's evaluation protocol (arXiv 2604.24003) and O1-Pruner's AES (Luo et al. 2025):

* Pass@1 is the mean correctness over all n samples of all problems (with equal n per problem this equals the
  mean over problems of each problem's mean);
* length is the mean over problems of the mean response length in tokens;
* pass@k is the unbiased estimator 1 - C(n - c, k) / C(n, k) of Chen et al. (2021), averaged over problems;
* AES (O1-Pruner) trades relative length savings against relative accuracy changes, punishing losses harder.

Benchmark averages are unweighted means over benchmarks, as the paper's "average" column is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of k samples (drawn without replacement from n) is correct.

    Args:
        n: samples drawn for the problem.
        c: how many of them are correct.
        k: 1 <= k <= n.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i): a product of terms in (0, 1), no huge binomials.
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def mean_pass_at_k(correct: Sequence[Sequence[float]], k: int) -> float:
    """pass@k averaged over problems; `correct[i]` holds the 0/1 scores of problem i's samples."""
    if not correct:
        raise ValueError("no problems to score")
    return float(np.mean([pass_at_k(len(s), int(round(sum(s))), k) for s in correct]))


def summarize(
    correct: Sequence[Sequence[float]],
    tokens: Sequence[Sequence[int]],
    truncated: Sequence[Sequence[bool]],
    ks: Sequence[int] = (),
) -> dict[str, float | int]:
    """One benchmark's metrics from per-problem, per-sample lists (problem i, sample j).

    Returns:
        {"problems", "samples", "pass@1", "pass@k" for each k in `ks`, "mean_tokens", "truncated"}; rates are
        fractions in [0, 1].
    """
    if not correct:
        raise ValueError("no problems to score")
    if not len(correct) == len(tokens) == len(truncated):
        raise ValueError("correct, tokens and truncated must list the same problems")
    flat = [float(x) for samples in correct for x in samples]
    result: dict[str, float | int] = {
        "problems": len(correct),
        "samples": len(flat),
        "pass@1": float(np.mean(flat)),
    }
    for k in ks:
        if k != 1:
            result[f"pass@{k}"] = mean_pass_at_k(correct, k)
    result["mean_tokens"] = float(np.mean([np.mean(t) for t in tokens]))
    result["truncated"] = float(np.mean([bool(x) for samples in truncated for x in samples]))
    return result


def average(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean over benchmarks of every rate and length (counts are summed)."""
    if not results:
        raise ValueError("no benchmarks to average")
    keys = [k for k in next(iter(results.values())) if all(k in r for r in results.values())]
    out: dict[str, float] = {}
    for key in keys:
        values = [r[key] for r in results.values()]
        out[key] = int(sum(values)) if key in ("problems", "samples") else float(np.mean(values))
    return out


def aes(
    pass1: float,
    tokens: float,
    base_pass1: float,
    base_tokens: float,
    alpha: float = 1.0,
    beta: float = 3.0,
    gamma: float = 5.0,
) -> float:
    """Accuracy-Efficiency Score of a model against a base model (O1-Pruner; the paper uses 1, 3, 5).

    dL = (L_base - L) / L_base rewards shorter outputs; dA = (A - A_base) / A_base. AES = alpha dL + beta dA
    when accuracy did not drop, else alpha dL - gamma |dA|. Scale-free: Pass@1 may be a fraction or a percent.
    """
    if base_pass1 <= 0 or base_tokens <= 0:
        raise ValueError(f"the base Pass@1 and length must be positive, got {base_pass1} and {base_tokens}")
    d_length = (base_tokens - tokens) / base_tokens
    d_accuracy = (pass1 - base_pass1) / base_pass1
    if d_accuracy >= 0:
        return alpha * d_length + beta * d_accuracy
    return alpha * d_length - gamma * abs(d_accuracy)
