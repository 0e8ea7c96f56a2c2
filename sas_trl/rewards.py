"""Correctness reward graded with math-verify, as the paper's training grades (DeepScaleR rules).

With the R1 format the answer is the text after `</think>` (no `</think>` means a format failure, 0.0)
and within it the last `\\boxed{...}` / `\\fbox{...}` with matched braces; the `plain` format looks at the
whole completion. Gold answers may be a string, a number or a list (any element may match).

Model text never raises and never hangs the trainer: answers are graded in worker subprocesses, whose
main thread lets math-verify's signal-based timeouts work (they cannot run off the main thread, and TRL
may call a reward from anywhere), and a watchdog kills a worker stuck in C code past a hard wall-clock
limit. An unparseable *gold* answer is a data problem: that example gets `None` (TRL turns it into
NaN and leaves it out) and a counted warning, as open-r1 does.

Truncation helpers (`is_truncated`, `failed_by_truncation`) tell apart rollouts that failed only because
the length limit cut them before an answer appeared, the failures SAS shields.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

FORMATS = ("r1", "plain")
THINK_END = "</think>"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.:]|\s|$)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textrm)\s*\{([^{}]*)\}")


# --------------------------------------------------------------------------------------------------
# Answer extraction (pure string work, linear time, safe on any text)
# --------------------------------------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, or None if absent or unclosed.

    Braces are matched (escaped `\\{`, `\\}` do not count). An unclosed last box (a truncated answer) is
    None rather than an earlier box: the model's final word is the last one it started.
    """
    start = None
    for match in _BOXED.finditer(text):
        start = match.end()
    if start is None:
        return None
    depth = 1
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # skip the escaped character (\{, \}, \\)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
        i += 1
    return None


def extract_answer(completion: str, format: str = "r1") -> str | None:
    """The boxed answer the verifier grades, or None (format failure: no `</think>` in R1, or no box)."""
    _check_format(format)
    if format == "r1":
        _, found, completion = completion.partition(THINK_END)
        if not found:
            return None
    return last_boxed(completion)


def is_truncated(
    completion_ids: Sequence[int], eos_token_ids: int | Iterable[int], max_completion_length: int
) -> bool:
    """Whether a rollout hit `max_completion_length` tokens without emitting an EOS token.

    `completion_ids` is one rollout's ids without padding (TRL's `completion_ids` reward kwarg); a tensor
    works too.
    """
    eos = {eos_token_ids} if isinstance(eos_token_ids, int) else set(eos_token_ids)
    ids = completion_ids.tolist() if hasattr(completion_ids, "tolist") else list(completion_ids)
    return len(ids) >= max_completion_length and not eos.intersection(ids)


def failed_by_truncation(completion: str, truncated: bool, format: str = "r1") -> bool:
    """Whether a rollout failed *only* because it was cut: truncated before a gradable answer appeared.

    That is: truncated, and no complete answer (no `</think>` in R1, or no closed box after it). A
    truncated rollout that did box a (wrong or right) answer did not fail because of the cut.
    """
    return truncated and extract_answer(completion, format) is None


def truncation_flags(
    completions: Sequence,
    completion_ids: Sequence[Sequence[int]],
    eos_token_ids: int | Iterable[int],
    max_completion_length: int,
    format: str = "r1",
) -> list[tuple[bool, bool]]:
    """`(truncated, failed_by_truncation)` per rollout, for logging or for SAS's failed-side scope."""
    eos = [eos_token_ids] if isinstance(eos_token_ids, int) else list(eos_token_ids)
    flags = []
    for completion, ids in zip(completions, completion_ids, strict=True):
        cut = is_truncated(ids, eos, max_completion_length)
        flags.append((cut, failed_by_truncation(completion_text(completion), cut, format)))
    return flags


