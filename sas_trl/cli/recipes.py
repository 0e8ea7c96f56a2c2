"""`sas-trl recipes`: the recipes, studies and launch configs that ship with the package, each with its line."""

from __future__ import annotations

import argparse

HELP = "list the packaged recipes (sas-trl train --recipe NAME), studies and accelerate configs"


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
        ("studies (sas-trl compare --study recipes/NAME.yaml):", other_files("studies")),
        (
            "accelerate configs (accelerate_config: zero2, or recipes/accelerate/zero2.yaml; TRL's names too):",
            other_files("accelerate"),
        ),
    ]
    for index, (title, entries) in enumerate(sections):
        print(("\n" if index else "") + title)
        for name, description in entries:
            print(f"  {name:<{width}}{description}".rstrip())
    print(f"\nfolder: {PACKAGED} (copy a recipe to change it: sas-trl train --recipe my_copy.yaml)")
    return 0
