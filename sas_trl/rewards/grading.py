"""Grading one answer with math-verify; also the grading worker's main loop.

This file runs as a script inside each grading worker (`GradingPool` starts it with `runpy`), so it imports
nothing from the package: the package `__init__` would pull in torch for every worker.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Sequence
from functools import lru_cache

_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.:]|\s|$)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textrm)\s*\{([^{}]*)\}")


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


def safe_grade(job: dict, timeout: int | None) -> float | None:
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
            out.write(json.dumps([job["i"], safe_grade(job, timeout)]) + "\n")
            out.flush()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent decides what happens next
        return


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker_main(int(sys.argv[2]))
