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


def test_a_study_that_trains_on_the_cpu_splits_threads_even_where_gpus_are_visible(monkeypatch):
    from cli_helpers import ROOT

    from sas_trl.compare import load_study
    from sas_trl.compare.runner import job_envs as study_job_envs

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # one GPU visible: a GPU split would refuse 2 jobs
    study = load_study("recipes/studies/tiny_smoke.yaml")  # use_cpu: true
    assert all("OMP_NUM_THREADS" in env for env in study_job_envs(study, 2))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--jobs", "0"], "--jobs must be >= 1, got 0"),
        (["--jobs", "2", "--print_commands"], "--jobs runs the study; it has no effect with --print_commands"),
    ],
)
def test_bad_jobs_fail_in_one_line_before_any_work(tmp_path, monkeypatch, capsys, flags, expected):
    import yaml
    from cli_helpers import ROOT

    from sas_trl.cli import main

    monkeypatch.chdir(ROOT)
    study = yaml.safe_load((ROOT / "recipes" / "studies" / "tiny_smoke.yaml").read_text())
    study["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["compare", "--study", str(path), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
