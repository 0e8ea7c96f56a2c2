"""`sas-trl analyze-truncation --model M --benchmarks B`: how many traces a short budget turns into failures."""

from __future__ import annotations

import argparse
import dataclasses

from ..constants import BUILTIN_MODEL
from ..errors import UserError
from .eval_options import add_eval_options, common_config, interrupted
from .sas_options import add_sas_options, check_labels_available, sas_rule_from

HELP = "how many traces correct at a long budget fail when cut short, and their step confidence"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sas-trl analyze-truncation",
        description=HELP,
        allow_abbrev=False,
        epilog=f"--model {BUILTIN_MODEL} --recipe R: the model R's runs start from (R's warm-up, from the shared "
        "cache), on R's addends; the testbed's criteria are printed next to their targets (docs/testbed.md).",
    )
    add_eval_options(parser, None)
    parser.set_defaults(n=4)
    parser.add_argument("--long_tokens", type=int, default=8192, help="sampling budget (default: %(default)s)")
    parser.add_argument("--short_tokens", type=int, default=4096, help="cut budget (default: %(default)s)")
    add_sas_options(parser, "a training recipe: the SAS rule whose shield is overlaid (default: the paper's)")
    parser.add_argument("--score_batch_size", type=int, default=4, help="sequences per log-prob forward pass")
    args = parser.parse_args(argv)
    rule, _ = sas_rule_from(args)
    check_labels_available(rule, args.benchmarks)
    if rule.needs_labels:  # its selection is the labels themselves: nothing to measure against them
        raise UserError(
            f"analyze-truncation measures a confidence rule's selection against the step labels; "
            f"sas_selection={rule.selection!r} selects by those labels (sas-trl inspect shows its mask)"
        )
    run_args = train_args = None
    if args.model == BUILTIN_MODEL:  # the starting model of the recipe's runs: its warm-up, from the shared cache
        run_args, train_args = builtin_recipe(args)
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
    if run_args is not None:
        from ..training.warmup import warmed_up_model

        config = dataclasses.replace(config, model=str(warmed_up_model(run_args, train_args.seed)))
    out = config.resolved_output_dir()
    try:
        results = run_truncation(config)
    except KeyboardInterrupt:
        return interrupted("analyze-truncation", str(out / SAMPLES_FILE))
    print(summary_text(results))
    print(f"sas-trl analyze-truncation: wrote {out / RESULTS_FILE}, {out / PLOT_FILE} and {out / SAMPLES_FILE}")
    return 0


def builtin_recipe(args: argparse.Namespace):
    """For `--model builtin:tiny`: the recipe's run settings (its warm-up makes the model), with the defaults it
    implies filled in `args` (the recipe's addends, an output folder named after the recipe)."""
    from pathlib import Path

    from ..training.recipes import parse

    if not args.recipe:
        raise UserError(
            f"--model {BUILTIN_MODEL} needs --recipe: the training recipe whose warm-up (seed, sft_warmup_steps, "
            "builtin_* keys) makes the model"
        )
    run_args, train_args, model_args, _ = parse(["--recipe", args.recipe])
    if model_args.model_name_or_path != BUILTIN_MODEL:
        raise UserError(
            f"--model {BUILTIN_MODEL}: the recipe {args.recipe} trains {model_args.model_name_or_path!r}, not the "
            "built-in model; pass that model's folder instead"
        )
    if args.addition_terms is None:
        args.addition_terms = [run_args.builtin_min_terms, run_args.builtin_max_terms]
    if args.output_dir is None:
        args.output_dir = str(Path("truncation_results") / Path(args.recipe).stem)
    return run_args, train_args
