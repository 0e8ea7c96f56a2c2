"""`sas-trl train --recipe FILE [--field value ...]`: train from a recipe; flags override its values."""

from __future__ import annotations

import os
import subprocess

HELP = "train with SAS from a recipe (fields of SASConfig, ModelConfig and RunArguments; flags override)"


def main(argv: list[str]) -> int:
    from ..training.arguments import dataclass_types
    from ..training.recipes import parse

    if "-h" in argv or "--help" in argv:
        from trl import TrlParser

        print("usage: sas-trl train --recipe FILE [--field value ...]\n")
        print(TrlParser(dataclass_types()).format_help().split("\n", 2)[-1])
        return 0
    run_args, sas_args, model_args, recipe = parse(argv)

    from ..training.launch import LAUNCHED_ENV, launch_command

    command = launch_command(run_args, argv)
    if command is not None:
        from ..training.run import preflight

        finished = preflight(run_args, sas_args, model_args, recipe)  # user errors here, not in N processes
        if finished is not None:
            print(f"sas-trl: {finished}", flush=True)
            return 0
        print(f"sas-trl: launching {' '.join(command)}", flush=True)
        return subprocess.call(command, env={**os.environ, LAUNCHED_ENV: "1"})

    from ..training.run import run

    run(run_args, sas_args, model_args, recipe)
    return 0