def completion_text(completion) -> str:
    """Text of a TRL completion: a string, or a list of chat messages (their contents, concatenated)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    try:
        return "".join(m["content"] for m in completion if isinstance(m.get("content"), str))
    except (TypeError, AttributeError):
        return str(completion)


def gold_strings(gold) -> list[str]:
    """Normalise a gold answer (str, number or list of them) to a list of strings; 142.0 becomes "142"."""
    if gold is None:
        return []
    if isinstance(gold, str):
        return [gold.strip()]
    if isinstance(gold, bool):
        return [str(gold)]
    if isinstance(gold, numbers.Integral):
        return [str(int(gold))]
    if isinstance(gold, numbers.Real):
        value = float(gold)
        return [str(int(value)) if value.is_integer() else repr(value)]
    if isinstance(gold, Iterable):
        return [s for item in gold for s in gold_strings(item)]
    return [str(gold)]


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")


# --------------------------------------------------------------------------------------------------
# Grading one answer (runs inside a worker, or inline)
# --------------------------------------------------------------------------------------------------


def _unwrap_text(text: str) -> str:
    for _ in range(3):  # nested \text{\textbf{...}}
        text = _TEXT_WRAPPER.sub(r"\1", text)
    return text.replace("$", "").strip()


def _choice_letter(text: str) -> str | None:
    """A choice the model picked: "C", "(C)", "\\text{(C)}", "C. 42" -> "C"; anything else -> None."""
    match = _LETTER.match(_unwrap_text(text))
    return match.group(1) if match else None


def _gold_letter(gold: str) -> str | None:
    """A multiple-choice key ("C", "(C)", "\\text{(C)}") -> "C"; any other gold answer -> None."""
    text = _unwrap_text(gold).strip("(). ")
    return text if len(text) == 1 and "A" <= text <= "J" else None


@lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout: int | None):
    """Parsed gold answer (math-verify's list), or [] if unparseable. Cached: a group shares its gold."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    # Bare LaTeX ("\frac{1}{2}") has no delimiters for the extractor to find: box it.
    text = gold if ("$" in gold or "\\boxed" in gold or "\\(" in gold) else f"\\boxed{{{gold}}}"
    parsed = parse(text, extraction_config=configs, parsing_timeout=timeout)
    return parsed or parse(gold, extraction_config=configs, parsing_timeout=timeout)


def grade_answer(
    answer: str | None, golds: Sequence[str], boxed: bool = True, timeout: int | None = 3
) -> float | None:
    """1.0 if `answer` matches any gold, 0.0 if not, None if no gold answer parses.

    Args:
        answer: the extracted answer (box content), raw text to search when `boxed` is False, or None.
        golds: gold answer strings; any may match.
        timeout: math-verify's own per-call timeout in seconds (signal based: main thread only; None = off).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    golds = [g for g in golds if g]
    parsed_golds = [(g, _parse_gold(g, timeout)) for g in golds]
    parsed_golds = [(g, p) for g, p in parsed_golds if p]
    if not parsed_golds:
        return None
    if answer is None:
        return 0.0
    gold_letters = {_gold_letter(gold) for gold, _ in parsed_golds} - {None}
    if gold_letters:  # a multiple-choice key: compare letters, however the model dressed its choice
        return float(_choice_letter(answer) in gold_letters)
    text = f"\\boxed{{{answer}}}" if boxed else answer
    pred = parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=timeout)
    if not pred:
        return 0.0
    return float(any(verify(p, pred, timeout_seconds=timeout) for _, p in parsed_golds))


def _safe_grade(job: dict, timeout: int | None) -> float | None:
    try:
        return grade_answer(job["a"], job["g"], job["b"], timeout)
    except BaseException:  # noqa: BLE001 - model text must never crash grading (RecursionError, sympy bugs)
        return 0.0 if any(_parse_gold_safe(g, timeout) for g in job["g"]) else None


def _parse_gold_safe(gold: str, timeout: int | None):
    try:
        return _parse_gold(gold, timeout)
    except BaseException:  # noqa: BLE001
        return []


def _worker_main(timeout: int) -> None:
    """Worker loop: one JSON job per stdin line, one `[index, reward]` line per job on stdout."""
    logging.disable(logging.CRITICAL)  # math-verify logs every timeout; the parent counts what matters
    sys.setrecursionlimit(10_000)
    import math_verify  # noqa: F401 - pay the import before announcing readiness

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    try:
        for line in sys.stdin:
            job = json.loads(line)
            out.write(json.dumps([job["i"], _safe_grade(job, timeout)]) + "\n")
            out.flush()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent decides what happens next
        return


# --------------------------------------------------------------------------------------------------
# Worker pool with a hard per-answer deadline
# --------------------------------------------------------------------------------------------------


class _Worker:
    """One grading subprocess and its in-flight jobs (oldest first)."""

    def __init__(self, math_verify_timeout: int, start_timeout: float = 120.0):
        # Run this file as a script, not `-m sas_trl.rewards`: the package __init__ would import torch.
        bootstrap = (
            "import runpy, sys; sys.path[:] = [p for p in sys.path if p]; "
            f"sys.argv = ['grader', '--worker', '{math_verify_timeout}']; "
            f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"
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


# --------------------------------------------------------------------------------------------------
# The TRL reward function
# --------------------------------------------------------------------------------------------------


class MathVerifyReward:
    """TRL reward function: 1.0 for a correct final answer, 0.0 otherwise, None for an unusable gold.

    Use as `GRPOTrainer(reward_funcs=[MathVerifyReward()], ...)` with an `answer` column in the dataset.

    Args:
        format: "r1" (answer after `</think>`, which is required) or "plain" (the whole completion).
        answer_key: dataset column holding the gold answers (passed by TRL as a reward kwarg).
        workers: grading subprocesses; 0 grades inline (math-verify's timeouts then only work on the main
            thread, so off it a pathological answer can take unbounded time).
        timeout: hard wall-clock limit in seconds per graded answer.
        math_verify_timeout: math-verify's own (signal-based, whole seconds) timeouts inside a worker;
            default a third of `timeout`, so they normally fire before the hard kill.
        max_answer_chars: longer boxed answers score 0.0 without parsing (no real answer is that long).
        max_completion_length, eos_token_ids: when both are set, the fraction of truncated rollouts and of
            rollouts that failed only because of truncation are logged through TRL's `log_metric`.
        name: the reward's name in TRL's logs (`rewards/<name>/mean`).
    """

    def __init__(
        self,
        format: str = "r1",
        answer_key: str = "answer",
        workers: int = 1,
        timeout: float = 10.0,
        math_verify_timeout: int | None = None,
        max_answer_chars: int = 1000,
        max_completion_length: int | None = None,
        eos_token_ids: int | Iterable[int] | None = None,
        name: str = "accuracy",
    ):
        _check_format(format)
        self.format = format
        self.answer_key = answer_key
        self.max_answer_chars = max_answer_chars
        self.max_completion_length = max_completion_length
        self.eos_token_ids = eos_token_ids
        self.__name__ = name
        self.timeout = timeout
        self.math_verify_timeout = math_verify_timeout or max(1, int(timeout // 3))
        self.pool = GradingPool(workers, timeout, self.math_verify_timeout) if workers > 0 else None
        self.num_skipped = 0  # rollouts whose gold answer could not be parsed, over this object's life

    def jobs(self, completions: Sequence, answers: Sequence) -> list[dict]:
        """Extract answers (cheap, in this process) into grading jobs."""
        jobs = []
        for completion, gold in zip(completions, answers, strict=True):
            text = completion_text(completion)
            answer = extract_answer(text, self.format)
            boxed = True
            if answer is None and self.format == "plain":
                answer, boxed = text[-2000:], False  # no box: let math-verify search the end of the text
            if answer is not None and len(answer) > self.max_answer_chars:
                answer = None
            jobs.append({"a": answer, "g": gold_strings(gold), "b": boxed})
        return jobs

    def grade(self, completions: Sequence, answers: Sequence) -> list[float | None]:
        """Rewards for completions against gold answers, without TRL's kwargs."""
        jobs = self.jobs(completions, answers)
        if self.pool is not None:
            rewards = self.pool.grade(jobs)
        else:
            on_main = threading.current_thread() is threading.main_thread()
            timeout = self.math_verify_timeout if on_main else None
            rewards = [_safe_grade(job, timeout) for job in jobs]
        skipped = [job["g"] for job, reward in zip(jobs, rewards, strict=True) if reward is None]
        if skipped:
            self.num_skipped += len(skipped)
            logger.warning(
                "Skipped %d rollouts (reward None) whose gold answer cannot be parsed, %d so far; first gold: %r",
                len(skipped),
                self.num_skipped,
                skipped[0],
            )
        return rewards

    def __call__(self, completions: Sequence, **kwargs) -> list[float | None]:
        if self.answer_key not in kwargs:
            raise KeyError(
                f"reward {self.__name__!r} needs the gold answers in column {self.answer_key!r}; "
                f"reward kwargs were {sorted(kwargs)}"
            )
        rewards = self.grade(completions, kwargs[self.answer_key])
        log_metric, ids = kwargs.get("log_metric"), kwargs.get("completion_ids")
        if log_metric and ids is not None and self.max_completion_length and self.eos_token_ids is not None:
            flags = truncation_flags(completions, ids, self.eos_token_ids, self.max_completion_length, self.format)
            log_metric(f"{self.__name__}/truncated", sum(t for t, _ in flags) / len(flags))
            log_metric(f"{self.__name__}/failed_by_truncation", sum(f for _, f in flags) / len(flags))
        return rewards

    def close(self) -> None:
        """Stop the grading workers."""
        if self.pool is not None:
            self.pool.close()


_default_reward: MathVerifyReward | None = None


def accuracy_reward(completions: Sequence, **kwargs) -> list[float | None]:
    """`MathVerifyReward()` as a plain function (R1 format, `answer` column), sharing one worker."""
    global _default_reward
    if _default_reward is None:
        _default_reward = MathVerifyReward()
    return _default_reward(completions, **kwargs)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker_main(int(sys.argv[2]))
