"""The `sas-trl` command line: one module per command, each a thin argparse layer over the library.

sas-trl train --recipe recipes/deepscaler_4k.yaml [--any_field value ...]   (or --recipe deepscaler_4k)
sas-trl recipes
sas-trl push --output_dir DIR --hub_model_id NAME
sas-trl eval --model PATH_OR_HUB_ID [--benchmarks aime24,aime25,amc,math500,olympiad_bench] [--baseline RESULTS.json]
sas-trl analyze-truncation --model PATH_OR_HUB_ID --benchmarks math500 [--long_tokens 8192 --short_tokens 4096]
sas-trl compare --study STUDY.yaml [--print_commands | --report_only]
sas-trl verl-data [--output_dir ~/data/deepscaler] [--train_source FILE_OR_HUB_ID] [--benchmarks aime24]
sas-trl inspect --model PATH_OR_HUB_ID (--prompt TEXT | --samples FILE | --benchmarks NAMES) [--recipe R] [--sas_* ...]
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import UserError

# command -> module of this package; each module has HELP and main(argv) -> exit code.
COMMANDS = {
    "train": "train",
    "push": "push",
    "eval": "eval",
    "analyze-truncation": "analyze_truncation",
    "compare": "compare",
    "inspect": "inspect",
    "recipes": "recipes",
    "verl-data": "verl_data",
}


def command_module(name: str):
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sas-trl",
        description="Step-level Advantage Selection (SAS) for GRPO post-training on Hugging Face TRL.",
        epilog="Run `sas-trl COMMAND --help` for a command's options.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"sas-trl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub.add_parser(name, help=command_module(name).HELP, add_help=False, allow_abbrev=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        args = parser.parse_args(argv)  # --help, --version, or an unknown command (argparse explains)
        parser.print_help()
        return 0 if args.command is None and not argv else 2
    command, rest = argv[0], argv[1:]
    try:
        return command_module(command).main(rest)
    except UserError as err:
        from ..redaction import redact_text

        print(f"sas-trl {command}: error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sas-trl {command}: interrupted; checkpoints saved so far are kept", file=sys.stderr)
        return 130
