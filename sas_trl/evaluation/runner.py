"""`sas-trl eval`: sample every problem n times, grade, save each sample as it finishes, then tabulate.

Order of work, so that bad input fails before any generation: benchmark names and data, the baseline file,
the model folder and tokenizer, the samples file's settings; then the model, then generation.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import metrics
from ..errors import UserError
from .backends import SEEDING, Request, SamplingSettings, TransformersBackend, VLLMBackend, vllm_available
from .config import EvalInputs
from .datasets import PAPER_BENCHMARKS, EvalItem, load_benchmark

SAMPLES_FILE = "eval_samples.jsonl"
RESULTS_FILE = "eval_results.json"
TABLE_FILE = "eval_results.md"  # the name `sas-trl push` puts into the model card when it sits in the model folder


@dataclass(kw_only=True)
class EvalConfig(EvalInputs):
    """Everything `sas-trl eval` takes; defaults are the paper's protocol."""

    benchmarks: list[str] = field(default_factory=lambda: list(PAPER_BENCHMARKS))
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    pass_k: list[int] = field(default_factory=list)
    baseline: str | None = None

    def __post_init__(self):
        super().__post_init__()
        bad_k = [k for k in self.pass_k if not 1 <= k <= self.n]
        if bad_k:
            raise UserError(f"--pass_k values must lie in 1..n (n = {self.n}), got {bad_k}")
        s = self.sampling
        if s.temperature < 0 or not 0 < s.top_p <= 1 or s.max_tokens < 1:
            raise UserError(f"need temperature >= 0, 0 < top_p <= 1 and max_tokens >= 1, got {s}")


# --------------------------------------------------------------------------------------------------
# Checks that run before any generation
# --------------------------------------------------------------------------------------------------


def model_identity(model: str) -> str:
    """A local folder's absolute path, or the Hub id as given (what loads it, and what the samples file records)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


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
        if not (path / "config.json").is_file():
            raise UserError(f"--model {model!r} holds no saved model (no config.json)")
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(model_identity(model))
        tokenizer = AutoTokenizer.from_pretrained(model_identity(model))
    except Exception as err:  # unreadable files, a bad config, the Hub offline or a gated repo
        where = "the folder" if looks_local else "the Hugging Face Hub (offline? gated?)"
        raise UserError(f"--model {model!r}: cannot load the model config or tokenizer from {where}: {err}") from err
    return tokenizer


def read_baseline(path: str, benchmarks: Sequence[str]) -> dict[str, Any]:
    """A previous run's results, checked to hold everything AES will read, before any sampling.

    AES compares averages over the same sets: every benchmark of this run needs the baseline's Pass@1 (a
    number in [0, 1]) and mean length (a number >= 0).
    """
    where = f"--baseline {path!r}"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{where} is not a readable {RESULTS_FILE} of sas-trl eval ({err})") from err
    per_benchmark = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(per_benchmark, dict):
        raise UserError(f"{where} is not a readable {RESULTS_FILE} of sas-trl eval (no 'benchmarks' mapping)")
    missing = [b for b in benchmarks if b not in per_benchmark]
    if missing:
        raise UserError(f"{where} has no results for {', '.join(missing)}; AES compares the same sets")
    for name in benchmarks:
        result = per_benchmark[name]
        for key, low, high in (("pass@1", 0.0, 1.0), ("mean_tokens", 0.0, math.inf)):
            value = result.get(key) if isinstance(result, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise UserError(
                    f"{where}: benchmark {name} has no valid {key!r} (got {value!r}); AES needs the baseline's "
                    f"Pass@1 and mean length for every benchmark: pass a {RESULTS_FILE} written by sas-trl eval"
                )
    return data


def encode_prompt(tokenizer, messages: list[dict[str, str]]) -> tuple[int, ...]:
    """The chat-templated prompt's token ids (the plain message text if the tokenizer has no chat template)."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = "".join(m["content"] for m in messages)
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def samples_header(config) -> dict[str, Any]:
    """What decides a sample: the model, the sampling settings, the grading, and how samples are seeded (one
    random stream per sample, `backends.request_seed`; a samples file written before had per-batch seeds and
    no `seeding` entry, so resuming it is refused rather than mixing the two)."""
    return {
        "model": model_identity(config.model),
        **asdict(config.sampling),
        "reward_format": config.reward_format,
        "seeding": SEEDING,
    }


def make_backend(kind: str, model: str, tokenizer, batch_size: int | None, seed: int, **vllm_kwargs):
    """The generation backend: vLLM when installed with a GPU (or asked for), else transformers."""
    if kind == "vllm" or (kind == "auto" and vllm_available()):
        if not vllm_available():
            raise UserError("--backend vllm needs vllm installed (pip install 'sas-trl[vllm]') and a CUDA GPU")
        return VLLMBackend.load(model_identity(model), batch_size, seed=seed, **vllm_kwargs)
    return TransformersBackend.load(model_identity(model), tokenizer, batch_size)


# --------------------------------------------------------------------------------------------------
# Sampling and grading
# --------------------------------------------------------------------------------------------------


