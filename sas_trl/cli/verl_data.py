"""`sas-trl verl-data`: the parquet files recipes/verl reads (DeepScaleR's problems, AIME), from the Hub or files."""

from __future__ import annotations

import argparse

from ..constants import DEEPSCALER_ID

HELP = "write verl's parquet files for recipes/verl (DeepScaleR training problems, AIME) from the Hub or local files"
DEFAULT_DIR = "~/data/deepscaler"  # where recipes/verl's data.train_files and data.val_files point


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl verl-data", description=HELP, allow_abbrev=False)
    parser.add_argument(
        "--output_dir", default=DEFAULT_DIR, help="folder for train.parquet and NAME.parquet (default: %(default)s)"
    )
    parser.add_argument(
        "--train_source",
        default=DEEPSCALER_ID,
        help="Hub dataset or local .jsonl/.json/.parquet file with problem and answer columns; 'none' writes no "
        "train.parquet (default: %(default)s)",
    )
    parser.add_argument("--train_split", default="train", help="the Hub dataset's split (default: %(default)s)")
    parser.add_argument(
        "--benchmarks",
        default="aime24",
        help="comma-separated free-form benchmarks, one NAME.parquet each; '' for none (default: %(default)s)",
    )
    parser.add_argument(
        "--source", action="append", metavar="NAME=PATH", help="read a benchmark from a local file (repeatable)"
    )
    parser.add_argument("--data_dir", help="a folder of NAME.jsonl (or .json, .parquet) files, used when present")
    parser.add_argument("--limit", type=int, help="only the first N rows of each set")
    parser.add_argument("--overwrite", action="store_true", help="replace files that exist")
    args = parser.parse_args(argv)

    from ..errors import UserError
    from ..evaluation.datasets import parse_names, parse_sources
    from ..integrations.verl_data import plan, write

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    benchmarks = parse_names(args.benchmarks) if args.benchmarks.strip() else []
    train_source = None if args.train_source.strip().lower() == "none" else args.train_source
    files = plan(
        args.output_dir,
        train_source,
        benchmarks,
        train_split=args.train_split,
        sources=parse_sources(args.source),
        data_dir=args.data_dir,
        limit=args.limit,
        overwrite=args.overwrite,
    )
    write(files)
    for file in files:
        print(f"sas-trl: wrote {file.path} ({len(file.rows)} rows)")
    return 0
