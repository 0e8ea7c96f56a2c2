"""`sas-trl compare` stops its runs' processes with it: SIGTERM or SIGHUP (what `kill`, schedulers and a closed
terminal send) stop every training and evaluation child (and their own children) before the study folder's lock
is released; a compare killed outright leaves the lock with its children, so a re-run is refused while any of
them still writes into the study folder, naming them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT, sas_trl

# A run's process: starts one of its own (like a launcher's worker), says so, and works until stopped.
CHILD = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(os.path.join(sys.argv[1], sys.argv[2] + ".pids"), "w").write(f"{os.getpid()} {worker.pid}")
time.sleep(600)
"""
# `sas-trl compare` with each training replaced by CHILD and the evaluations by a process that ends at once.
DRIVER = """
import sys
from sas_trl.cli import main
from sas_trl.compare import runner
marks, child, study, *flags = sys.argv[1:]
def slow(name):
    return [sys.executable, child, marks, name]
quick = [sys.executable, "-c", "pass"]
runner.prepare_starting_model = lambda study: "starting-model"
runner.base_eval_command = lambda study, program: quick
runner.commands = lambda study, run, program: (slow(f"train-{run.condition}-{run.seed}"), quick)
sys.exit(main(["compare", "--study", study, *flags]))
"""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to read its status has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def study(tmp_path):
    (tmp_path / "marks").mkdir()
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "driver.py").write_text(DRIVER)
    path = tmp_path / "study.yaml"
    study = {
        "base_recipe": "recipes/studies/tiny_smoke_base.yaml",
        "output_dir": str(tmp_path / "out"),
        "seeds": [0, 1],
        "reference": "grpo",
        "conditions": {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}},
        "eval": {"benchmarks": "addition", "n": 2, "max_tokens": 16},
    }
    path.write_text(yaml.safe_dump(study))
    return tmp_path


def start(study: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(study / "driver.py"), str(study / "marks"), str(study / "child.py")]
        + [str(study / "study.yaml"), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # the test's signals reach the compare process only, as `kill PID` does
    )


def pids(study: Path) -> list[int]:
    return [int(p) for f in sorted((study / "marks").glob("*.pids")) for p in f.read_text().split()]


def stop_left_over(study: Path) -> list[int]:
    """Kill the runs' processes still alive (a failed test leaves none behind); returns their pids."""
    left = [pid for pid in pids(study) if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.parametrize(("name", "jobs"), [("SIGTERM", "2"), ("SIGHUP", "1")])
def test_a_signal_to_compare_stops_every_child_before_the_lock_is_released(study, name, jobs):
    compare = start(study, "--jobs", jobs)
    try:
        wait_for(lambda: len(pids(study)) == 2 * int(jobs), "the runs never started")
        children = pids(study)
        assert all(alive(p) for p in children)
        compare.send_signal(getattr(signal, name))
        _, err = compare.communicate(timeout=60)
    finally:
        if compare.poll() is None:
            os.killpg(compare.pid, signal.SIGKILL)
        left = stop_left_over(study)
    assert compare.returncode == 128 + getattr(signal, name), err
    assert f"sas-trl compare: stopped by {name}, and its training and evaluation processes with it" in err
    assert not left  # the runs' processes and theirs: none left writing
    assert (study / "out" / ".compare.lock").read_text() == ""  # released, by a process with nothing left
    again = sas_trl("compare", "--study", str(study / "study.yaml"), "--print_commands")
    assert again.returncode == 0, again.stderr


def test_a_study_whose_killed_compare_left_a_training_running_is_refused_naming_it(study):
    compare = start(study)
    try:
        wait_for(lambda: len(pids(study)) == 2, "the first run never started")
        child, worker = pids(study)
        compare.send_signal(signal.SIGKILL)  # no clean-up at all: the children keep running
        compare.wait(timeout=30)
        assert alive(child) and alive(worker)
        log = study / "out" / "runs" / "grpo" / "seed0" / "train.log"
        before = log.read_bytes()
        again = sas_trl("compare", "--study", str(study / "study.yaml"))
        assert again.returncode == 2 and "Traceback" not in again.stderr
        assert f"in use by another sas-trl compare (pid {compare.pid} on host {socket.gethostname()}" in again.stderr
        assert f"training grpo seed 0: pid {child})" in again.stderr
        assert "that compare process has ended, but a training or evaluation it started still runs" in again.stderr
        assert log.read_bytes() == before and not (study / "marks" / "train-grpo-1.pids").exists()
    finally:
        stop_left_over(study)
    wait_for(lambda: not alive(child), "the training did not end")
    again = sas_trl("compare", "--study", str(study / "study.yaml"), "--print_commands")
    assert again.returncode == 0, again.stderr  # the lock ended with the last process that held it
