"""DeepScaleR's grading as a verl reward function (`reward.custom_reward_function`), for recipes/verl.

1.0 when the last box after `</think>` matches the gold answer (math-verify), else 0.0: sas-trl's
`MathVerifyReward`, the reward the TRL recipes train with. A gold answer that cannot be parsed scores 0.0 (verl
has no "skip this example" value).
"""

from __future__ import annotations

from sas_trl.rewards import MathVerifyReward

_REWARD = MathVerifyReward(format="r1", workers=0)


def compute_score(data_source, solution_str: str, ground_truth, extra_info=None, **kwargs) -> float:
    (score,) = _REWARD(completions=[solution_str], answer=[ground_truth])
    return 0.0 if score is None else float(score)
