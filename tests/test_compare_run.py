"""`sas-trl compare` end to end on the built-in task: a killed study loses nothing, a re-run skips what finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from cli_helpers import ROOT


def compare(study, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "sas_trl.cli", "compare", "--study", str(study)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


@pytest.mark.slow
def test_smoke_study_killed_rerun_and_skipped(tmp_path):
    study = yaml.safe_load((ROOT / "recipes" / "studies" / "tiny_smoke.yaml").read_text())
    study["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    runs = tmp_path / "out" / "runs"

    # Killed (the whole process group, like a lost terminal) while the second run trains.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sas_trl.cli", "compare", "--study", str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not (runs / "grpo" / "seed1" / "train.log").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "the study ended before its second run"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = runs / "grpo" / "seed0"
    kept = {p: p.stat().st_mtime_ns for p in (first / "model.safetensors", first / "eval" / "eval_results.json")}

    again = compare(path)
    assert again.returncode == 0, again.stderr
    assert "run 1/4 (grpo seed 0): done earlier, skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished run was not touched
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["missing"] == [] and set(results["conditions"]) == {"grpo", "sas"}
    for condition in ("grpo", "sas"):
        assert results["conditions"][condition]["summary"]["pass@1"]["n"] == 2
    assert "vs_reference" in results["conditions"]["sas"] and "(n=2)" in again.stdout

    third = compare(path)
    assert third.returncode == 0 and third.stdout.count("done earlier, skipped") == 4
