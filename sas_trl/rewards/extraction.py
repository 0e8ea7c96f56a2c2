"""Answer extraction: pure string work, linear time, safe on any model text.

With the R1 format the answer is the text after `</think>` (no `</think>` means a format failure) and within
it the last `\\boxed{...}` / `\\fbox{...}` with matched braces; the `plain` format looks at the whole
completion. Gold answers may be a string, a number or a list (any element may match).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable

from ..constants import REWARD_FORMATS as FORMATS
from ..constants import THINK_END

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


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
    check_format(format)
    if format == "r1":
        _, found, completion = completion.partition(THINK_END)
        if not found:
            return None
    return last_boxed(completion)


def failed_by_truncation(completion: str, truncated: bool, format: str = "r1") -> bool:
    """Whether a rollout failed *only* because it was cut: truncated before a gradable answer appeared.

    That is: truncated, and no complete answer (no `</think>` in R1, or no closed box after it). A
    truncated rollout that did box a (wrong or right) answer did not fail because of the cut.
    """
    return truncated and extract_answer(completion, format) is None


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


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
