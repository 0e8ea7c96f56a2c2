"""`sas-trl recipes`: the recipes, studies and launch configs that ship with the package, each with its line."""

from __future__ import annotations

import argparse
import shutil
import textwrap

HELP = "list the packaged recipes (sas-trl train --recipe NAME), studies, accelerate and verl configs"


def main(argv: list[str]) -> int:
    from .. import __version__
    from ..training.packaged import PACKAGED, other_files, packaged_folder_or_file, training_recipes

    parser = argparse.ArgumentParser(prog="sas-trl recipes", description=HELP, allow_abbrev=False)
    parser.add_argument(
        "--path",
        metavar="NAME",
        help="print only the packaged file or folder NAME's absolute path (relative to the recipes folder, e.g. "
        "verl for verl's --config-path), and exit",
    )
    args = parser.parse_args(argv)
    if args.path is not None:
        print(packaged_folder_or_file(args.path))
        return 0
    recipes = training_recipes()
    width = max(len(name) for name, _ in recipes) + 2
    sections = [
        (
            f"recipes in sas-trl {__version__} (sas-trl train --recipe NAME; a local file of that path wins):",
            recipes,
        ),
        (
            "studies (sas-trl compare --study recipes/NAME.yaml; each trains from its studies/*_base recipe):",
            other_files("studies"),
        ),
        (
            "accelerate configs (accelerate_config: zero2, or recipes/accelerate/zero2.yaml; TRL's names too):",
            other_files("accelerate"),
        ),
        (
            "verl configs (docs/verl.md: python -m verl.trainer.main_ppo --config-path=FOLDER/verl "
            "--config-name=deepscaler_4k_sas):",
            other_files("verl"),
        ),
    ]
    columns = max(80, shutil.get_terminal_size((120, 24)).columns)
    for index, (title, entries) in enumerate(sections):
        print(("\n" if index else "") + title)
        for name, description in entries:
            # Whole sentences, wrapped under the description column.
            lines = textwrap.wrap(description, max(40, columns - width - 2), break_on_hyphens=False) or [""]
            print(f"  {name:<{width}}{lines[0]}".rstrip())
            for line in lines[1:]:
                print(" " * (width + 2) + line)
    print(f"\nfolder: {PACKAGED} (copy a recipe to change it: sas-trl train --recipe my_copy.yaml)")
    return 0
