"""A study's finished runs' results kept in the repository (`results_dir`), so that a study can span sittings.

`output_dir` (models, checkpoints, samples) stays out of git; `results_dir` keeps, for each finished run, only
what the report reads, in the run folder's own layout:

    RESULTS/CONDITION/seedN/made_from.json           the resolved recipe (paths in the study folder as $OUTPUT_DIR/...)
    RESULTS/CONDITION/seedN/log_history.json         every logged training metric (curves, learning signal, labels)
    RESULTS/CONDITION/seedN/eval/                    eval_results.json, made_from.json (options, model, baseline)
    RESULTS/CONDITION/seedN/trajectory/              settings.json, step-N/eval_results.json
    RESULTS/_base/                                   the starting model's evaluation (and trajectory/: step 0)

No model, checkpoint or samples file; every file's text passes `redaction.redact_text` before it is written (the
recipe is redacted by name already). A run whose kept results are complete and which `output_dir` has not
evaluated is not trained again: its kept recipe must be the study's now (else it is refused, naming the keys),
and a kept evaluation made with other eval options is said and marked in the report (its model is not kept, so
it cannot be evaluated again without training it again). The report reads each run from `output_dir` when that
holds its evaluation, else from `results_dir`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..output_files import check_folder, write_text
from ..redaction import redact_text
from . import evaluated
from .runs import EVAL_RESULTS, MADE_FROM, Run, base_eval_dir, read_made_from
from .study import Study
from .trajectory import SETTINGS, refuse_other_settings
from .trajectory import base_dir as trajectory_base_dir

BASE = "_base"  # not a condition's name: those start with a letter or digit
LOG_HISTORY = "log_history.json"
OUTPUT_DIR = "$OUTPUT_DIR"  # the study folder, in a kept recipe: a fresh clone puts it elsewhere


def run_dir(study: Study, run: Run) -> Path:
    return Path(study.results_dir) / run.condition / f"seed{run.seed}"


def base_dir(study: Study) -> Path:
    return Path(study.results_dir) / BASE


def run_files(study: Study, run: Run) -> list[str]:
    """The files, relative to the run's folder, that make its kept results complete."""
    files = [MADE_FROM, LOG_HISTORY, f"eval/{EVAL_RESULTS}", f"eval/{MADE_FROM}"]
    if study.trajectory is not None:
        files.append(f"trajectory/{SETTINGS}")
        files += [f"trajectory/step-{s}/{EVAL_RESULTS}" for s in study.trajectory.steps[run.condition]]
    return files


def base_files(study: Study) -> list[str]:
    """The starting model's files, relative to its evaluation folder (`base_eval`)."""
    files = [EVAL_RESULTS, MADE_FROM]
    if study.trajectory is not None:
        files += [f"trajectory/{EVAL_RESULTS}", f"trajectory/{SETTINGS}"]
    return files


def complete(study: Study, run: Run) -> bool:
    """Whether `results_dir` holds every file of the run's results."""
    if study.results_dir is None:
        return False
    folder = run_dir(study, run)
    return all((folder / name).is_file() for name in run_files(study, run))


def kept_only(study: Study, run: Run) -> bool:
    """The run's results are kept and `output_dir` has not evaluated it: it is read from `results_dir` and never
    trained again."""
    return not run.evaluated() and complete(study, run)


def base_kept(study: Study) -> bool:
    if study.results_dir is None:
        return False
    return all((base_dir(study) / name).is_file() for name in base_files(study))


def base_available(study: Study) -> bool:
    """The starting model's results exist, in the study folder or kept."""
    here = all((base_eval_dir(study) / name).is_file() for name in base_files(study))
    return here or base_kept(study)


# --------------------------------------------------------------------------------------------------
# Where the report reads
# --------------------------------------------------------------------------------------------------


def source(study: Study, run: Run) -> Run:
    """The run as the report reads it: its study folder when that holds its evaluation, else its kept results
    when they are complete, else its study folder (nothing there yet)."""
    return Run(run.condition, run.seed, run_dir(study, run)) if kept_only(study, run) else run


def base_source(study: Study) -> Path:
    """The starting model's evaluation folder the report reads (its `trajectory/` holds step 0)."""
    here = base_eval_dir(study)
    if (here / EVAL_RESULTS).is_file() or not base_kept(study):
        return here
    return base_dir(study)


def trajectory_base_source(study: Study) -> Path:
    here = trajectory_base_dir(study)
    if (here / EVAL_RESULTS).is_file() or not base_kept(study):
        return here
    return base_dir(study) / "trajectory"


# --------------------------------------------------------------------------------------------------
# Keeping
# --------------------------------------------------------------------------------------------------


