"""The mask benchmark at a tiny size: the loop reference and the vectorized masks agree, and the JSON is complete."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("vocab", ["tiny", "qwen2"])
def test_mask_benchmark_agrees_and_writes_json(tmp_path, vocab):
    out = tmp_path / "masks.json"
    command = [sys.executable, "benchmarks/masks.py", "--vocab", vocab, "--rollouts", "24", "--length", "384"]
    command += ["--steps", "12", "--loop-rollouts", "24", "--repeats", "2", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]

    result = json.loads(out.read_text())
    assert result["agreement"] == {"rollouts_checked": 24, "rollouts_mismatched": 0}
    assert result["config"]["mean_steps"] > 2  # the batch really has steps to select from
    for name in ("floor", "vectorized", "segment_steps", "select_zero_mask", "loop_reference"):
        assert result["results"][name]["min_s"] > 0
    assert result["results"]["vectorized"]["peak_bytes"] > 0
    assert not result["results"]["loop_reference"]["extrapolated"]
    assert "loop / vectorized" in completed.stdout


@pytest.mark.slow
def test_gpu_step_benchmark_runs_at_a_tiny_shape_on_cpu(tmp_path):
    out = tmp_path / "gpu_step.json"
    command = [sys.executable, "benchmarks/gpu_step.py", "--tiny", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]

    result = json.loads(out.read_text())
    assert result["config"]["device"] == "cpu" and result["config"]["architecture"]["vocab_size"] == 151936
    assert result["config"]["architecture"]["num_key_value_heads"] == 2  # DeepScaleR's attention layout, shrunk
    steps = result["steps"]
    assert steps["same_rollouts"]  # learning rate 0: both trainers trained on the same rollouts
    for kind in ("grpo", "sas"):
        run = steps[kind]["runs"][0]
        assert len(run["step_seconds"]) == 2 and run["per_optimizer_step_s"] > 0 and run["train_only_step_s"] > 0
    assert steps["sas"]["sas_own_s_per_step"] > 0 and steps["grpo"]["sas_own_s_per_step"] == 0
    assert steps["ratio_per_optimizer_step"] > 0
    masks = result["masks"]["results"]
    assert masks["floor"]["min_s"] > 0 and masks["vectorized"]["x_floor"] > 0
    assert "SAS / GRPO per optimizer step" in completed.stdout
