"""The sampling pipeline of `sas-trl eval`, `analyze-truncation` and `inspect`: items -> samples file -> backend
-> grading.

`SamplingRun.open` checks the samples file's header against the command's settings (before any model loads),
then builds the backend; `SamplingRun.draw` samples what the file does not hold yet, grades it and appends it
batch by batch, so an interrupted command resumes where it stopped. The checks that must fail before any model
work (benchmarks, the model folder and its tokenizer) are `load_items` and `load_tokenizer`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import UserError
from .backends import SEEDING, Request, SamplingSettings, make_backend, model_fingerprint, model_identity
from .config import EvalInputs
from .datasets import EvalItem, load_benchmark
from .model_files import model_folder_problem
from .store import SampleStore

# --------------------------------------------------------------------------------------------------
# Checks that run before any generation
# --------------------------------------------------------------------------------------------------


def load_items(config: EvalInputs) -> list[EvalItem]:
    """Every problem of every benchmark of a command's config, loaded before any model work."""
    return [
        item
        for name in config.benchmarks
        for item in load_benchmark(name, config.sources, config.data_dir, config.limit, config.addition_terms)
    ]


def load_tokenizer(model: str):
    """Check that `model` is a readable model folder or a reachable Hub id, and return its tokenizer."""
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or model.count("/") != 1 or path.exists()
    if looks_local:
        if not path.exists():
            raise UserError(f"--model {model!r}: no such folder (and not a Hub id of the form owner/name)")
        if not path.is_dir():
            raise UserError(f"--model {model!r} is a file; pass the model's folder")
        if not os.access(path, os.R_OK | os.X_OK):
            raise UserError(f"--model {model!r}: the folder is not readable")
        problem = model_folder_problem(path)  # transformers' traceback halfway through loading, otherwise
        if problem is not None:
            raise UserError(f"--model {model!r}: {problem}")
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(model_identity(model))
        tokenizer = AutoTokenizer.from_pretrained(model_identity(model))
    except Exception as err:  # unreadable files, a bad config, the Hub offline or a gated repo
        where = "the folder" if looks_local else "the Hugging Face Hub (offline? gated?)"
        raise UserError(f"--model {model!r}: cannot load the model config or tokenizer from {where}: {err}") from err
    return tokenizer


