"""Grading in worker subprocesses with a hard per-answer wall-clock deadline.

math-verify's own timeouts are signal based: they work only on a process's main thread, and TRL may call a
reward from anywhere. Each worker grades on its main thread, and a watchdog kills a worker stuck in C code
(where no signal reaches) past a hard limit; its answer scores 0.0 and a fresh worker takes over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)
_WORKER_SCRIPT = Path(__file__).resolve().with_name("grading.py")


class _Worker:
    """One grading subprocess and its in-flight jobs (oldest first)."""

    def __init__(self, math_verify_timeout: int, start_timeout: float = 120.0):
        # Run grading.py as a script, not `-m`: the package __init__ would import torch.
        bootstrap = (
            "import runpy, sys; sys.path[:] = [p for p in sys.path if p]; "
            f"sys.argv = ['grader', '--worker', '{math_verify_timeout}']; "
            f"runpy.run_path({str(_WORKER_SCRIPT)!r}, run_name='__main__')"
        )
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", bootstrap], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.buffer = b""
        self.inflight: deque[int] = deque()
        self.head_started = 0.0
        deadline = time.monotonic() + start_timeout
        while b"\n" not in self.buffer:
            if not self._read(deadline - time.monotonic()):
                self.kill()
                raise RuntimeError("the math-verify grading worker did not start (is math-verify installed?)")
        self.buffer = self.buffer.split(b"\n", 1)[1]

    def _read(self, wait: float) -> bool:
        """Read what arrives within `wait` seconds; False on timeout or a dead worker."""
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, wait))
        return bool(ready) and self.read_available()

    def read_available(self) -> bool:
        """Read once from a readable pipe; False at end of file (the worker died)."""
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        self.buffer += chunk
        return bool(chunk)

    def send(self, index: int, job: dict) -> None:
        if not self.inflight:
            self.head_started = time.monotonic()
        self.inflight.append(index)
        try:
            self.proc.stdin.write((json.dumps({"i": index, **job}) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:  # a dead worker: its stdout reaches end of file and the pool replaces it
            pass

    def results(self) -> list[tuple[int, float | None]]:
        lines, _, self.buffer = self.buffer.rpartition(b"\n")
        done = [tuple(json.loads(line)) for line in lines.split(b"\n") if line]
        for _ in done:
            self.inflight.popleft()
            self.head_started = time.monotonic()
        return done

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()


class GradingPool:
    """Grades answers in `workers` subprocesses, each answer within `timeout` seconds of wall clock.

    A worker that overruns (stuck in C code where no signal reaches) is killed, its answer scores 0.0,
    and a fresh worker takes over the rest. Thread-safe; workers start lazily and are reused.
    """

    def __init__(
        self, workers: int = 1, timeout: float = 10.0, math_verify_timeout: int | None = None, window: int = 16
    ):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.num_workers = workers
        self.timeout = float(timeout)
        # math-verify's soft timeouts (parse gold, parse answer, verify) should fire before the hard kill.
        self.math_verify_timeout = math_verify_timeout or max(1, int(self.timeout // 3))
        self.window = window  # jobs in flight per worker: bounded, so pipes never fill up both ways
        self.num_killed = 0
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        weakref.finalize(self, GradingPool._shutdown, self._workers)

    def grade(self, jobs: Sequence[dict]) -> list[float | None]:
        """Grade jobs `{"a": answer | None, "g": [gold, ...], "b": boxed}`; returns one reward each."""
        with self._lock:
            results: list[float | None] = [None] * len(jobs)
            pending = deque(range(len(jobs)))
            self._workers[:] = [w for w in self._workers if w.proc.poll() is None]  # drop workers that died idle
            while len(self._workers) < self.num_workers:
                self._workers.append(_Worker(self.math_verify_timeout))
            crashes: dict[int, int] = {}
            remaining = len(jobs)
            while remaining:
                for worker in self._workers:
                    while pending and len(worker.inflight) < self.window:
                        index = pending.popleft()
                        worker.send(index, jobs[index])
                busy = [w for w in self._workers if w.inflight]
                deadline = min(w.head_started for w in busy) + self.timeout
                wait = max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([w.proc.stdout for w in busy], [], [], wait)
                for position, worker in enumerate(list(self._workers)):
                    dead = worker.proc.stdout in ready and not worker.read_available()
                    for index, reward in worker.results():
                        results[index] = reward
                        remaining -= 1
                    overdue = time.monotonic() - worker.head_started > self.timeout
                    if worker.inflight and (dead or overdue):
                        remaining -= self._replace(position, pending, results, crashes, timed_out=not dead)
            return results

    def _replace(self, position: int, pending: deque, results: list, crashes: dict, timed_out: bool) -> int:
        """Replace a stuck or dead worker; returns how many answers were settled (scored 0.0).

        A stuck worker's current answer scores 0.0. A worker that died may have died of anything (killed
        from outside, out of memory), so its current answer gets a second try and scores 0.0 only if it
        kills a worker again. Other in-flight answers are re-queued.
        """
        worker = self._workers[position]
        worker.kill()
        self.num_killed += 1
        head, *rest = worker.inflight
        crashes[head] = crashes.get(head, 0) + (2 if timed_out else 1)
        settled = crashes[head] >= 2
        if settled:
            results[head] = 0.0
        else:
            rest.insert(0, head)
        pending.extendleft(reversed(rest))
        what = f"exceeded {self.timeout:.1f}s on" if timed_out else "died while grading"
        logger.warning(
            "A grading worker %s one answer (%s); worker restarted.", what, "scored 0.0" if settled else "retrying"
        )
        self._workers[position] = _Worker(self.math_verify_timeout)
        return int(settled)

    def close(self) -> None:
        """Stop the workers (they also stop when the pool is garbage collected or the process exits)."""
        with self._lock:
            GradingPool._shutdown(self._workers)

    @staticmethod
    def _shutdown(workers: list[_Worker]) -> None:
        for worker in workers:
            worker.kill()
        workers.clear()
