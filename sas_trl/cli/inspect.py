"""`sas-trl inspect --model M (--prompt TEXT | --samples FILE | --benchmarks B)`: see what SAS would zero."""

from __future__ import annotations

import argparse
import dataclasses

from .eval_options import add_eval_options, common_config, interrupted

HELP = "render a model's rollouts as SAS sees them: steps, confidences, what it would zero (HTML + terminal)"


def main(argv: list[str]) -> int:
    from ..evaluation.inspection import SASSettings

    parser = argparse.ArgumentParser(prog="sas-trl inspect", description=HELP)
    add_eval_options(parser, "")
    parser.set_defaults(n=4, temperature=1.0, top_p=1.0)
    parser.add_argument("--prompt", action="append", default=[], help="a user message to sample from (repeatable)")
    parser.add_argument("--samples", help="read rollouts from a samples file (sas-trl eval's eval_samples.jsonl, ...)")
    parser.add_argument("--max_tokens", type=int, help="completion budget (default: the recipe's, else 1024)")
    parser.add_argument("--recipe", help="a training recipe: its sas_* settings (and max_completion_length) apply")
    parser.add_argument("--max_rendered", type=int, default=100, help="rollouts drawn in the HTML (default: 100)")
    parser.add_argument("--score_batch_size", type=int, default=4, help="sequences per log-prob forward pass")
    for f in dataclasses.fields(SASSettings):
        parser.add_argument(
            f"--{f.name}", type=float if f.name == "sas_ratio" else str, help=f"as in SASConfig ({f.default!r})"
        )
    args = parser.parse_args(argv)
    recipe = _recipe_values(args.recipe) if args.recipe else {}
    sas = {f.name: recipe[f.name] for f in dataclasses.fields(SASSettings) if f.name in recipe}
    sas.update(
        {f.name: getattr(args, f.name) for f in dataclasses.fields(SASSettings) if getattr(args, f.name) is not None}
    )
    if "sas_delimiter" in sas:  # a shell passes "\n\n" as backslash-n
        sas["sas_delimiter"] = sas["sas_delimiter"].encode().decode("unicode_escape")
    benchmarks = args.benchmarks
    args.benchmarks = benchmarks or "addition"  # parsed (and checked) by the shared options; used only when asked
    common = common_config(args)
    if not benchmarks:
        common["benchmarks"] = []

    from ..evaluation.inspection import PLOT_FILE, REPORT_FILE, RESULTS_FILE, SAMPLES_FILE, InspectConfig, run_inspect

    config = InspectConfig(
        **common,
        prompts=args.prompt,
        samples=args.samples,
        max_tokens=args.max_tokens or recipe.get("max_completion_length") or 1024,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        sas=SASSettings(**sas),
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


def _recipe_values(path: str) -> dict:
    from ..training.recipe_files import load_recipe  # includes `base:` recipes; a bad file is a RecipeError

    return load_recipe(path)
