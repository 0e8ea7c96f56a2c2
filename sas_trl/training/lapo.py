"""Rewards that keep state across steps save it with the checkpoints: LAPO stage 1 -> stage 2.

A reward object with a `save_state(output_dir)` method (LAPO stage 1's records each prompt's median correct
length) is saved into `output_dir` at each checkpoint save and when training ends, by the main process alone:
every process scores every group (group-level rewards gather them), so every process holds the same state.
Stage 2 names that folder in its recipe (`transform_params: {lapo_target: {targets: <stage-1 folder>}}`).
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback


class RewardStateCallback(TrainerCallback):
    """Calls `reward.save_state(output_dir)` on every save and at the end (main process)."""

    def __init__(self, reward, output_dir: str | Path):
        self.reward, self.output_dir = reward, Path(output_dir)

    def write(self) -> None:
        self.reward.save_state(self.output_dir)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write()

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write()


def save_targets_with_checkpoints(trainer, rewards: list) -> None:
    """Attach a callback for each reward that saves state (LAPO stage 1's targets); a no-op otherwise."""
    for reward in rewards:
        if callable(getattr(reward, "save_state", None)):
            trainer.add_callback(RewardStateCallback(reward, trainer.args.output_dir))
