"""`sas-trl train --recipe FILE [--field value ...] [--dry_run]`: train from a recipe; flags override its values.

`--config FILE` (TRL's name) is the same as `--recipe FILE`; `--dry_run` checks and describes the run without
starting it (`training/dry_run.py`)."""

from __future__ import annotations

import dataclasses
import os
import subprocess

HELP = "train with SAS from a recipe (fields of SASConfig, ModelConfig and RunArguments; flags override)"
USAGE = "usage: sas-trl train --recipe FILE [--field value ...] [--dry_run]"
DRY_RUN_HELP = (
    "  --dry_run   check the recipe as on its target hardware (skipping this machine's CUDA checks) and print the\n"
    "              resolved settings, launch command, effective batch, disk and GPU memory estimates; nothing is\n"
    "              loaded or written\n"
    "  --config    the same as --recipe (TRL's name)"
)
NO_RECIPE = (
    "no recipe given: pass --recipe NAME or --recipe FILE (e.g. --recipe tiny_cpu on a CPU, --recipe deepscaler_4k "
    "on 8 GPUs; `sas-trl recipes` lists them), or at least --model_name_or_path"
)


def help_text() -> str:
    """`--help`: the SAS settings first, then the run settings, the model's, then TRL's and transformers'.

    Only the help is regrouped: `parse` still reads the same dataclasses in the same order.
    """
    from trl import TrlParser

    from ..training.arguments import RunArguments, dataclass_types

    run_types = dataclass_types()
    parser = TrlParser(run_types, allow_abbrev=False)
    run_fields = {f.name for f in dataclasses.fields(RunArguments)}
    model_fields = {f.name for f in dataclasses.fields(run_types[2])}
    sections: dict[str, list] = {
        "SAS settings (SASConfig's sas_* fields)": [],
        "run settings (data, rewards, launch: RunArguments)": [],
        "model settings (TRL's ModelConfig)": [],
        "training settings (TRL's GRPOConfig and transformers' TrainingArguments)": [],
    }
    titles = list(sections)
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if action.dest == "help":
            continue
        if isinstance(action.default, str) and not (action.default.isprintable() and action.default.strip()):
            action.help = f"{action.help} (default: %(default)r)"  # '\n\n', not a blank: shown escaped
        index = (
            0
            if action.dest.startswith("sas_")
            else 1
            if action.dest in run_fields
            else 2
            if action.dest in model_fields
            else 3
        )
        sections[titles[index]].append(action)
    formatter = parser._get_formatter()
    for title, actions in sections.items():
        formatter.start_section(title)
        formatter.add_arguments(actions)
        formatter.end_section()
    return f"{USAGE}\n\n{formatter.format_help()}\ncommand options:\n{DRY_RUN_HELP}\n"


def main(argv: list[str]) -> int:
    from ..errors import RecipeError
    from ..training.argv import RECIPE_FLAGS, flag_names, pop_switch
    from ..training.recipes import parse

    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    names = set(flag_names(argv))
    if not names & {*(flag[2:] for flag in RECIPE_FLAGS), "model_name_or_path"}:
        raise RecipeError(NO_RECIPE)
    shown, dry = pop_switch(list(argv), "dry_run")
    if dry:
        from ..training.dry_run import dry_run

        print(dry_run(shown), flush=True)
        return 0
    run_args, sas_args, model_args, recipe = parse(argv, this_machine=True)
    from pathlib import Path

    from ..evaluation.config import check_output_folder

    check_output_folder(Path(sas_args.output_dir), "output_dir")  # before the output folder is touched

    from ..training.launch import LAUNCHED_ENV, launch_command

    command = launch_command(run_args, argv)
    if command is not None:
        from ..training.run import preflight

        finished = preflight(run_args, sas_args, model_args, recipe)  # user errors here, not in N processes
        if finished is not None:
            print(f"sas-trl: {finished}", flush=True)
            return 0
        from ..redaction import redact_argv

        print(f"sas-trl: launching {' '.join(redact_argv(command))}", flush=True)
        return subprocess.call(command, env={**os.environ, LAUNCHED_ENV: "1"})

    from ..training.run import run

    run(run_args, sas_args, model_args, recipe)
    return 0
