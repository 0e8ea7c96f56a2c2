"""sas_trl.completion_logs: SAS's columns in the completions TRL logs (console, parquet, an offline wandb run)."""

from __future__ import annotations

import glob
import json

import pandas as pd
import pytest
import torch
from datasets import Dataset

import sas_trl.completion_logs as completion_logs
from sas_trl import SASConfig, SASGRPOTrainer

PROMPTS = ["Add 3, 4.", "Add 1, 2.", "Add 9, 9.", "Add 2, 5."]


def parity_reward(completions, **kwargs):
    return [float(len(c) % 2 == 0) for c in completions]


def train(tmp_path, model_dir, **overrides):
    settings = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=24,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        max_steps=2,
        seed=0,
    )
    args = SASConfig(**{**settings, **overrides})
    dataset = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    trainer = SASGRPOTrainer(model=str(model_dir), reward_funcs=parity_reward, args=args, train_dataset=dataset)
    trainer.train()
    return trainer


def test_wandb_table_has_the_sas_columns(tmp_path, tiny_model_dir, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged = []
    real_log = wandb.Run.log  # `wandb.log` is rebound to the run's method at init: watch the method
    monkeypatch.setattr(
        wandb.Run, "log", lambda run, data, *a, **k: (logged.append(data), real_log(run, data, *a, **k))[1]
    )
    kept = []
    real_keep = SASGRPOTrainer._sas_keep_for_logs
    monkeypatch.setattr(
        SASGRPOTrainer, "_sas_keep_for_logs", lambda self, *a: (kept.append(a), real_keep(self, *a))[1]
    )
    try:
        trainer = train(tmp_path, tiny_model_dir, log_completions=True, report_to="wandb", run_name="sas-view")
    finally:
        wandb.finish()
        wandb.teardown()  # wandb keeps its settings (WANDB_DIR) process-wide: later runs must read their own

    tables = [d["completions"] for d in logged if "completions" in d]
    assert len(tables) == 3  # steps 1 and 2, and the end of training; TRL's own table is replaced, not doubled
    table = tables[0]
    assert table.columns[:3] == ["step", "prompt", "completion"] and "advantage" in table.columns
    for name in (*completion_logs.COLUMNS, completion_logs.HTML_COLUMN):
        assert name in table.columns
    assert "Html" in str(table._column_types.params["type_map"]["sas_view"])  # a wandb.Html column
    rows = [dict(zip(table.columns, row, strict=True)) for row in table.data]
    assert len(rows) == 4 and all(isinstance(r["sas_view"], wandb.Html) for r in rows)

    # Each row's numbers are what SAS computed for that rollout in the loss: match through the completion text.
    inputs, mask, step_ids, _, zero, _, _ = kept[0]  # the first generation: the table of step 1
    tok = trainer.processing_class
    expected = {}
    for i in range(mask.size(0)):
        text = tok.decode(inputs["completion_ids"][i][mask[i].bool()], skip_special_tokens=True)
        expected[text] = (int(step_ids[i].max()) + 1, float(zero[i].sum() / mask[i].sum()))
    for r in rows:
        steps, frac = expected[r["completion"]]
        assert r["sas_steps"] == steps and r["sas_zeroed_frac"] == pytest.approx(frac)
    # The parquet file TRL writes carries the numeric columns (not the HTML).
    frame = pd.read_parquet(sorted(glob.glob(str(tmp_path / "out" / "completions" / "*.parquet")))[0])
    assert set(completion_logs.COLUMNS) <= set(frame.columns) and "sas_view" not in frame.columns
    files = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "files" / "media" / "table" / "completions_*.json"))
    assert files and all("sas_view" in json.loads(open(f).read())["columns"] for f in files)  # noqa: SIM115


def test_nothing_is_kept_when_logging_is_off(tmp_path, tiny_model_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(SASGRPOTrainer, "_sas_keep_for_logs", lambda self, *a: calls.append(a))
    rendered = []
    monkeypatch.setattr(completion_logs, "segments", lambda *a, **k: rendered.append(a))
    trainer = train(tmp_path, tiny_model_dir, report_to="none")
    assert not calls and not rendered and not hasattr(trainer, "_sas_log_rows")
    assert "sas/zeroed_frac" in trainer.state.log_history[0]


def test_console_table_shows_the_sas_columns(tmp_path, tiny_model_dir, capsys):
    trainer = train(tmp_path, tiny_model_dir, log_completions=True, report_to="none", max_steps=1)
    out = capsys.readouterr().out
    assert "sas_ste" in out and "sas_zer" in out  # rich shortens the column headers
    column = list(trainer._logs["extra"]["sas_steps"])
    assert len(column) == len(trainer._logs["prompt"]) == 4 and all(isinstance(v, int) for v in column)
    assert torch.is_tensor(trainer._sas_log_rows[0][0])
