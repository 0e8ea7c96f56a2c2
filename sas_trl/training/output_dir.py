"""The output folder's state: what its contents mean for a run, before anything is loaded.

A folder is new, in progress (checkpoints and `resolved_recipe.yaml`), or finished (`run_info.json`, written
last, after the model). Resuming a finished run is a no-op; resuming checks the checkpoint (falling back to the
newest intact one) and that the settings are the saved run's; a run in the folder is never trained over without
`overwrite_output_dir`. Whether two recipes differ is judged on their training settings: every field's effective
value, less the keys that only say where results are written, logged or uploaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import RecipeError
from ..output_files import write_text
from ..redaction import redact_value
from .arguments import RunArguments
from .checkpoints import TRAINER_STATE, checkpoint_folders, checkpoint_problem, optimizer_notes
from .recipe_files import dump_recipe, load_recipe
from .recipes import build

RUN_INFO = "run_info.json"  # written last, when a run has finished and saved its model
RESOLVED_RECIPE = "resolved_recipe.yaml"

# --------------------------------------------------------------------------------------------------
# resume_from_checkpoint: "off", "last" or a checkpoint folder
# --------------------------------------------------------------------------------------------------

RESUME_OFF = ("", "false", "none")  # spellings of "do not resume" (as is an unset value)
RESUME_LAST = ("last", "true")  # spellings of "the newest complete checkpoint in output_dir"


def resume_kind(value: str | None) -> Literal["off", "last", "path"]:
    """How a `resume_from_checkpoint` value reads, case-insensitively: "off" (unset or a `RESUME_OFF`
    spelling), "last" (a `RESUME_LAST` spelling) or "path" (anything else names a checkpoint folder)."""
    if value is None:
        return "off"
    spelling = str(value).lower()
    if spelling in RESUME_OFF:
        return "off"
    return "last" if spelling in RESUME_LAST else "path"


def resolve_resume(value: str | None, output_dir: Path, without_optimizer: bool = False) -> str | None:
    """The checkpoint to resume from (see `find_resume`), or None."""
    return find_resume(value, output_dir, without_optimizer)[0]


def find_resume(value: str | None, output_dir: Path, without_optimizer: bool = False) -> tuple[str | None, list[str]]:
    """The checkpoint a `resume_from_checkpoint` value names, and what to tell the user about it.

    `last`/`true`: the newest intact `checkpoint-N` in output_dir (None if there is none). A folder without
    `trainer_state.json` (written last: a save cut short) is skipped; a damaged one (unreadable trainer state,
    weights cut short, a torch file that is not a whole archive) is skipped with a message, and when every
    checkpoint is damaged the resume is refused, naming them. A folder named explicitly must be intact.
    A checkpoint without its optimizer state is refused, naming the file, unless `without_optimizer`: resuming
    it would silently restart the optimizer.
    """
    kind = resume_kind(value)
    if kind == "off":
        return None, []
    if kind == "path":
        problem = checkpoint_problem(Path(value))
        if problem is not None:
            raise RecipeError(f"resume_from_checkpoint: {value!r} is not a complete checkpoint folder: {problem}")
        return value, optimizer_notes(Path(value), without_optimizer)
    skipped, damaged = [], []
    for _, folder in sorted(checkpoint_folders(output_dir), reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            notes = optimizer_notes(folder, without_optimizer)
            if skipped:
                notes.insert(0, f"skipped {'; '.join(skipped)}; resuming from {folder}, the newest intact checkpoint")
            return str(folder), notes
        skipped.append(f"{folder.name} ({problem})")
        if (folder / TRAINER_STATE).is_file():
            damaged.append(f"{folder.name} ({problem})")
    if damaged:
        raise RecipeError(
            f"resume_from_checkpoint: no intact checkpoint in {output_dir}: {'; '.join(damaged)}. Move the damaged "
            "folders away to start over, or pass --overwrite_output_dir true without --resume_from_checkpoint"
        )
    return None, [f"skipped {'; '.join(skipped)}: no complete checkpoint, starting from step 0"] if skipped else []


# --------------------------------------------------------------------------------------------------
# The plan of a run: resume, finished runs, another recipe's run
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputPlan:
    """What `plan_output_dir` decided for this run."""

    resume: str | None  # the checkpoint to resume from
    finished: str | None = None  # set when the run asked to resume has already finished: nothing to do
    notes: tuple[str, ...] = ()  # what the main process prints before training (a damaged checkpoint skipped...)
    keep_recipe_as: str | None = None  # resuming under changed settings: the earlier resolved recipe's record name


# Resuming may change how long a run trains (raise max_steps to train a finished run further), nothing else.
RESUME_MAY_CHANGE = frozenset({"max_steps", "num_train_epochs"})


def plan_output_dir(
    run_args: RunArguments, args, model_args, recipe: dict[str, Any], main_process: bool
) -> OutputPlan:
    """Decide what the output folder's contents mean for this run, before anything is loaded.

    Resuming (`--resume_from_checkpoint last` or a folder):
    * the checkpoint must be intact (`find_resume`: `last` falls back to the newest intact one and says so);
    * the training settings must be the saved run's (less `RESUME_MAY_CHANGE`), else `RecipeError` naming the
      keys that differ, unless `--resume_with_changes true` (the earlier resolved recipe is then kept as a record,
      `resolved_recipe.until_step_N.yaml`, never over an earlier one: `record_name`);
    * a run that already reached its `max_steps`: nothing to do (transformers would train one more step).

    Not resuming, into a folder that holds a run (finished: `run_info.json`; unfinished: checkpoints):
    `RecipeError` naming the folder, the keys that differ (if any) and the flags that resume or overwrite,
    unless `--overwrite_output_dir true` (then that run's checkpoints and run_info.json are removed first, so a
    later resume cannot pick up the other recipe's checkpoints). A run is never silently trained over.

    A file or checkpoint folder in `output_dir` that is a symbolic link is refused first (`check_links`).
    """
    output_dir = Path(args.output_dir)
    check_links(output_dir)
    kind = resume_kind(args.resume_from_checkpoint)
    if kind != "off":
        resume, notes = find_resume(args.resume_from_checkpoint, output_dir, run_args.resume_without_optimizer)
        keep = None
        run_dir = Path(resume).parent if resume is not None else output_dir
        if resume is not None or (output_dir / RUN_INFO).is_file():
            differing = {
                k: v
                for k, v in recipe_changes(run_dir, run_args, args, model_args, recipe).items()
                if k not in RESUME_MAY_CHANGE
            }
            if differing and not run_args.resume_with_changes:
                raise RecipeError(
                    f"resume_from_checkpoint: {run_dir} was trained with other settings ({describe(differing)}); "
                    "pass --resume_with_changes true to continue it under the new ones, or another --output_dir "
                    "for a new run"
                )
            if differing:
                step = _read_json(Path(resume) / TRAINER_STATE) if resume else _read_json(output_dir / RUN_INFO)
                keep = record_name(output_dir, (step or {}).get("global_step", 0))
                # the record's name is printed when it is written (keep_earlier_recipe)
                notes.append(f"resuming under changed settings ({describe(differing)})")
        finished = finished_message(output_dir, resume, args.max_steps, latest=kind == "last")
        return OutputPlan(resume, finished, tuple(notes), keep if finished is None else None)

    finished = (output_dir / RUN_INFO).is_file()
    checkpoints = sorted(checkpoint_folders(output_dir))
    if not finished and not checkpoints:
        return OutputPlan(None)
    if run_args.overwrite_output_dir:
        if main_process:
            remove_previous_run(output_dir)
        return OutputPlan(None)
    differing = recipe_changes(output_dir, run_args, args, model_args, recipe)
    what = "a finished run" if finished else f"an unfinished run (saved up to {checkpoints[-1][1].name})"
    if differing:
        raise RecipeError(
            f"output_dir {str(output_dir)!r} holds {what} of a different recipe ({describe(differing)}); pass "
            "another --output_dir, --resume_from_checkpoint last to continue it, or --overwrite_output_dir true "
            "to replace it"
        )
    if finished:
        raise RecipeError(
            f"output_dir {str(output_dir)!r} holds a finished run of this same recipe: nothing to train. Pass "
            "--resume_from_checkpoint last with a higher --max_steps to train it further, --overwrite_output_dir "
            "true to train it again from step 0, or another --output_dir"
        )
    raise RecipeError(
        f"output_dir {str(output_dir)!r} holds {what} of this same recipe; pass --resume_from_checkpoint last to "
        "continue it, or --overwrite_output_dir true to start it again from step 0"
    )


def check_links(output_dir: Path) -> None:
    """Refuse a file or `checkpoint-*` folder in `output_dir` that is a symbolic link, before anything is written:
    transformers saves the model and checkpoints there through whatever link it finds, so what a run writes could
    land outside the folder (a linked sub-folder such as TensorBoard's `runs` is the user's to make)."""
    if not output_dir.is_dir():
        return
    links = sorted(
        entry
        for entry in output_dir.iterdir()
        if entry.is_symlink() and (not entry.is_dir() or entry.name.startswith("checkpoint-"))
    )
    if links:
        shown = "; ".join(f"{p.name} -> {os.readlink(p)}" for p in links[:5])
        more = f" and {len(links) - 5} more" if len(links) > 5 else ""
        raise RecipeError(
            f"output_dir {str(output_dir)!r} holds symbolic links ({shown}{more}); a run writes its files there and "
            "would write through them, out of the folder: replace each link by a copy of its file, or pass another "
            "--output_dir"
        )


def describe(differing: dict[str, tuple[Any, Any]], limit: int = 8) -> str:
    """`key: old -> new; ...` for the first `limit` differing keys."""
    shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(differing.items())[:limit])
    return shown + (f"; and {len(differing) - limit} more" if len(differing) > limit else "")


def record_name(output_dir: Path, step: int) -> str:
    """The name of the record of the resolved recipe that trained up to `step`: `resolved_recipe.until_step_N.yaml`,
    or, when a resume from step N was itself cut short and is resumed again with changes, the first free
    `resolved_recipe.until_step_N.K.yaml` (K = 2, 3, ...): every record is kept, in the order they were made."""
    name, count = f"resolved_recipe.until_step_{step}.yaml", 1
    while os.path.lexists(output_dir / name):
        count += 1
        name = f"resolved_recipe.until_step_{step}.{count}.yaml"
    return name


def keep_earlier_recipe(output_dir: Path, plan: OutputPlan) -> str | None:
    """Resuming under changed settings: rename the earlier `resolved_recipe.yaml` to its record name before the
    new one is saved (a name taken since the plan was made is never overwritten); returns the record's name."""
    saved = output_dir / RESOLVED_RECIPE
    if plan.keep_recipe_as is None or not os.path.lexists(saved):
        return None
    name = plan.keep_recipe_as
    if os.path.lexists(output_dir / name):
        name = record_name(output_dir, int(name.split("until_step_")[1].split(".")[0]))
    saved.rename(output_dir / name)  # a link is renamed itself, never written through
    print(f"sas-trl: the earlier resolved recipe is kept as {output_dir / name}", flush=True)
    return name


def finished_message(output_dir: Path, checkpoint: str | None, max_steps: int, latest: bool = True) -> str | None:
    """The "nothing to do" message when the run to resume has reached its target step, else None.

    `latest`: resuming "the last checkpoint" (`last`/`true`), when a finished run's final save (run_info.json)
    also counts; a checkpoint folder named explicitly is judged by its own step alone.
    """
    step, target = None, None
    if checkpoint is not None:
        state = _read_json(Path(checkpoint) / TRAINER_STATE) or {}
        step, target = state.get("global_step", 0), state.get("max_steps")
    info = _read_json(output_dir / RUN_INFO) if latest else None
    if info is not None and (step is None or info.get("global_step", 0) >= step):
        step = info.get("global_step", 0)
        target = target if target is not None else step
    if step is None:
        return None
    target = max_steps if max_steps > 0 else target  # -1: the epochs' step count the run itself computed
    if target is None or step < target:
        return None
    saved = (
        f"its model is in {output_dir}"
        if info is not None
        else f"its final model is not in {output_dir}; the weights are in {checkpoint}"
    )
    return (
        f"{output_dir} is a finished run (step {step} of max_steps {target}): nothing to resume, nothing changed; "
        f"{saved}. To train further, raise --max_steps."
    )


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def recipe_changes(output_dir: Path, run_args, args, model_args, recipe: dict[str, Any]) -> dict:
    """Training settings that differ between the run saved in `output_dir` (its resolved recipe) and this one."""
    saved = output_dir / RESOLVED_RECIPE
    before = saved_training_settings(saved) if saved.is_file() else None
    if before is None:
        return {RESOLVED_RECIPE: ("missing or unreadable", "this run's recipe")}
    now = {**training_settings(run_args, args, model_args), "env": recipe.get("env", {})}
    # The saved recipe holds its credentials `<redacted>` (a token in model_init_kwargs, say): compare likewise.
    return differing_settings(redact_value(before, by_value=False), redact_value(now, by_value=False))


def remove_previous_run(output_dir: Path) -> None:
    """Remove an earlier run's checkpoints and run_info.json (`--overwrite_output_dir true`).

    Nothing outside `output_dir` is removed through a symbolic link: a link among them is removed itself (its
    target stays), and `shutil.rmtree` removes links inside a checkpoint folder without following them. A file
    that cannot be removed is a `RecipeError` naming it, saying what was removed already.
    """
    import shutil

    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    found = sorted(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"))
    info = output_dir / RUN_INFO
    if info.is_symlink() or info.is_file():
        found.append(info)
    removed: list[str] = []
    for path in found:
        link = path.is_symlink()
        try:
            if link or not path.is_dir():
                path.unlink()  # a link: the link alone, never its target
            else:
                shutil.rmtree(path)
        except OSError as err:
            done = f" (removed so far: {', '.join(removed)})" if removed else ""
            raise RecipeError(
                f"--overwrite_output_dir: cannot remove {path} ({err.strerror or err}){done}; remove it yourself "
                "or pass another --output_dir"
            ) from err
        removed.append(f"{path.name} (a symbolic link: the link alone, its target kept)" if link else path.name)
    if removed:
        names = ", ".join(removed)
        print(f"sas-trl: --overwrite_output_dir: removed the earlier run's {names} from {output_dir}", flush=True)


def save_recipe(recipe: dict[str, Any], output_dir: Path, state) -> None:
    """Print the resolved recipe and save it as `resolved_recipe.yaml` (itself a valid recipe)."""
    if state.is_main_process:
        write_text(output_dir, RESOLVED_RECIPE, dump_recipe(recipe))  # a link there is replaced, not written through
        print(f"sas-trl: recipe resolved ({state.num_processes} process(es)):\n{dump_recipe(recipe)}", flush=True)


def write_run_info(output_dir: Path, trainer, state, model_id: str, seconds: float) -> dict[str, Any]:
    """Write `log_history.json`, then `run_info.json` (which marks the run finished); returns the run info."""
    info = {
        "num_processes": state.num_processes,
        "distributed_type": str(state.distributed_type),
        "global_step": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "model": model_id,
    }
    # Every logged training metric, for reports over runs (`sas-trl compare`); run_info.json is written last.
    write_text(output_dir, "log_history.json", json.dumps(trainer.state.log_history))
    write_text(output_dir, RUN_INFO, json.dumps(info, indent=2))
    return info


# --------------------------------------------------------------------------------------------------
# Training settings: what makes two runs the same run
# --------------------------------------------------------------------------------------------------

# Keys that change neither what is trained nor how: where it is written, logged or uploaded.
NOT_TRAINING_SETTINGS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "resume_with_changes",
        "resume_without_optimizer",
        "reward_timeout",
        "run_name",
        "logging_dir",
        "logging_steps",
        "logging_strategy",
        "logging_first_step",
        "logging_nan_inf_filter",
        "log_level",
        "log_level_replica",
        "log_on_each_node",
        "log_completions",
        "num_completions_to_print",
        "report_to",
        "disable_tqdm",
        "push_to_hub",
        "hub_model_id",
        "hub_token",
        "hub_private_repo",
        "hub_strategy",
        "hub_always_push",
        "hub_revision",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "save_only_model",
        "wandb_log_unique_prompts",
    }
)


def training_settings(run_args: RunArguments, sas_args, model_args) -> dict[str, Any]:
    """Every field's effective value (enums as their values), less `NOT_TRAINING_SETTINGS`."""
    values: dict[str, Any] = {}
    for obj in (run_args, sas_args, model_args):
        for f in dataclasses.fields(obj):
            if f.init and f.name not in values and f.name not in NOT_TRAINING_SETTINGS:
                value = getattr(obj, f.name, None)
                values[f.name] = getattr(value, "value", value)
    return values


def saved_training_settings(path: str | os.PathLike) -> dict[str, Any] | None:
    """`training_settings` of a saved resolved recipe, or None when it cannot be read or built any more."""
    try:
        recipe = load_recipe(path)
        settings = training_settings(*build(recipe, []))
    except Exception:  # noqa: BLE001 - an older or hand-edited file: treated as "cannot compare"
        return None
    settings["env"] = recipe.get("env", {})
    return settings


def differing_settings(before: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (before, now) for every key whose value differs."""
    return {k: (before.get(k), now.get(k)) for k in sorted(before.keys() | now.keys()) if before.get(k) != now.get(k)}