def encode_prompt(tokenizer, messages: list[dict[str, str]]) -> tuple[int, ...]:
    """The chat-templated prompt's token ids (the plain message text if the tokenizer has no chat template)."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = "".join(m["content"] for m in messages)
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def samples_header(config: EvalInputs) -> dict[str, Any]:
    """What decides a sample: the model and its files (`backends.model_fingerprint`: new weights at the same path
    are not the same model), the sampling settings, the grading, and how samples are seeded (one random stream
    per sample, `backends.request_seed`; a samples file written before had per-batch seeds and no `seeding`
    entry, so resuming it is refused rather than mixing the two). The problem itself is recorded per sample
    (`problem_digest`)."""
    return {
        "model": model_identity(config.model),
        "weights": model_fingerprint(config.model),
        **asdict(config.sampling),
        "reward_format": config.reward_format,
        "seeding": SEEDING,
    }


def problem_digest(item: EvalItem) -> str:
    """A short hash of what the model is asked and what is graded (the messages and gold answers): a benchmark's
    parameters (`--addition_terms`, its source file, a `--prompt` text) that change a problem change it."""
    text = json.dumps([item.messages, item.answers], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_problems(store: SampleStore, items: Sequence[EvalItem], n: int) -> None:
    """Refuse a samples file whose saved samples were drawn for other problems under the same (benchmark, id)."""
    stale = []
    for item in items:
        digest = problem_digest(item)
        for j in range(n):
            record = store.get((item.benchmark, item.id, j))
            if record is not None and record.get("problem") != digest:
                stale.append(f"{item.benchmark}/{item.id}")
                break
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise UserError(
            f"{store.path} holds samples of other problems under the same names ({shown}: the prompt or gold answer "
            "differs, e.g. other --addition_terms or another source file); pass another --output_dir, or --overwrite "
            "to discard them"
        )


# --------------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------------


@contextmanager
def open_grader(reward_format: str) -> Iterator[Any]:
    """The math-verify grader of `reward_format` (one worker), stopped when the block ends."""
    from ..rewards import MathVerifyReward

    reward = MathVerifyReward(format=reward_format, workers=1)
    try:
        yield reward
    finally:
        reward.close()


def grade_known(reward, texts: Sequence[str], answers: Sequence[list[str]]) -> list[float | None]:
    """Scores of the texts that have gold answers; None for the others (a bare prompt has no verdict).

    Benchmark problems always have gold answers (`datasets` refuses rows without one), so on benchmarks this is
    `reward.grade`.
    """
    known = [i for i, a in enumerate(answers) if a]
    scores = reward.grade([texts[i] for i in known], [answers[i] for i in known]) if known else []
    out: list[float | None] = [None] * len(texts)
    for i, score in zip(known, scores, strict=True):
        out[i] = score
    return out


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def sample_and_grade(
    items: Sequence[EvalItem],
    n: int,
    store: SampleStore,
    backend,
    tokenizer,
    settings: SamplingSettings,
    reward,
    keep_token_ids: bool = False,
    progress: bool = True,
) -> tuple[int, float]:
    """Draw the samples `store` does not have yet, grade them and append them batch by batch.

    Returns (samples generated now, seconds spent generating and grading).
    """
    by_key = {(item.benchmark, item.id): item for item in items}
    digests = {key: problem_digest(item) for key, item in by_key.items()}
    requests = [
        Request((item.benchmark, item.id, j), encode_prompt(tokenizer, item.messages))
        for item in items
        for j in range(n)
        if (item.benchmark, item.id, j) not in store
    ]
    left = {}
    for r in requests:
        left[r.key[:2]] = left.get(r.key[:2], 0) + 1
    total, problems = len(items) * n, len(items)
    bar = tqdm(total=total, initial=total - len(requests), desc="eval", unit="sample", disable=not progress)
    bar.set_postfix(problems=f"{problems - len(left)}/{problems}")
    start = time.perf_counter()
    try:
        for completions in backend.generate(requests, settings):
            answers = [by_key[c.key[:2]].answers for c in completions]
            scores = grade_known(reward, [c.text for c in completions], answers)
            records = []
            for c, score in zip(completions, scores, strict=True):
                record = {"benchmark": c.key[0], "id": c.key[1], "sample": c.key[2], "correct": score}
                record["problem"] = digests[c.key[:2]]
                record.update(tokens=len(c.token_ids), finish=c.finish_reason, text=c.text)
                if keep_token_ids:
                    record["token_ids"] = c.token_ids
                records.append(record)
                left[c.key[:2]] -= 1
                if not left[c.key[:2]]:
                    del left[c.key[:2]]
            store.append(records)
            bar.update(len(records))
            bar.set_postfix(problems=f"{problems - len(left)}/{problems}")
    finally:
        bar.close()
    return len(requests), time.perf_counter() - start


@dataclass
class SamplingRun:
    """One command's samples: n per item, in the samples file `store`, drawn by `backend`."""

    config: EvalInputs
    items: list[EvalItem]
    tokenizer: Any
    store: SampleStore
    backend: Any

    @classmethod
    def open(
        cls, config: EvalInputs, items: list[EvalItem], tokenizer, samples_file: str, backend=None
    ) -> SamplingRun:
        """Open (or resume) `samples_file` in the output folder, then build the backend unless one is given.

        The header and the saved samples' problems are checked first: a samples file drawn with other settings,
        another model's files or for other problems fails before the model loads.
        """
        path = config.resolved_output_dir() / samples_file
        store = SampleStore(path, samples_header(config), overwrite=config.overwrite)
        check_problems(store, items, config.n)
        if backend is None:
            backend = make_backend(config.backend, config.model, tokenizer, config.batch_size, config.sampling.seed)
        return cls(config, items, tokenizer, store, backend)

    def draw(self, reward, keep_token_ids: bool = False) -> tuple[int, float]:
        """Sample and grade what the file lacks; returns (samples generated now, seconds it took)."""
        c = self.config
        return sample_and_grade(
            self.items, c.n, self.store, self.backend, self.tokenizer, c.sampling, reward, keep_token_ids, c.progress
        )

    def records(self) -> list[dict]:
        """The first n records of every item, item by item (every one must have been drawn)."""
        out = []
        for item in self.items:
            for j in range(self.config.n):
                record = self.store.get((item.benchmark, item.id, j))
                if record is None:
                    raise RuntimeError(f"samples of {item.benchmark}/{item.id} are missing from the samples file")
                out.append(record)
        return out

    def prompt_ids(self) -> dict[tuple[str, str], tuple[int, ...]]:
        """Every item's chat-templated prompt ids, keyed by (benchmark, id)."""
        return {(it.benchmark, it.id): encode_prompt(self.tokenizer, it.messages) for it in self.items}
