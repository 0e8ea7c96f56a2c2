"""Reward functions for GRPO, registered by name.

- `extraction`: the answer a verifier grades (last box after `</think>`) and gold-answer normalisation;
- `grading`, `grading_pool`: math-verify grading, in worker subprocesses with a hard per-answer deadline;
- `correctness`: `MathVerifyReward`, the correctness reward (registered as "accuracy");
- `length`: the length-aware baselines' rewards ("l1", "lapo_band", "lapo_target", "dapo_overlong");
- `registry`: `get_reward_funcs` builds the rewards a recipe names in `reward_funcs`, correctness first.
"""

from ..constants import THINK_END
from .correctness import MathVerifyReward, accuracy_reward
from .extraction import FORMATS, completion_text, extract_answer, failed_by_truncation, gold_strings, last_boxed
from .grading import grade_answer
from .grading_pool import GradingPool
from .length import L1Reward, LAPOBandReward, LAPOTargetReward
from .registry import REWARDS, RewardSpec, check_reward_names, get_reward_funcs, register_reward

__all__ = [
    "FORMATS",
    "REWARDS",
    "THINK_END",
    "GradingPool",
    "L1Reward",
    "LAPOBandReward",
    "LAPOTargetReward",
    "MathVerifyReward",
    "RewardSpec",
    "accuracy_reward",
    "check_reward_names",
    "completion_text",
    "extract_answer",
    "failed_by_truncation",
    "get_reward_funcs",
    "gold_strings",
    "grade_answer",
    "last_boxed",
    "register_reward",
]
