"""Console progress a person can follow: one bar with step, reward, length and zeroed fraction."""

from __future__ import annotations

from tqdm.auto import tqdm
from transformers import TrainerCallback

# (label, logged metric, format)
COLUMNS = (
    ("reward", "reward", "{:.3f}"),
    ("len", "completions/mean_length", "{:.1f}"),
    ("zeroed", "sas/zeroed_frac", "{:.3f}"),
    ("trunc", "sas/truncated_frac", "{:.2f}"),
    ("loss", "loss", "{:.4f}"),
)


def summary(logs: dict) -> dict[str, str]:
    return {label: fmt.format(logs[key]) for label, key, fmt in COLUMNS if key in logs}


class SASProgressCallback(TrainerCallback):
    """Replaces transformers' progress printing: a tqdm bar whose postfix shows the latest SAS metrics.

    With `disable_tqdm=True` (logs to a file, CI) it prints one compact line per logging step instead.
    """

    def __init__(self):
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not args.disable_tqdm:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="sas-trl", unit="step", dynamic_ncols=True
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        values = summary(logs)
        if not values:
            return
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=True)
        else:
            text = "  ".join(f"{k} {v}" for k, v in values.items())
            print(f"step {state.global_step}/{state.max_steps}  {text}", flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
