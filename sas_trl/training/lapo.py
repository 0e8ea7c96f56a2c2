"""LAPO stage 1 -> stage 2: the stage-1 run writes each prompt's median correct length into its output folder.

`LAPOBandReward.targets` holds {prompt: median correct length of its latest group}; every process scores every
group (the reward gathers them), so the main process alone writes `lapo_targets.json` into `output_dir` at each
checkpoint save and when training ends. Stage 2 names that folder in `lapo_targets`
(`sas_trl.transforms.add_lapo_target` reads it).
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from ..rewards.length import LAPOBandReward
from ..transforms import LAPO_TARGETS_FILE, save_lapo_targets


class LAPOTargetsCallback(TrainerCallback):
    """Writes the stage-1 reward's targets to `output_dir/lapo_targets.json` on every save and at the end."""

    def __init__(self, reward: LAPOBandReward, output_dir: str | Path):
        self.reward, self.path = reward, Path(output_dir) / LAPO_TARGETS_FILE

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_lapo_targets(self.reward.targets, self.path)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write()

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write()


def save_targets_with_checkpoints(trainer, rewards: list) -> None:
    """Attach the callback when the run has a LAPO stage-1 reward (a no-op otherwise)."""
    for reward in rewards:
        if isinstance(reward, LAPOBandReward):
            trainer.add_callback(LAPOTargetsCallback(reward, trainer.args.output_dir))
