"""`sas-trl eval --model PATH_OR_HUB_ID [--benchmarks ...] [--baseline RESULTS.json]`: Pass@1, pass@k, length."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .eval_options import add_eval_options, common_config, int_list, interrupted

HELP = "sample and grade a model on benchmarks: Pass@1, pass@k, length, truncation rate, AES vs a baseline"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sas-trl eval", description=HELP, allow_abbrev=False)
    add_eval_options(parser, "aime24,aime25,amc,math500,olympiad_bench")
    parser.add_argument("--max_tokens", type=int, default=8192, help="response token budget (default: %(default)s)")
    parser.add_argument("--pass_k", type=int_list, default=[], help="extra k for unbiased pass@k, e.g. 4,16 (k <= n)")
    parser.add_argument("--baseline", help="another run's eval_results.json: adds AES (alpha 1, beta 3, gamma 5)")
    return parser


def flag_names() -> set[str]:
    """Every `--flag` of `sas-trl eval`, without the dashes (what a study's `eval:` keys may be)."""
    return {s[2:] for a in build_parser()._actions for s in a.option_strings if s.startswith("--")} - {"help"}


def parse_config(argv: list[str]):
    """`sas-trl eval` flags -> a checked `EvalConfig` (a `UserError` names a bad flag or value)."""
    from ..evaluation import EvalConfig

    parser = build_parser()

    def fail(message: str):  # argparse would print its usage and exit
        raise UserError(message)

    parser.error = fail
    args = parser.parse_args(argv)
    return EvalConfig(
        **common_config(args, args.max_tokens),
        pass_k=args.pass_k,
        baseline=args.baseline,
    )


def main(argv: list[str]) -> int:
    config = parse_config(argv)

    from ..evaluation import markdown_table, run_eval
    from ..evaluation.runner import RESULTS_FILE, SAMPLES_FILE, TABLE_FILE

    out = config.resolved_output_dir()
    try:
        results = run_eval(config)
    except KeyboardInterrupt:
        return interrupted("eval", str(out / SAMPLES_FILE))
    print(markdown_table(results))
    rate = results["throughput"]["samples_per_second"]
    if rate:
        print(f"{results['throughput']['samples']} samples in {results['throughput']['seconds']:.1f} s ({rate:.2f}/s)")
    print(f"sas-trl eval: wrote {out / RESULTS_FILE}, {out / TABLE_FILE} and {out / SAMPLES_FILE}")
    return 0
