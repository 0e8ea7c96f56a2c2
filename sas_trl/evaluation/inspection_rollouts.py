"""The rollouts `sas-trl inspect` looks at: read from a samples file, or sampled; and their padded view.

A samples file is JSON lines (a `{"header": ...}` first line is skipped), each with the completion (`token_ids`,
or `text`), the prompt (`prompt`, or `benchmark` and `id` of a benchmark the options can load) and optionally
the verdict (`correct`: 1 is correct, anything else failed) and `finish` ("length" = truncated). The files
`sas-trl eval` and `sas-trl analyze-truncation` write qualify. Sampled rollouts go through the pipeline the
other commands use (`sampling.SamplingRun`), so their samples file resumes and is itself a valid `--samples`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .config import EvalInputs
from .datasets import EvalItem, load_benchmark
from .sampling import SamplingRun, encode_prompt, open_grader

PROMPT_BENCHMARK = "prompt"  # the benchmark name of `--prompt` items


@dataclass
class Rollout:
    prompt_text: str
    prompt_ids: tuple[int, ...]
    completion_ids: list[int]
    correct: bool | None  # None: no verdict (a prompt without a gold answer)
    truncated: bool


@dataclass
class Inspection:
    """Every rollout padded to (B, T), with SAS's view under both verdicts."""

    rollouts: list[Rollout]
    ids: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T)
    logps: torch.Tensor  # (B, T), the model's log-probs of the tokens (0 on padding)
    step_ids: torch.Tensor  # (B, T)
    zero_if_correct: torch.Tensor  # (B, T)
    zero_if_failed: torch.Tensor  # (B, T)

    def zero_for(self, i: int, correct: bool) -> torch.Tensor:
        """Rollout i's zero mask (T,) under the verdict `correct`."""
        return (self.zero_if_correct if correct else self.zero_if_failed)[i]


def verdict(correct: float | None) -> bool | None:
    """A samples file's `correct` as a verdict: 1 is correct, anything else failed, None unknown."""
    return None if correct is None else correct == 1.0


def prompt_text(messages: list[dict[str, str]]) -> str:
    return "".join(m["content"] for m in messages)


# --------------------------------------------------------------------------------------------------
# Samples files
# --------------------------------------------------------------------------------------------------


def read_samples(path: str) -> list[dict[str, Any]]:
    """The records of a samples file, each checked for a completion and a prompt (UserError naming the line)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--samples {path!r}: no such file")
    records = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"--samples {path!r} line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"--samples {path!r} line {number}: expected a JSON object")
        if "header" in record:
            continue
        if "token_ids" not in record and "text" not in record:
            raise UserError(f"--samples {path!r} line {number}: no completion; needs field 'token_ids' or 'text'")
        if "prompt" not in record and not ("benchmark" in record and "id" in record):
            raise UserError(
                f"--samples {path!r} line {number}: no prompt; needs field 'prompt', or 'benchmark' and 'id'"
            )
        records.append(record)
    if not records:
        raise UserError(f"--samples {path!r} holds no samples")
    return records


def rollouts_from_samples(path: str, inputs: EvalInputs, tokenizer) -> list[Rollout]:
    """The rollouts of a samples file; prompts named by benchmark and id load with `inputs`' data options."""
    records = read_samples(path)
    needed = sorted({r["benchmark"] for r in records if "prompt" not in r})
    items = {
        (it.benchmark, it.id): it
        for name in needed
        for it in load_benchmark(name, inputs.sources, inputs.data_dir, inputs.limit, inputs.addition_terms)
    }
    out = []
    for r in records:
        if "prompt" in r:
            messages = [{"role": "user", "content": r["prompt"]}]
        else:
            item = items.get((r["benchmark"], str(r["id"])))
            if item is None:
                raise UserError(f"--samples {path!r}: benchmark {r['benchmark']} has no problem {r['id']!r}")
            messages = item.messages
        ids = r.get("token_ids")
        if ids is None:
            ids = tokenizer(r["text"], add_special_tokens=False)["input_ids"]
        correct, truncated = verdict(r.get("correct")), r.get("finish") == "length"
        out.append(Rollout(prompt_text(messages), encode_prompt(tokenizer, messages), list(ids), correct, truncated))
    return out


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def prompt_items(prompts: list[str]) -> list[EvalItem]:
    """`--prompt` texts as items without gold answers (graded as unknown)."""
    return [EvalItem(PROMPT_BENCHMARK, str(i), [{"role": "user", "content": p}], []) for i, p in enumerate(prompts)]


def sample_rollouts(
    config: EvalInputs, items: list[EvalItem], tokenizer, samples_file: str, backend=None
) -> tuple[list[Rollout], Any]:
    """Draw n rollouts per item into `samples_file` (resumable); returns them and the backend."""
    run = SamplingRun.open(config, items, tokenizer, samples_file, backend)
    with open_grader(config.reward_format) as reward:
        run.draw(reward, keep_token_ids=True)
    prompts = run.prompt_ids()
    records = run.records()  # item by item, n each
    rollouts = []
    for i, r in enumerate(records):
        item = items[i // config.n]
        correct, truncated = verdict(r["correct"]), r["finish"] == "length"
        rollouts.append(
            Rollout(prompt_text(item.messages), prompts[(item.benchmark, item.id)], r["token_ids"], correct, truncated)
        )
    return rollouts, run.backend
