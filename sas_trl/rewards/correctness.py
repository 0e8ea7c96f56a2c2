"""The correctness reward: 1.0 for a right final answer, 0.0 otherwise, graded as the paper's training grades.

Model text never raises and never hangs the trainer: answers are graded in worker subprocesses with a hard
per-answer deadline (`grading_pool`). An unparseable *gold* answer is a data problem: that example gets
`None` (TRL turns it into NaN and leaves it out) and a counted warning, as open-r1 does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from .extraction import check_format, completion_text, extract_answer, gold_strings
from .grading import safe_grade
from .grading_pool import GradingPool
from .params import NoParams, RunContext
from .registry import register_reward

logger = logging.getLogger(__name__)


class MathVerifyReward:
    """TRL reward function: 1.0 for a correct final answer, 0.0 otherwise, None for an unusable gold.

    Use as `GRPOTrainer(reward_funcs=[MathVerifyReward()], ...)` with an `answer` column in the dataset.

    Args:
        format: "r1" (answer after `</think>`, which is required), "plain" (the whole completion; without a box,
            its end is graded) or "boxed" (the last box anywhere, truncated reasoning included; no box scores 0:
            ThinkPrune's grading, docs/baselines.md).
        answer_key: dataset column holding the gold answers (passed by TRL as a reward kwarg).
        workers: grading subprocesses; 0 grades inline (math-verify's timeouts then only work on the main
            thread, so off it a pathological answer can take unbounded time).
        timeout: hard wall-clock limit in seconds per graded answer.
        math_verify_timeout: math-verify's own (signal-based, whole seconds) timeouts inside a worker;
            default a third of `timeout`, so they normally fire before the hard kill.
        max_answer_chars: longer boxed answers score 0.0 without parsing (no real answer is that long).
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
        name: str = "accuracy",
    ):
        check_format(format)
        self.format = format
        self.answer_key = answer_key
        self.max_answer_chars = max_answer_chars
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
            rewards = [safe_grade(job, timeout) for job in jobs]
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

    # TRL calls every reward with the same batch, one after the other. A length reward that needs the verdict
    # (sas_trl.rewards.length) reads the one this class just computed for the same texts, gold answers and
    # settings, so a batch is graded once and both rewards agree on which rollouts are correct.
    _last_batch: tuple | None = None

    def grade_batch(self, completions: Sequence, answers: Sequence) -> list[float | None]:
        """`grade`, reusing the previous call's result when it graded the same batch with the same settings."""
        key = (self.format, self.max_answer_chars, list(completions), list(answers))
        last = MathVerifyReward._last_batch
        if last is not None and last[0] == key:
            return list(last[1])
        rewards = self.grade(completions, answers)
        MathVerifyReward._last_batch = (key, rewards)
        return list(rewards)

    def __call__(self, completions: Sequence, **kwargs) -> list[float | None]:
        return self.grade_batch(completions, self.gold_answers(kwargs))

    def gold_answers(self, kwargs: dict) -> list:
        """The gold answers from TRL's reward kwargs (the dataset column `answer_key`)."""
        if self.answer_key not in kwargs:
            raise KeyError(
                f"reward {self.__name__!r} needs the gold answers in column {self.answer_key!r}; "
                f"reward kwargs were {sorted(kwargs)}"
            )
        return kwargs[self.answer_key]

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


@register_reward("accuracy", correctness=True, help="1.0 if the final boxed answer matches the gold answer")
def _accuracy(params: NoParams, context: RunContext) -> MathVerifyReward:
    return MathVerifyReward(format=context.reward_format, answer_key="answer")
