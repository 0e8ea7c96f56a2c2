"""Identifiers and texts shared across the package, defined once."""

from __future__ import annotations

DEEPSCALER_ID = "agentica-org/DeepScaleR-Preview-Dataset"
# DeepScaleR's training and evaluation prompts end with this sentence (the SAS paper uses it too).
PROMPT_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."
PROMPT_TEMPLATE = "{problem}" + PROMPT_SUFFIX
THINK_END = "</think>"
# Reward formats: "r1" grades the text after </think> (required), "plain" grades the whole completion, "boxed"
# grades the last box anywhere in it, truncated reasoning included, and no box scores 0 (ThinkPrune's grading).
REWARD_FORMATS = ("r1", "plain", "boxed")
BUILTIN_MODEL = "builtin:tiny"
BUILTIN_DATASET = "builtin:addition"
