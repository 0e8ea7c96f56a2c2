"""The `sas-trl` command line.

sas-trl train --recipe recipes/deepscaler_4k.yaml [--any_field value ...]
sas-trl push --output_dir DIR --hub_model_id NAME
sas-trl eval --model PATH_OR_HUB_ID [--benchmarks aime24,aime25,amc,math500,olympiad_bench] [--baseline RESULTS.json]
sas-trl analyze-truncation --model PATH_OR_HUB_ID --benchmarks math500 [--long_tokens 8192 --short_tokens 4096]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from . import __version__
from .recipes import RecipeError

COMMANDS = {
    "train": "train with SAS from a recipe (fields of SASConfig, ModelConfig and RunArguments; flags override)",
    "push": "upload a finished run's output folder (model, tokenizer, model card) to the Hugging Face Hub",
    "eval": "sample and grade a model on benchmarks: Pass@1, pass@k, length, truncation rate, AES vs a baseline",
    "analyze-truncation": "how many traces correct at a long budget fail when cut short, and their step confidence",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sas-trl",
        description="Step-level Advantage Selection (SAS) for GRPO post-training on Hugging Face TRL.",
        epilog="Run `sas-trl COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"sas-trl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def train(argv: list[str]) -> int:
    from .recipes import dataclass_types, parse

    if "-h" in argv or "--help" in argv:
        from trl import TrlParser

        print("usage: sas-trl train --recipe FILE [--field value ...]\n")
        print(TrlParser(dataclass_types()).format_help().split("\n", 2)[-1])
        return 0
    run_args, sas_args, model_args, recipe = parse(argv)

    from .launch import LAUNCHED_ENV, launch_command

    command = launch_command(run_args, argv)
    if command is not None:
        print(f"sas-trl: launching {' '.join(command)}", flush=True)
        return subprocess.call(command, env={**os.environ, LAUNCHED_ENV: "1"})

    from .train import run

    run(run_args, sas_args, model_args, recipe)
    return 0


def push(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl push", description=COMMANDS["push"])
    parser.add_argument("--output_dir", required=True, help="the finished run's output folder")
    parser.add_argument("--hub_model_id", required=True, help="repo id, e.g. user/model")
    parser.add_argument("--hub_private_repo", action="store_true", help="create the repo as private")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.output_dir, "config.json")):
        raise RecipeError(f"--output_dir {args.output_dir!r} holds no saved model (no config.json)")

    from .hub import add_eval_table, check_hub_access, upload

    repo_id = check_hub_access(args.hub_model_id, private=args.hub_private_repo or None)
    if add_eval_table(args.output_dir):
        print(f"sas-trl: added {args.output_dir}/eval_results.md to the model card")
    print(f"sas-trl: pushed to {upload(args.output_dir, repo_id, private=args.hub_private_repo or None)}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_common_eval_args(parser: argparse.ArgumentParser, default_benchmarks: str | None) -> None:
    """Model, data, sampling and runtime options shared by `eval` and `analyze-truncation`."""
    from .evaluation.benchmarks import known_benchmarks

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
        "--addition_terms", type=_int_list, help="MIN,MAX addends of the built-in addition problems (default: task's)"
    )
    parser.add_argument("--n", type=int, default=16, help="samples per problem (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.6, help="0 = greedy (default: %(default)s)")
    parser.add_argument("--top_p", type=float, default=0.95, help="nucleus sampling (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    parser.add_argument("--reward_format", default="r1", choices=["r1", "plain"], help="r1: grade after </think>")
    parser.add_argument("--output_dir", help="results folder (default: eval_results/MODEL, truncation_results/MODEL)")
    parser.add_argument("--overwrite", action="store_true", help="discard samples saved by an earlier run")
    parser.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"], help="vllm needs a GPU")
    parser.add_argument("--batch_size", type=int, help="sequences per generate call (transformers 64, vLLM 4096)")
    parser.add_argument("--num_threads", type=int, help="torch CPU threads (1 is fastest for tiny models)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def _common_config(args) -> dict:
    """The `EvalConfig` / `TruncationConfig` fields both commands share, checked."""
    from .evaluation.benchmarks import parse_names, parse_sources

    if args.addition_terms is not None and len(args.addition_terms) != 2:
        raise RecipeError(f"--addition_terms expects MIN,MAX, got {args.addition_terms}")
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    return {
        "model": args.model,
        "benchmarks": parse_names(args.benchmarks),
        "n": args.n,
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


def _interrupted(command: str, samples: str) -> int:
    print(
        f"sas-trl {command}: interrupted; finished samples are saved in {samples}: run the same command to resume",
        file=sys.stderr,
    )
    return 130


def evaluate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl eval", description=COMMANDS["eval"])
    _add_common_eval_args(parser, "aime24,aime25,amc,math500,olympiad_bench")
    parser.add_argument("--max_tokens", type=int, default=8192, help="response token budget (default: %(default)s)")
    parser.add_argument("--pass_k", type=_int_list, default=[], help="extra k for unbiased pass@k, e.g. 4,16 (k <= n)")
    parser.add_argument("--baseline", help="another run's eval_results.json: adds AES (alpha 1, beta 3, gamma 5)")
    args = parser.parse_args(argv)
    common = _common_config(args)

    from .evaluation import EvalConfig, SamplingSettings, markdown_table, run_eval
    from .evaluation.runner import RESULTS_FILE, SAMPLES_FILE, TABLE_FILE

    config = EvalConfig(
        **common,
        sampling=SamplingSettings(args.temperature, args.top_p, args.max_tokens, args.seed),
        pass_k=args.pass_k,
        baseline=args.baseline,
    )
    out = config.resolved_output_dir()
    try:
        results = run_eval(config)
    except KeyboardInterrupt:
        return _interrupted("eval", str(out / SAMPLES_FILE))
    print(markdown_table(results))
    rate = results["throughput"]["samples_per_second"]
    if rate:
        print(f"{results['throughput']['samples']} samples in {results['throughput']['seconds']:.1f} s ({rate:.2f}/s)")
    print(f"sas-trl eval: wrote {out / RESULTS_FILE}, {out / TABLE_FILE} and {out / SAMPLES_FILE}")
    return 0


def analyze_truncation(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl analyze-truncation", description=COMMANDS["analyze-truncation"])
    _add_common_eval_args(parser, None)
    parser.set_defaults(n=4)
    parser.add_argument("--long_tokens", type=int, default=8192, help="sampling budget (default: %(default)s)")
    parser.add_argument("--short_tokens", type=int, default=4096, help="cut budget (default: %(default)s)")
    parser.add_argument("--ratio", type=float, default=0.3, help="SAS ratio r for the shield overlay")
    parser.add_argument("--score_batch_size", type=int, default=4, help="sequences per log-prob forward pass")
    args = parser.parse_args(argv)
    common = _common_config(args)

    from .truncation import PLOT_FILE, RESULTS_FILE, SAMPLES_FILE, TruncationConfig, run_truncation, summary_text

    config = TruncationConfig(
        **common,
        long_tokens=args.long_tokens,
        short_tokens=args.short_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        ratio=args.ratio,
        score_batch_size=args.score_batch_size,
    )
    out = config.resolved_output_dir()
    try:
        results = run_truncation(config)
    except KeyboardInterrupt:
        return _interrupted("analyze-truncation", str(out / SAMPLES_FILE))
    print(summary_text(results))
    print(f"sas-trl analyze-truncation: wrote {out / RESULTS_FILE}, {out / PLOT_FILE} and {out / SAMPLES_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # --help, --version, or an unknown command (argparse explains)
        parser.print_help()
        return 0 if args.command is None and not argv else 2
    command, rest = argv[0], argv[1:]
    try:
        handlers = {"train": train, "push": push, "eval": evaluate, "analyze-truncation": analyze_truncation}
        return handlers[command](rest)
    except RecipeError as err:
        print(f"sas-trl {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sas-trl {command}: interrupted; checkpoints saved so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
