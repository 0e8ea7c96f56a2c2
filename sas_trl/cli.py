"""The `sas-trl` command line.

sas-trl train --recipe recipes/deepscaler_4k.yaml [--any_field value ...]
sas-trl push --output_dir DIR --hub_model_id NAME
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

    from .hub import check_hub_access, upload

    repo_id = check_hub_access(args.hub_model_id, private=args.hub_private_repo or None)
    print(f"sas-trl: pushed to {upload(args.output_dir, repo_id, private=args.hub_private_repo or None)}")
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
        return {"train": train, "push": push}[command](rest)
    except RecipeError as err:
        print(f"sas-trl {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sas-trl {command}: interrupted; checkpoints saved so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