def portable(value: Any, root: str) -> Any:
    """`value` with every text that is a path in the study folder `root` written as `$OUTPUT_DIR/...`."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + os.sep)):
        return OUTPUT_DIR + value[len(root) :]
    return value


def recipe_text(study: Study, recipe: Any) -> str:
    """A run's `made_from.json` as kept: its resolved recipe (already redacted by name) with the study folder's
    paths portable, and any known credential redacted by value."""
    record = {"recipe": portable(recipe, str(study.output_dir.resolve()))}
    return redact_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def _copy(source_dir: Path, dest_dir: Path, names: list[str]) -> None:
    for name in names:
        path = source_dir / name
        if path.is_file():
            _write(dest_dir, name, redact_text(path.read_text(encoding="utf-8")))


def _write(folder: Path, name: str, text: str) -> None:
    """Write unless the kept file already says the same (a re-run leaves git's view of it alone)."""
    path = folder / name
    if path.is_file() and not path.is_symlink() and path.read_text(encoding="utf-8") == text:
        return
    write_text(folder, name, text)


def check_folders(study: Study, runs: list[Run]) -> None:
    """No folder the runs' kept results go into may be a symbolic link below `results_dir` (refused before any
    work, naming the link: what is kept would land outside it)."""
    if study.results_dir is None:
        return
    root = Path(study.results_dir)
    for folder in [base_dir(study), *(run_dir(study, run) for run in runs)]:
        for name in ("eval", "trajectory"):
            check_folder(root, folder / name)


def keep_run(study: Study, run: Run) -> None:
    """Copy a finished run's results (never its model or checkpoints) into `results_dir`."""
    if study.results_dir is None:
        return
    dest = run_dir(study, run)
    record = read_made_from(run.dir)
    if record is None or "recipe" not in record:
        raise UserError(f"{run.dir / MADE_FROM} is missing or damaged; cannot keep {run.name}'s results")
    names = run_files(study, run)[1:]
    if study.trajectory is not None:  # the step evaluations' own records, where there are any
        names += [f"trajectory/step-{s}/{MADE_FROM}" for s in study.trajectory.steps[run.condition]]
    _copy(run.dir, dest, names)
    _write(dest, MADE_FROM, recipe_text(study, record["recipe"]))  # last: it marks the kept results complete


def keep_base(study: Study) -> None:
    """Copy the starting model's evaluation (and step 0 of the trajectory) into `results_dir/_base`."""
    if study.results_dir is None:
        return
    names = base_files(study) + ([f"trajectory/{MADE_FROM}"] if study.trajectory is not None else [])
    _copy(base_eval_dir(study), base_dir(study), names)


def check_starting_model(study: Study, model: str) -> None:
    """Refuse a starting model that differs from the one the kept runs started from (a fresh machine whose warm-up
    came out otherwise, or an edited base model): new runs would be mixed with runs of another model."""
    from ..evaluation.backends import model_fingerprint

    record = read_made_from(base_dir(study)) if base_kept(study) else None
    then = record.get("model") if record is not None else None
    now = model_fingerprint(model)
    if then is not None and now is not None and then != now:
        raise UserError(
            f"the starting model {model} ({now}) is not the one the runs kept in {study.results_dir} started from "
            f"({then}); new runs would not be comparable with them. Use the same starting model, or keep the "
            "results of this one elsewhere (another results_dir)"
        )


# --------------------------------------------------------------------------------------------------
# What a kept run was made from
# --------------------------------------------------------------------------------------------------


def check_recipe(study: Study, run: Run, recipe_now: dict[str, Any]) -> None:
    """Refuse kept results trained from another resolved recipe than the run's now, naming the keys; and kept
    trajectory evaluations made with other settings."""
    folder = run_dir(study, run)
    before = read_made_from(folder)
    old = before.get("recipe") if before is not None else None
    if not isinstance(old, dict):  # damaged or not ours: no recipe to compare with
        raise UserError(
            f"{folder / MADE_FROM} is not a readable record of {run.name}'s recipe; delete that folder to train the "
            "run again"
        )
    now = json.loads(recipe_text(study, recipe_now))["recipe"]
    if old != now:
        keys = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
        raise UserError(
            f"{folder} holds {run.name}'s results trained from another recipe (keys that differ: {', '.join(keys)}; "
            "a base recipe changed?); delete that folder to train the run again"
        )
    refuse_other_settings(study, folder / "trajectory")


def option_changes(study: Study, run: Run) -> dict[str, tuple[str, str]]:
    """The eval options that differ between the kept evaluation and the study's now ({flag: (then, now)})."""
    record = read_made_from(run_dir(study, run) / "eval")
    return evaluated.option_changes(record.get("eval") if record else None, study.eval_argv())


def kept_message(study: Study, run: Run) -> str:
    """What `sas-trl compare` says of a run it skips because its results are kept."""
    text = f"kept in {run_dir(study, run)}, skipped"
    changes = option_changes(study, run)
    if changes:
        said = "; ".join(f"{key}: {then} -> {now}" for key, (then, now) in changes.items())
        text += (
            f"; its evaluation was made with other eval options ({said}) and its model is not kept: the report "
            "marks it; delete that folder to train and evaluate the run again"
        )
    return text
