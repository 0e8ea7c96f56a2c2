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
