"""sas_trl.training.progress: the console line a person follows during training."""

from __future__ import annotations

from types import SimpleNamespace

from sas_trl.training.progress import SASProgressCallback, summary

LOGS = {"reward": 0.5312, "completions/mean_length": 22.84, "sas/zeroed_frac": 0.25, "loss": 0.01234, "lr": 1e-6}


def test_summary_formats_the_known_metrics_and_ignores_the_rest():
    assert summary(LOGS) == {"reward": "0.531", "len": "22.8", "zeroed": "0.250", "loss": "0.0123"}
    assert summary({"lr": 1e-6}) == {}


def test_one_line_per_log_without_tqdm_and_only_on_the_main_process(capsys):
    callback = SASProgressCallback()
    args = SimpleNamespace(disable_tqdm=True)
    state = SimpleNamespace(is_world_process_zero=True, global_step=3, max_steps=10)
    callback.on_train_begin(args, state, None)
    callback.on_log(args, state, None, logs=LOGS)
    callback.on_log(args, state, None, logs={"lr": 1e-6})  # nothing worth a line
    callback.on_log(args, SimpleNamespace(**{**vars(state), "is_world_process_zero": False}), None, logs=LOGS)
    callback.on_train_end(args, state, None)
    assert capsys.readouterr().out == "step 3/10  reward 0.531  len 22.8  zeroed 0.250  loss 0.0123\n"


def test_the_bar_follows_the_global_step(capsys):
    callback = SASProgressCallback()
    args = SimpleNamespace(disable_tqdm=False)
    state = SimpleNamespace(is_world_process_zero=True, global_step=2, max_steps=10)  # resumed at step 2
    callback.on_train_begin(args, state, None)
    assert callback.bar.n == 2 and callback.bar.total == 10
    state.global_step = 5
    callback.on_step_end(args, state, None)
    callback.on_log(args, state, None, logs=LOGS)
    assert callback.bar.n == 5 and "zeroed=0.250" in str(callback.bar)
    callback.on_train_end(args, state, None)
    assert callback.bar is None
