"""DeepScaleR's grading as a verl reward function (`reward.custom_reward_function`), for recipes/verl.

1.0 when the last box after `</think>` matches the gold answer (math-verify), else 0.0: sas-trl's
`MathVerifyReward`, the reward the TRL recipes train with. A gold answer that cannot be parsed scores 0.0 (verl
has no "skip this example" value).

verl calls `compute_score` from its reward workers' threads, where math-verify's signal-based timeouts cannot
fire. Each thread therefore grades in its own grading subprocess (`sas_trl.rewards.grading_pool`) with a hard
wall-clock deadline per answer, as the TRL path does: an answer stuck past `TIMEOUT` seconds scores 0.0 and the
worker is replaced. A recipe names this module by its installed path, so it needs no file of a clone:

    reward:
      custom_reward_function:
        path: pkg://sas_trl.integrations.verl_reward
        name: compute_score
"""

from __future__ import annotations

import threading

from ..rewards import MathVerifyReward

TIMEOUT = 10.0  # seconds per answer, the TRL reward's default (`MathVerifyReward(timeout=...)`)

_local = threading.local()


def reward() -> MathVerifyReward:
    """This thread's grader: one grading subprocess per calling thread, started on first use."""
    grader = getattr(_local, "reward", None)
    if grader is None:
        grader = _local.reward = MathVerifyReward(format="r1", workers=1, timeout=TIMEOUT)
    return grader


def compute_score(data_source, solution_str: str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl's reward signature: the response text and the row's `reward_model.ground_truth` (a str or a list of
    accepted answers) -> 1.0 or 0.0."""
    if hasattr(ground_truth, "tolist"):  # a list cell read back from parquet can arrive as a numpy array
        ground_truth = ground_truth.tolist()
    (score,) = reward().grade([solution_str], [ground_truth])
    return 0.0 if score is None else float(score)
