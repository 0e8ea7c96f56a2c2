"""`sas-trl eval`: sample every problem n times, grade, save each sample as it finishes, then tabulate.

Order of work, so that bad input fails before any generation: benchmark names and data, the baseline file,
the model folder and tokenizer, the samples file's settings; then the model, then generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import metrics
from ..errors import UserError
from ..output_files import write_text
from .config import EvalInputs
from .datasets import PAPER_BENCHMARKS
from .sampling import SamplingRun, load_items, load_tokenizer, open_grader

SAMPLES_FILE = "eval_samples.jsonl"
RESULTS_FILE = "eval_results.json"
TABLE_FILE = "eval_results.md"  # the name `sas-trl push` puts into the model card when it sits in the model folder


@dataclass(kw_only=True)
class EvalConfig(EvalInputs):
    """Everything `sas-trl eval` takes; defaults are the paper's protocol."""

    benchmarks: list[str] = field(default_factory=lambda: list(PAPER_BENCHMARKS))
    pass_k: list[int] = field(default_factory=list)
    baseline: str | None = None

    def __post_init__(self):
        super().__post_init__()
        bad_k = [k for k in self.pass_k if not 1 <= k <= self.n]
        if bad_k:
            raise UserError(f"--pass_k values must lie in 1..n (n = {self.n}), got {bad_k}")


# --------------------------------------------------------------------------------------------------
# Checks that run before any generation
# --------------------------------------------------------------------------------------------------


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


def summarize_samples(run: SamplingRun, ks: Sequence[int]) -> dict[str, dict]:
    """Per-benchmark metrics from the first n samples of every problem."""
    n, records = run.config.n, run.records()  # item by item, n each
    grouped: dict[str, list[list[dict]]] = {}
    for i, item in enumerate(run.items):
        grouped.setdefault(item.benchmark, []).append(records[i * n : (i + 1) * n])
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


def run_eval(config: EvalConfig, backend=None) -> dict[str, Any]:
    """Run (or resume) an evaluation; writes eval_samples.jsonl, eval_results.json and eval_results.md.

    `backend` replaces the one `config.backend` would build (tests, or a caller holding a loaded model).
    """
    items = load_items(config)
    baseline = read_baseline(config.baseline, config.benchmarks) if config.baseline else None
    tokenizer = load_tokenizer(config.model)
    run = SamplingRun.open(config, items, tokenizer, SAMPLES_FILE, backend)
    with open_grader(config.reward_format) as reward:
        generated, seconds = run.draw(reward)

    per_benchmark = summarize_samples(run, config.pass_k)
    results: dict[str, Any] = {
        "model": config.model,
        "settings": {"n": config.n, **asdict(config.sampling), "reward_format": config.reward_format},
        "backend": type(run.backend).__name__,
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
    out = config.resolved_output_dir()
    write_text(out, RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    write_text(out, TABLE_FILE, markdown_table(results))
    return results
