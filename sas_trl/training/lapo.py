"""Rewards that keep state across steps save it with the checkpoints: LAPO stage 1 -> stage 2.

A reward object with a `save_state(output_dir)` method (LAPO stage 1's records each prompt's median correct
length) is saved into `output_dir` and into the checkpoint folder at each checkpoint save, and into `output_dir`
when training ends, by the main process alone. The checkpoint's copy is written when the step ends, before the
trainer writes the checkpoint, so a checkpoint with its `trainer_state.json` (written last) always holds it: a run
killed between the two leaves a checkpoint that resuming skips, never one that resumes without the state.
Every process scores every group (group-level rewards gather them), so every process holds the same state. A run
resumed from `checkpoint-N` reloads the state saved with that checkpoint (`load_state`) in every process, so the
next save still holds every prompt seen before the interruption.
Stage 2 names the output folder in its recipe (`transform_params: {lapo_target: {targets: <stage-1 folder>}}`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


class RewardStateCallback(TrainerCallback):
    """Calls `reward.save_state(folder)` on every save (output folder and checkpoint) and at the end (main
    process); `reward.load_state(checkpoint)` when training resumes (every process)."""

    def __init__(self, reward, output_dir: str | Path):
        self.reward, self.output_dir = reward, Path(output_dir)

    def write(self) -> None:
        self.reward.save_state(self.output_dir)

    def checkpoint(self, step: int) -> Path:
        return self.output_dir / f"{PREFIX_CHECKPOINT_DIR}-{step}"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 or not callable(getattr(self.reward, "load_state", None)):
            return
        # Resumed from checkpoint-<global_step>: its own copy, else (a checkpoint saved without one) the output
        # folder's, which holds the same prompts or later ones.
        for folder in (self.checkpoint(state.global_step), self.output_dir):
            try:
                self.reward.load_state(folder)
                return
            except FileNotFoundError:
                continue
        warnings.warn(
            f"resumed at step {state.global_step} without saved reward state in {self.checkpoint(state.global_step)} "
            f"or {self.output_dir}: {type(self.reward).__name__} starts empty",
            stacklevel=2,
        )

    def on_step_end(self, args, state, control, **kwargs):
        # The flow callback (registered first) has already decided whether this step ends with a save.
        if control.should_save and state.is_world_process_zero:
            self.reward.save_state(self.checkpoint(state.global_step))

    def on_epoch_end(self, args, state, control, **kwargs):
        self.on_step_end(args, state, control)

    def on_save(self, args, state, control, **kwargs):
        # Again after the save: a save decided after the step ended (the best checkpoint, after evaluation).
        if state.is_world_process_zero:
            self.write()
            checkpoint = self.checkpoint(state.global_step)
            if checkpoint.is_dir():
                self.reward.save_state(checkpoint)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write()


def save_targets_with_checkpoints(trainer, rewards: list) -> None:
    """Attach a callback for each reward that saves state (LAPO stage 1's targets); a no-op otherwise."""
    for reward in rewards:
        if callable(getattr(reward, "save_state", None)):
            trainer.add_callback(RewardStateCallback(reward, trainer.args.output_dir))
