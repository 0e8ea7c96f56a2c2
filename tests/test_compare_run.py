"""`sas-trl compare` end to end on the built-in task: the smoke study trains, a killed study (two runs at once)
loses nothing, a re-run skips what finished."""

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


def compare(study, *flags, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "sas_trl.cli", "compare", "--study", str(study), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


def finished_files(run_dir):
    """The files of a finished run: its model, its evaluation and its trajectory's evaluations."""
    files = [run_dir / "model.safetensors", run_dir / "eval" / "eval_results.json"]
    files += [run_dir / "trajectory" / f"step-{s}" / "eval_results.json" for s in (4, 8, 12)]
    return files if all(f.is_file() for f in files) else None


@pytest.mark.slow
def test_smoke_study_trains_and_with_two_jobs_a_killed_study_loses_nothing(tmp_path):
    study = yaml.safe_load((ROOT / "recipes" / "studies" / "tiny_smoke.yaml").read_text())
    study["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    runs = tmp_path / "out" / "runs"

    # Two runs at once, killed (the whole process group, like a lost terminal) once a third run has started:
    # at least one run finished, others are mid-way.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sas_trl.cli", "compare", "--study", str(path), "--jobs", "2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not (runs / "sas" / "seed0" / "train.log").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "the study ended before its third run"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    names = {f"{c} seed {s}": runs / c / f"seed{s}" for c in ("grpo", "sas") for s in (0, 1)}
    finished = {name: finished_files(folder) for name, folder in names.items() if finished_files(folder)}
    assert finished and len(finished) < 4
    kept = {p: p.stat().st_mtime_ns for files in finished.values() for p in files}

    again = compare(path, "--jobs", "2")
    assert again.returncode == 0, again.stderr
    for name in finished:
        assert f"({name}): done earlier, skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished runs were not touched
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["missing"] == [] and set(results["conditions"]) == {"grpo", "sas"}
    for condition in ("grpo", "sas"):
        c = results["conditions"][condition]
        assert c["summary"]["pass@1"]["n"] == 2
        # It trained: rollouts within groups disagreed on most steps, so both conditions had a gradient.
        for seed in ("0", "1"):
            assert c["learning_signal"]["runs"][seed]["no_signal_share"] < 0.5
            assert [p["step"] for p in c["trajectory"][seed]] == [0, 4, 8, 12]
        assert c["stability"]["final_minus_peak"]["n"] == 2
    assert "vs_reference" in results["conditions"]["sas"] and "(n=2)" in again.stdout
    assert not any("learned nothing" in w for w in results["warnings"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Power" in report and "## Stability along training" in report and "](trajectory.png)" in report

    third = compare(path)  # one job at a time: the same guarantees, everything skipped
    assert third.returncode == 0 and third.stdout.count("done earlier, skipped") == 4
