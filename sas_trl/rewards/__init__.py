"""Reward functions for GRPO, registered by name.

- `extraction`: the answer a verifier grades (last box after `</think>`) and gold-answer normalisation;
- `grading`, `grading_pool`: math-verify grading, in worker subprocesses with a hard per-answer deadline;
- `correctness`: `MathVerifyReward`, the correctness reward (registered as "accuracy");
- `length`: the length-aware baselines' rewards ("l1", "dapo_overlong") and what group rewards share;
- `lapo`: LAPO's two stages ("lapo_band", "lapo_target");
- `registry`: `register_reward`; `get_reward_funcs` builds the rewards a recipe names in `reward_funcs` (registered
  names or dotted import paths), correctness first, with their `reward_params`;
- `params`: `RunContext` (what a reward may read from the run) and the checking of a reward's parameters.
"""

from ..constants import THINK_END
from .correctness import MathVerifyReward, accuracy_reward
from .extraction import FORMATS, completion_text, extract_answer, failed_by_truncation, gold_strings, last_boxed
from .grading import grade_answer
from .grading_pool import GradingPool
from .lapo import LAPOBandParams, LAPOBandReward, LAPOTargetParams, LAPOTargetReward
from .length import DAPOOverlongParams, L1Params, L1Reward
from .params import NoParams, ParamError, RunContext
from .registry import REWARDS, RewardSpec, check_reward_names, get_reward_funcs, register_reward, reward_spec

__all__ = [
    "FORMATS",
    "REWARDS",
    "THINK_END",
    "DAPOOverlongParams",
    "GradingPool",
    "L1Params",
    "L1Reward",
    "LAPOBandParams",
    "LAPOBandReward",
    "LAPOTargetParams",
    "LAPOTargetReward",
    "MathVerifyReward",
    "NoParams",
    "ParamError",
    "RewardSpec",
    "RunContext",
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
    "reward_spec",
]
