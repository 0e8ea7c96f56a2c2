"""Eval throughput of `sas-trl eval` (transformers backend, grading included) with the tiny model on this machine.

Builds the built-in task's tiny Llama (0.45M parameters, random init unless --model points at a trained one),
evaluates it on the built-in `addition` benchmark and prints samples per second.

    .venv/bin/python benchmarks/eval_throughput.py [--model DIR] [--problems 64] [--n 8] [--max_tokens 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from sas_trl.evaluation import EvalConfig, SamplingSettings, run_eval


def tiny_task_model(folder: Path) -> Path:
    from sas_trl.task import build_task_model
    from sas_trl.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    build_task_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", help="a saved model folder (default: the tiny task model, random init)")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max_tokens", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for tiny models)")
    parser.add_argument("--out", default="benchmarks/results/eval_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(tiny_task_model(Path(tmp) / "model"))
        config = EvalConfig(
            model=model,
            benchmarks=["addition"],
            n=args.n,
            limit=args.problems,
            sampling=SamplingSettings(max_tokens=args.max_tokens),
            output_dir=str(Path(tmp) / "eval"),
            batch_size=args.batch_size,
            backend="transformers",
            progress=False,
        )
        results = run_eval(config)
    throughput = results["throughput"]
    mean_tokens = results["average"]["mean_tokens"]
    summary = {
        "model": args.model or "tiny task model (random init)",
        "samples": throughput["samples"],
        "seconds": throughput["seconds"],
        "samples_per_second": throughput["samples_per_second"],
        "tokens_per_second": throughput["samples_per_second"] * mean_tokens,
        "mean_tokens": mean_tokens,
        "config": {k: getattr(args, k) for k in ("problems", "n", "max_tokens", "batch_size", "threads")},
    }
    try:
        from machine import machine_info  # benchmarks/machine.py, when run from the repository

        summary["machine"] = machine_info()
    except ImportError:
        pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"eval throughput: {summary['samples_per_second']:.1f} samples/s ({summary['samples']} samples of "
        f"{mean_tokens:.1f} tokens on average, {summary['tokens_per_second']:.0f} tokens/s, grading included)"
    )


if __name__ == "__main__":
    main()
