"""What a study's run folder was trained from: the study's record (`made_from.json`) and training's own
(`resolved_recipe.yaml`), checked before `sas-trl compare` resumes or adopts a run.

A run folder is the study's when `made_from.json` holds the run's resolved recipe as the study writes it now, and
training's saved recipe says the same; anything else (a base recipe edited since, `sas-trl train` run by hand into
the folder) is refused, naming the keys, before any work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..redaction import redact_recipe
from .runs import MADE_FROM, Run, read_made_from, write_made_from


def resolved_recipe(run: Run) -> dict[str, Any]:
    """The run's recipe with its `base:` chain resolved, as JSON would store it (what training reads)."""
    from ..training.recipe_files import load_recipe

    recipe = redact_recipe(load_recipe(run.recipe_file), by_value=False)  # made_from.json keeps no credential
    return json.loads(json.dumps(recipe, sort_keys=True, default=str))


def check_training_record(run: Run) -> None:
    """Refuse a run trained (fully or in part) from another resolved recipe, or by a process this study did not
    start (training output without the study's record: `sas-trl train` run by hand into the folder); record the
    recipe of a fresh run."""
    recipe = resolved_recipe(run)
    refuse_other_recipe(run, recipe)
    from ..training.output_dir import RESOLVED_RECIPE

    trained = _trained_recipe(run.dir / RESOLVED_RECIPE)  # training's own record: another process's differs
    if run.started() and trained is not None and _differing(trained, recipe):
        raise UserError(
            f"{run.dir} was trained from another recipe than this study's ({run.dir / RESOLVED_RECIPE}: keys that "
            f"differ: {', '.join(_differing(trained, recipe))}); delete that folder or choose another output_dir"
        )
    before = read_made_from(run.dir)
    if before is None or before.get("recipe") != recipe:
        write_made_from(run.dir, {"recipe": recipe})


def refuse_other_recipe(run: Run, recipe: dict[str, Any]) -> None:
    """Refuse a run folder whose training the study's record says came from another resolved recipe than
    `recipe` (the run's now), naming the keys, or whose training has no readable record. Nothing trained yet:
    nothing to refuse."""
    if not run.started():
        return
    before = read_made_from(run.dir)
    if before is None:
        raise UserError(
            f"{run.dir} holds training this study did not start (checkpoints or a final model, but no readable "
            f"{MADE_FROM}); delete that folder or choose another output_dir"
        )
    if before.get("recipe") != recipe:
        old = before.get("recipe") if isinstance(before.get("recipe"), dict) else {}
        raise UserError(
            f"{run.dir} was trained from another recipe (keys that differ: {', '.join(_differing(old, recipe))}; "
            "a base recipe changed?); delete that folder or choose another output_dir"
        )


# Passed by compare on every run's command line, so in the recipe training saves but not in the study's record:
# how the run continues, not one of its settings.
COMMAND_LINE_ONLY = ("resume_from_checkpoint",)


def _differing(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = old.keys() | new.keys()
    return sorted(k for k in keys if k not in COMMAND_LINE_ONLY and old.get(k) != new.get(k))


def _trained_recipe(path: Path) -> dict[str, Any] | None:
    """The resolved recipe `sas-trl train` saved (`path`), as `resolved_recipe` gives it; None when there is none
    (nothing trained yet) or it cannot be read (training's own resume check names it then)."""
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(saved, dict):
        return None
    return json.loads(json.dumps(redact_recipe(saved, by_value=False), sort_keys=True, default=str))
