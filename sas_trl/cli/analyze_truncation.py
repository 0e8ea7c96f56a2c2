"""`sas-trl analyze-truncation --model M --benchmarks B`: how many traces a short budget turns into failures."""

from __future__ import annotations

import argparse

from .eval_options import add_eval_options, common_config, interrupted
from .sas_options import add_sas_options, check_labels_available, sas_rule_from

HELP = "how many traces correct at a long budget fail when cut short, and their step confidence"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl analyze-truncation", description=HELP, allow_abbrev=False)
    add_eval_options(parser, None)
    parser.set_defaults(n=4)
    parser.add_argument("--long_tokens", type=int, default=8192, help="sampling budget (default: %(default)s)")
    parser.add_argument("--short_tokens", type=int, default=4096, help="cut budget (default: %(default)s)")
    add_sas_options(parser, "a training recipe: the SAS rule whose shield is overlaid (default: the paper's)")
    parser.add_argument("--score_batch_size", type=int, default=4, help="sequences per log-prob forward pass")
    args = parser.parse_args(argv)
    rule, _ = sas_rule_from(args)
    check_labels_available(rule, args.benchmarks)
    common = common_config(args, args.long_tokens)

    from ..evaluation.truncation import (
        PLOT_FILE,
        RESULTS_FILE,
        SAMPLES_FILE,
        TruncationConfig,
        run_truncation,
        summary_text,
    )

    config = TruncationConfig(
        **common,
        short_tokens=args.short_tokens,
        sas=rule,
        score_batch_size=args.score_batch_size,
    )
    out = config.resolved_output_dir()
    try:
        results = run_truncation(config)
    except KeyboardInterrupt:
        return interrupted("analyze-truncation", str(out / SAMPLES_FILE))
    print(summary_text(results))
    print(f"sas-trl analyze-truncation: wrote {out / RESULTS_FILE}, {out / PLOT_FILE} and {out / SAMPLES_FILE}")
    return 0
