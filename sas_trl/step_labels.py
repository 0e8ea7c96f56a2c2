"""Ground truth per step on the built-in addition tasks: each step of a rollout's reasoning is correct, wrong or
redundant.

A step is *correct* when it is the next step of the true solution path: "s + a = t" with s the true running total,
a the next addend in the problem's order and t = s + a. A step that repeats a correct step already taken (verbatim,
or as "Let me double-check: ...") is *redundant*: dropping it changes nothing. Everything else is *wrong*, including
every step after the path was left (it carries a wrong total or skips an addend). The last step of a rollout cut by
the budget is judged by what it could still become: a prefix of the next correct (or redundant) step gets that label.

Steps are the "\\n\\n"-separated pieces of the text before "</think>": on the built-in tasks' word-level tokenizer
"\\n\\n" is one token, so text step k is SAS's step k (`sas_trl.segmentation`).

    >>> label_steps((3, 5, 7), "3 + 5 = 8\\n\\nLet me double-check: 3 + 5 = 8\\n\\n8 + 7 = 16\\n\\n</think>")
    (1, 3, 2)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .constants import THINK_END

OUTSIDE, CORRECT, WRONG, REDUNDANT = 0, 1, 2, 3  # OUTSIDE: padding, or a step no label covers
NAMES = {CORRECT: "correct", WRONG: "wrong", REDUNDANT: "redundant"}
DOUBLE_CHECK = "Let me double-check: "
DELIMITER = "\n\n"

_QUESTION = re.compile(r"Add ((?:\d+, )*\d+)\.")
_STEP = re.compile(r"(\d+) \+ (\d+) = (\d+)")


def parse_terms(question: str) -> tuple[int, ...] | None:
    """The addends of a built-in problem ("Add 3, 5, 7. ..."), or None when the text is not one."""
    match = _QUESTION.search(question)
    return tuple(int(t) for t in match.group(1).split(", ")) if match else None


def thinking_steps(completion: str) -> tuple[list[str], bool]:
    """The reasoning's steps, and whether the last one is complete.

    The reasoning is the text before the first "</think>" (all of it when there is none). A step is complete when a
    delimiter follows it; only the last piece of a rollout without "</think>" can be incomplete. Empty pieces
    (a delimiter right before "</think>") are not steps.
    """
    thinking, closed, _ = completion.partition(THINK_END)
    pieces = thinking.split(DELIMITER)
    last_complete = bool(closed) or thinking.endswith(DELIMITER) or not pieces[-1]
    steps = [p for p in pieces if p]
    return steps, last_complete


def label_steps(terms: Sequence[int], completion: str) -> tuple[int, ...]:
    """One label (CORRECT, WRONG or REDUNDANT) per reasoning step of `completion` for the problem `terms`."""
    steps, last_complete = thinking_steps(completion)
    labels: list[int] = []
    taken: list[str] = []  # the correct steps so far, as text
    total, on_path = terms[0], True
    for index, step in enumerate(steps):
        partial = index == len(steps) - 1 and not last_complete
        following = len(taken) + 1  # the addend the next correct step adds
        expected = None
        if on_path and following < len(terms):
            expected = f"{total} + {terms[following]} = {total + terms[following]}"
        repeats = taken + [DOUBLE_CHECK + t for t in taken]
        if expected is not None and (step == expected or (partial and expected.startswith(step))):
            labels.append(CORRECT)
            taken.append(expected)
            total += terms[following]
        elif step in repeats or (partial and any(r.startswith(step) for r in repeats)):
            labels.append(REDUNDANT)
        else:
            labels.append(WRONG)
            on_path = False
    return tuple(labels)


def reasoning_correct(labels: Sequence[int]) -> bool:
    """Whether a rollout's reasoning holds no wrong step (what a budget cut leaves of a good solution)."""
    return bool(labels) and all(label in (CORRECT, REDUNDANT) for label in labels)