def sample_and_grade(
    items: Sequence[EvalItem],
    n: int,
    store,
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
            scores = reward.grade([c.text for c in completions], answers)
            records = []
            for c, score in zip(completions, scores, strict=True):
                record = {"benchmark": c.key[0], "id": c.key[1], "sample": c.key[2], "correct": score}
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


def summarize_store(items: Sequence[EvalItem], n: int, store, ks: Sequence[int]) -> dict[str, dict]:
    """Per-benchmark metrics from the first n samples of every problem."""
    grouped: dict[str, list[list[dict]]] = {}
    for item in items:
        records = [store.get((item.benchmark, item.id, j)) for j in range(n)]
        if any(r is None for r in records):
            raise RuntimeError(f"samples of {item.benchmark}/{item.id} are missing from the samples file")
        grouped.setdefault(item.benchmark, []).append(records)
    results = {}
    for name, problems in grouped.items():
        result = metrics.summarize(
            correct=[[r["correct"] or 0.0 for r in p] for p in problems],
            tokens=[[r["tokens"] for r in p] for p in problems],
            truncated=[[r["finish"] == "length" for r in p] for p in problems],
            ks=ks,
        )
        result["ungraded"] = sum(r["correct"] is None for p in problems for r in p)  # gold answer unparseable
        results[name] = result
    return results


def add_aes(results: dict[str, Any], baseline: dict[str, Any], baseline_path: str) -> None:
    """AES of every benchmark and of the average against the baseline run (alpha 1, beta 3, gamma 5)."""
    base = {b: baseline["benchmarks"][b] for b in results["benchmarks"]}
    base_avg = metrics.average(base)
    for name, result in results["benchmarks"].items():
        result["aes"] = _aes_or_none(result, base[name])
    results["average"]["aes"] = _aes_or_none(results["average"], base_avg)
    results["baseline"] = {
        "path": baseline_path,
        "model": baseline.get("model"),
        "pass@1": base_avg["pass@1"],
        "mean_tokens": base_avg["mean_tokens"],
    }


def _aes_or_none(result: dict, base: dict) -> float | None:
    if base["pass@1"] <= 0 or base["mean_tokens"] <= 0:
        return None  # undefined: relative change against zero
    return metrics.aes(result["pass@1"], result["mean_tokens"], base["pass@1"], base["mean_tokens"])


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table: percentages for rates, tokens for length, AES when there is a baseline."""
    ks = sorted(int(k.split("@")[1]) for k in results["average"] if k.startswith("pass@") and k != "pass@1")
    has_aes = "baseline" in results
    header = ["benchmark", "problems", "Pass@1 (%)", *(f"pass@{k} (%)" for k in ks), "tokens", "truncated (%)"]
    header += ["AES"] if has_aes else []
    rows = [*results["benchmarks"].items(), ("**average**", results["average"])]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, r in rows:
        cells = [name, str(r["problems"]), f"{100 * r['pass@1']:.2f}", *(f"{100 * r[f'pass@{k}']:.2f}" for k in ks)]
        cells += [f"{r['mean_tokens']:.1f}", f"{100 * r['truncated']:.1f}"]
        if has_aes:
            cells.append("n/a" if r.get("aes") is None else f"{r['aes']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    s = results["settings"]
    lines.append("")
    lines.append(
        f"{results['model']}: n={s['n']}, temperature {s['temperature']}, top_p {s['top_p']}, "
        f"max_tokens {s['max_tokens']}; averages are unweighted over benchmarks."
    )
    if has_aes:
        b = results["baseline"]
        lines.append(
            f"AES against {b['model']} (Pass@1 {100 * b['pass@1']:.2f}%, {b['mean_tokens']:.1f} tokens): "
            "alpha 1, beta 3, gamma 5."
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def load_items(config) -> list[EvalItem]:
    """Every problem of every benchmark of an `EvalConfig` or `TruncationConfig`, loaded before any model work."""
    return [
        item
        for name in config.benchmarks
        for item in load_benchmark(name, config.sources, config.data_dir, config.limit, config.addition_terms)
    ]


def run_eval(config: EvalConfig, backend=None) -> dict[str, Any]:
    """Run (or resume) an evaluation; writes eval_samples.jsonl, eval_results.json and eval_results.md.

    `backend` replaces the one `config.backend` would build (tests, or a caller holding a loaded model).
    """
    from ..rewards import MathVerifyReward
    from .store import SampleStore

    items = load_items(config)
    baseline = read_baseline(config.baseline, config.benchmarks) if config.baseline else None
    tokenizer = load_tokenizer(config.model)
    out = config.resolved_output_dir()
    store = SampleStore(out / SAMPLES_FILE, samples_header(config), overwrite=config.overwrite)

    backend = backend or make_backend(config.backend, config.model, tokenizer, config.batch_size, config.sampling.seed)
    reward = MathVerifyReward(format=config.reward_format, workers=1)
    try:
        generated, seconds = sample_and_grade(
            items, config.n, store, backend, tokenizer, config.sampling, reward, progress=config.progress
        )
    finally:
        reward.close()

    per_benchmark = summarize_store(items, config.n, store, config.pass_k)
    results: dict[str, Any] = {
        "model": config.model,
        "settings": {"n": config.n, **asdict(config.sampling), "reward_format": config.reward_format},
        "backend": type(backend).__name__,
        "benchmarks": per_benchmark,
        "average": metrics.average(per_benchmark),
        "throughput": {
            "samples": generated,
            "seconds": round(seconds, 3),
            "samples_per_second": generated / seconds if generated and seconds > 0 else None,
        },
    }
    if baseline is not None:
        add_aes(results, baseline, config.baseline)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    (out / TABLE_FILE).write_text(markdown_table(results))
    return results
