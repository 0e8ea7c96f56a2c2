"""Options `sas-trl eval`, `analyze-truncation` and `inspect` share: model, data, sampling and runtime."""

from __future__ import annotations

import argparse
import sys

from ..constants import REWARD_FORMATS
from ..errors import UserError


def int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_eval_options(parser: argparse.ArgumentParser, default_benchmarks: str | None) -> None:
    """Model, data, sampling and runtime options shared by `eval`, `analyze-truncation` and `inspect`."""
    from ..evaluation.datasets import known_benchmarks

    parser.add_argument("--model", required=True, help="a saved model folder or a Hub id (owner/name)")
    parser.add_argument(
        "--benchmarks",
        required=default_benchmarks is None,
        default=default_benchmarks,
        help=f"comma-separated names, from: {', '.join(known_benchmarks())} (default: %(default)s)",
    )
    parser.add_argument(
        "--source",
        action="append",
        metavar="NAME=PATH",
        help="read a benchmark from a local .jsonl/.json/.parquet file with the Hub dataset's columns (repeatable)",
    )
    parser.add_argument("--data_dir", help="a folder of NAME.jsonl (or .json, .parquet) files, used when present")
    parser.add_argument("--limit", type=int, help="only the first N problems of each benchmark (addition: N problems)")
    parser.add_argument(
        "--addition_terms", type=int_list, help="MIN,MAX addends of the built-in addition problems (default: task's)"
    )
    parser.add_argument("--n", type=int, default=16, help="samples per problem (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.6, help="0 = greedy (default: %(default)s)")
    parser.add_argument("--top_p", type=float, default=0.95, help="nucleus sampling (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    parser.add_argument("--reward_format", default="r1", choices=REWARD_FORMATS, help="r1: grade after </think>")
    parser.add_argument("--output_dir", help="results folder (default: eval_results/MODEL, truncation_results/MODEL)")
    parser.add_argument("--overwrite", action="store_true", help="discard samples saved by an earlier run")
    parser.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"], help="vllm needs a GPU")
    parser.add_argument(
        "--batch_size",
        type=int,
        help="sequences per generate call (transformers 64, vLLM 4096); samples do not depend on it",
    )
    parser.add_argument(
        "--num_threads",
        type=int,
        help="torch CPU threads (default: 1 when generating on a CPU, as `sas-trl train` does: several times faster "
        "for small models on shared cores; raise it for a large model on a CPU of your own)",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def common_config(args, max_tokens: int) -> dict:
    """The config fields every command shares (`EvalInputs`), checked; `max_tokens` is the command's sampling
    budget (eval's --max_tokens, analyze-truncation's --long_tokens)."""
    from ..evaluation.backends import SamplingSettings
    from ..evaluation.datasets import parse_names, parse_sources

    if args.addition_terms is not None and len(args.addition_terms) != 2:
        raise UserError(f"--addition_terms expects MIN,MAX, got {args.addition_terms}")
    if args.num_threads is not None and args.num_threads < 1:
        raise UserError(f"--num_threads must be >= 1, got {args.num_threads}")
    set_threads(args.num_threads)
    return {
        "model": args.model,
        "benchmarks": parse_names(args.benchmarks),
        "n": args.n,
        "sampling": SamplingSettings(args.temperature, args.top_p, max_tokens, args.seed),
        "output_dir": args.output_dir,
        "sources": parse_sources(args.source),
        "data_dir": args.data_dir,
        "limit": args.limit,
        "addition_terms": tuple(args.addition_terms) if args.addition_terms else None,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "reward_format": args.reward_format,
        "overwrite": args.overwrite,
        "progress": not args.no_progress,
    }


def set_threads(num_threads: int | None) -> int:
    """torch's CPU threads: `num_threads`, or 1 when generation runs on the CPU (the default that is fast for the
    small models a CPU evaluates; on 2 shared cores docs/eval.md's tiny eval ran 7.6x slower with torch's default).
    Returns the number of threads torch now uses."""
    import torch

    from ..evaluation.backends import pick_device

    if num_threads is None and pick_device().type == "cpu":
        num_threads = 1
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()


def interrupted(command: str, samples: str) -> int:
    print(
        f"sas-trl {command}: interrupted; finished samples are saved in {samples}: run the same command to resume",
        file=sys.stderr,
    )
    return 130
