"""`sas-trl inspect --model M (--prompt TEXT | --samples FILE | --benchmarks B)`: see what SAS would zero."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import RecipeError
from .eval_options import add_eval_options, common_config, interrupted
from .sas_options import add_sas_options, check_labels_available, sas_rule_from

HELP = "render a model's rollouts as SAS sees them: steps, confidences, what it would zero (HTML + terminal)"


def completion_budget(flag: int | None, recipe: dict[str, Any], recipe_path: str | None) -> int:
    """--max_tokens, else the recipe's max_completion_length (type-checked by training's loader), else 1024."""
    if flag is not None:
        return flag
    value = recipe.get("max_completion_length")
    if value is None:
        return 1024
    if value < 1:  # the value training would refuse, named where it sits rather than as --max_tokens
        raise RecipeError(f"max_completion_length: {value!r} in {recipe_path} must be >= 1")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl inspect", description=HELP, allow_abbrev=False)
    add_eval_options(parser, "")
    parser.set_defaults(n=4, temperature=1.0, top_p=1.0)
    parser.add_argument("--prompt", action="append", default=[], help="a user message to sample from (repeatable)")
    parser.add_argument("--samples", help="read rollouts from a samples file (sas-trl eval's eval_samples.jsonl, ...)")
    parser.add_argument("--max_tokens", type=int, help="completion budget (default: the recipe's, else 1024)")
    parser.add_argument("--max_rendered", type=int, default=100, help="rollouts drawn in the HTML (default: 100)")
    parser.add_argument("--score_batch_size", type=int, default=4, help="sequences per log-prob forward pass")
    add_sas_options(parser, "a training recipe: its SAS settings (and max_completion_length) apply, as in training")
    args = parser.parse_args(argv)
    rule, recipe = sas_rule_from(args)  # exactly the rule `sas-trl train` would apply; checked before any model work
    check_labels_available(rule, args.benchmarks, args.prompt, args.samples)
    benchmarks = args.benchmarks
    args.benchmarks = benchmarks or "addition"  # parsed (and checked) by the shared options; used only when asked
    common = common_config(args, completion_budget(args.max_tokens, recipe, args.recipe))
    if not benchmarks:
        common["benchmarks"] = []

    from ..evaluation.inspection import PLOT_FILE, REPORT_FILE, RESULTS_FILE, SAMPLES_FILE, InspectConfig, run_inspect

    config = InspectConfig(
        **common,
        prompts=args.prompt,
        samples=args.samples,
        sas=rule,
        max_rendered=args.max_rendered,
        score_batch_size=args.score_batch_size,
    )
    out = config.resolved_output_dir()
    try:
        results = run_inspect(config)
    except KeyboardInterrupt:
        return interrupted("inspect", str(out / SAMPLES_FILE))
    print(results["terminal"])
    written = [out / REPORT_FILE, out / PLOT_FILE, out / RESULTS_FILE] + ([] if args.samples else [out / SAMPLES_FILE])
    print(f"sas-trl inspect: wrote {', '.join(map(str, written))}")
    return 0
