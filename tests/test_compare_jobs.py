"""sas_trl.compare.jobs: each job's share of the machine, and N runs at once with failures reported."""

from __future__ import annotations

import threading
import time

import pytest

from sas_trl.compare.jobs import job_envs, run_all
from sas_trl.errors import UserError


def test_gpus_are_split_evenly_and_cpus_by_threads():
    assert job_envs(2, gpus=["0", "1", "2", "3"]) == [{"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in job_envs(8, gpus=[str(i) for i in range(8)])] == list("01234567")
    assert job_envs(3, gpus=["4", "6", "7"])[1] == {"CUDA_VISIBLE_DEVICES": "6"}  # the visible ids, not 0..n-1
    assert job_envs(2, gpus=[], cores=2) == [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * 2
    assert job_envs(3, gpus=[], cores=16)[0]["OMP_NUM_THREADS"] == "5"
    assert job_envs(4, gpus=[], cores=2)[0]["OMP_NUM_THREADS"] == "1"  # never 0 threads
    with pytest.raises(UserError, match="--jobs 3 needs a GPU per job; 2 visible"):
        job_envs(3, gpus=["0", "1"])
    with pytest.raises(UserError, match="--jobs must be >= 1, got 0"):
        job_envs(0, gpus=[])


def test_runs_go_n_at_a_time_each_with_its_slot_environment():
    lock, active, peak, seen = threading.Lock(), [0], [0], {}

    def work(item, env):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        seen[item] = env["SLOT"]
        with lock:
            active[0] -= 1

    lines = []
    envs = [{"SLOT": "a"}, {"SLOT": "b"}]
    run_all(list(range(5)), work, envs, str, lines.append, total=6, done_before=1)
    assert peak[0] == 2 and sorted(seen) == [0, 1, 2, 3, 4] and set(seen.values()) == {"a", "b"}
    assert lines[0].startswith("compare: started 0; 1/6 done, running: 0")
    assert lines[-1].startswith("compare: finished") and "6/6 done, running: none" in lines[-1]


def test_a_failed_run_starts_no_new_one_lets_running_ones_finish_and_is_raised():
    finished = []

    def work(item, env):
        if item == 0:
            raise UserError("training run 0 failed (exit 1)")
        time.sleep(0.1)
        finished.append(item)

    lines = []
    with pytest.raises(UserError, match="training run 0 failed"):
        run_all([0, 1, 2, 3], work, [{}, {}], str, lines.append, total=4)
    assert finished == [1]  # 1 was running when 0 failed and finished; 2 and 3 never started
    assert any(line.startswith("compare: 0 failed") for line in lines)
