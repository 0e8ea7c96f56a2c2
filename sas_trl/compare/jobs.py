"""`sas-trl compare --jobs N`: N runs at once, each with its own share of the machine.

On a GPU machine each job gets its own GPU(s) (`CUDA_VISIBLE_DEVICES`, the visible devices split evenly); on a
CPU each job gets `cores // N` threads (`OMP_NUM_THREADS`, `MKL_NUM_THREADS`). Runs start in the planned order
(seed-major, `runs.plan_runs`) as slots free up; each writes only into its own folder, so the skip and resume
guarantees of one-at-a-time runs hold. A failed run lets the running ones finish, starts no new one, and is
reported like a sequential failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from ..errors import UserError

T = TypeVar("T")


MAX_JOBS = 500  # a study's most runs (study.MAX_RUNS): more slots could never be used


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def job_envs(jobs: int, gpus: Sequence[str] | None = None, cores: int | None = None) -> list[dict[str, str]]:
    """The environment changes of each of `jobs` slots: GPUs split evenly when there are any, else CPU threads."""
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    if jobs > MAX_JOBS:  # each slot is built here: a typo of 10**12 must not allocate 10**12 of them
        raise UserError(f"--jobs {jobs} is more runs at once than a study holds (at most {MAX_JOBS} runs)")
    gpus = visible_gpus() if gpus is None else list(gpus)
    if gpus:
        if jobs > len(gpus):
            raise UserError(f"--jobs {jobs} needs a GPU per job; {len(gpus)} visible ({','.join(gpus)})")
        per = len(gpus) // jobs
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * per : (i + 1) * per])} for i in range(jobs)]
    threads = str(max(1, (cores or cpu_count()) // jobs))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(jobs)]


def run_all(
    items: Sequence[T],
    work: Callable[[T, dict[str, str]], None],
    envs: Sequence[dict[str, str]],
    name: Callable[[T], str],
    echo: Callable[[str], None],
    total: int,
    done_before: int = 0,
) -> None:
    """Run `work(item, env)` for every item, `len(envs)` at a time, each slot with its environment; one progress
    line per start and finish (what runs, how many are done, the time left)."""
    free = list(range(len(envs)))
    running: dict[Future, tuple[T, int, float]] = {}
    durations: list[float] = []
    failures: list[BaseException] = []
    pending = list(items)
    finished = done_before

    def status() -> str:
        names = ", ".join(name(item) for item, _, _ in running.values())
        left = len(pending) + len(running)
        eta = ""
        if durations and left:
            eta = f", about {_minutes(left * sum(durations) / len(durations) / len(envs))} left"
        return f"{finished}/{total} done, running: {names or 'none'}{eta}"

    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        while pending or running:
            while pending and free and not failures:
                item, slot = pending.pop(0), free.pop(0)
                env = {**os.environ, **envs[slot]}
                running[pool.submit(work, item, env)] = (item, slot, time.perf_counter())
                echo(f"compare: started {name(item)}; {status()}")
            if failures:
                pending.clear()
            if not running:
                break
            complete, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in complete:
                item, slot, start = running.pop(future)
                free.append(slot)
                error = future.exception()
                if error is not None:
                    failures.append(error)
                    echo(f"compare: {name(item)} failed; {status()}")
                    continue
                durations.append(time.perf_counter() - start)
                finished += 1
                echo(f"compare: finished {name(item)} in {_minutes(durations[-1])}; {status()}")
    if failures:
        raise failures[0]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
