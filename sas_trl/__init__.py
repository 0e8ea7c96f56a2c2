"""sas-trl: Step-level Advantage Selection (SAS, arXiv 2604.24003) for GRPO on Hugging Face TRL."""

__version__ = "0.1.0"

from .core import (  # noqa: E402
    boundary_table,
    count_steps,
    segment_steps,
    select_zero_mask,
    step_statistics,
    vocab_tables,
)

__all__ = [
    "MathVerifyReward",
    "SASConfig",
    "SASGRPOTrainer",
    "__version__",
    "boundary_table",
    "count_steps",
    "segment_steps",
    "select_zero_mask",
    "step_statistics",
    "vocab_tables",
]


def __getattr__(name: str):
    # The trainer pulls in TRL (seconds to import); the pure functions above do not need it.
    if name == "SASConfig":
        from .config import SASConfig

        return SASConfig
    if name == "SASGRPOTrainer":
        from .trainer import SASGRPOTrainer

        return SASGRPOTrainer
    if name == "MathVerifyReward":
        from .rewards import MathVerifyReward

        return MathVerifyReward
    raise AttributeError(f"module 'sas_trl' has no attribute {name!r}")
