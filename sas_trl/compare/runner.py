"""Running a study: one shared starting model, then every (condition, seed) trained and evaluated, in turn or
`--jobs N` at once (`jobs.py`), and with a trajectory each run's checkpoints evaluated too (`trajectory.py`).

Every run goes through the same commands a user types, `sas-trl train --recipe RUN/study_recipe.yaml` and
`sas-trl eval`, each in its own process (so a run's launch settings, several processes or an accelerate
config, work as they do alone). What finished is skipped on a re-run; an interrupted training resumes from
its last complete checkpoint (`--resume_from_checkpoint last`), an interrupted evaluation from its samples
file. `--print_commands` prints the same commands for a cluster scheduler instead.

Nothing stale is reused: each run records what it was made from (`made_from.json`: the resolved recipe; in its
eval folder the eval options, the model's fingerprint and the baseline's). A trained run whose resolved recipe
changed (a `base:` file edited) is refused, naming the keys; an evaluation whose options, model or baseline
changed is run again, with a message. One process at a time works in a study folder (`study_lock`), and its
lock lasts as long as any training or evaluation it started (`children.py`: stopped with it on SIGTERM).
With `results_dir`, each finished run's results are kept in the repository, and a run whose kept results are
complete is not run again (`kept.py`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ..constants import BUILTIN_MODEL
from ..errors import UserError
from ..output_files import check_folder, for_append, write_text
from ..redaction import redact_argv
from . import children, kept, trajectory
from . import jobs as parallel
from .records import check_training_record, refuse_other_recipe, resolved_recipe
from .runs import EVAL_RESULTS, Run, base_eval_dir, plan_runs, read_made_from, write_made_from
from .study import Study, own_environment, preflight_conditions, run_recipe

LOCK_FILE = ".compare.lock"


def base_recipe_values(study: Study) -> dict:
    from ..training.recipe_files import load_recipe

    return load_recipe(study.base_recipe)


def starting_model(study: Study) -> tuple[str, bool]:
    """The model every run starts from, and whether the study builds it (the built-in model, warmed up once)."""
    model = base_recipe_values(study).get("model_name_or_path", BUILTIN_MODEL)
    if model == BUILTIN_MODEL:
        return str(study.output_dir.resolve() / "base_model"), True
    return model, False


def job_envs(study: Study, jobs: int) -> list[dict[str, str]]:
    """Each job's share of the machine: CPU threads when every condition trains on the CPU (`use_cpu`), even on a
    GPU machine; else its own GPU(s)."""
    runs = study.run_count
    if jobs > runs:  # more slots than runs is never used (and a huge N would be built as a list of N slots)
        raise UserError(f"--jobs {jobs} is more than the study's {runs} runs; pass --jobs {runs} or fewer")
    base = base_recipe_values(study)
    cpu_only = all({**base, **overrides}.get("use_cpu", False) for overrides in study.conditions.values())
    return parallel.job_envs(jobs, gpus=[] if cpu_only else None)


def recipe_env(recipe_file: Path) -> dict[str, str]:
    """A recipe's `env:` (its `base:` chain merged), set for that run's own processes only: never in the compare
    process, where it would reach every later condition."""
    from ..training.recipe_files import load_recipe

    return {str(k): str(v) for k, v in load_recipe(recipe_file).get("env", {}).items()}


def with_env(env: dict[str, str] | None, extra: dict[str, str]) -> dict[str, str] | None:
    """A child's environment: `env` (None: this process's) with `extra` on top; None when nothing changes."""
    return {**(os.environ if env is None else env), **extra} if extra else env


def check_study_folders(study: Study, runs: list[Run]) -> None:
    """No folder the study's commands write into (runs, their evaluations and trajectories, the starting model's)
    may be a symbolic link below the study folder: what they write would land outside it."""
    root = study.output_dir.resolve()
    folders = [root / "base_model", base_eval_dir(study), trajectory.base_dir(study)]
    for run in runs:
        steps = study.trajectory.steps.get(run.condition, ()) if study.trajectory is not None else ()
        folders += [run.eval_dir, *(trajectory.step_dir(run, step) for step in steps)]
    for folder in folders:
        check_folder(root, folder)


def write_run_recipe(study: Study, run: Run) -> None:
    """RUN/study_recipe.yaml; a run made with another recipe (the study file changed) is refused, not mixed in."""
    model, built = starting_model(study)
    recipe = run_recipe(study, run.condition, run.seed, run.dir, model if built else None)
    text = yaml.safe_dump(recipe, sort_keys=False)
    if run.recipe_file.is_file() and run.recipe_file.read_text() != text:
        raise UserError(
            f"{run.dir} was made with a different recipe (the study file changed); delete that folder or "
            "choose another output_dir"
        )
    write_text(run.dir, run.recipe_file.name, text)


def commands(study: Study, run: Run, program: list[str]) -> tuple[list[str], list[str]]:
    """The train and eval command lines of one run."""
    train = [*program, "train", "--recipe", str(run.recipe_file), "--resume_from_checkpoint", "last"]
    evaluate = [
        *program,
        "eval",
        "--model",
        str(run.dir),
        "--output_dir",
        str(run.eval_dir),
        "--baseline",
        str(base_eval_dir(study) / EVAL_RESULTS),
        *study.eval_argv(),
    ]
    return train, evaluate


def base_eval_command(study: Study, program: list[str]) -> list[str]:
    model, _ = starting_model(study)
    return [*program, "eval", "--model", model, "--output_dir", str(base_eval_dir(study)), *study.eval_argv()]


# --------------------------------------------------------------------------------------------------
# What each run was made from
# --------------------------------------------------------------------------------------------------


def planned_recipe(study: Study, run: Run) -> dict[str, Any]:
    """`resolved_recipe` of the run's recipe now, without writing into its folder (a run whose results are kept
    gets no folder in the study folder)."""
    model, built = starting_model(study)
    recipe = run_recipe(study, run.condition, run.seed, run.dir, model if built else None)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Run(run.condition, run.seed, Path(tmp))
        probe.recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return resolved_recipe(probe)


def kept_runs(study: Study, runs: list[Run]) -> list[Run]:
    """The runs read from `results_dir` and not run (`kept.kept_only`), each checked against the study's recipe
    now (a stale one refused, naming the keys) before any work."""
    found = [run for run in runs if kept.kept_only(study, run)]
    for run in found:
        kept.check_recipe(study, run, planned_recipe(study, run))
    return found


def check_reported_runs(study: Study, runs: list[Run]) -> None:
    """Refuse, before the report reads any, a run trained from another recipe than its own now (the study file or
    a base recipe edited since, then `--report_only`), naming the folder and the keys: kept results as `kept_runs`
    checks them, a study folder's evaluated run by its record (one not evaluated stays out of the tables). A stale
    run's numbers are never reported under the study's settings."""
    read_from_kept = kept_runs(study, runs)
    for run in runs:
        if run not in read_from_kept and run.evaluated():
            refuse_other_recipe(run, planned_recipe(study, run))


def file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def eval_record(study: Study, model: str, baseline: Path | None) -> dict[str, Any]:
    """What an evaluation's results depend on: the eval options, the model's files and the baseline's results."""
    from ..evaluation.backends import model_fingerprint

    record: dict[str, Any] = {"eval": study.eval_argv(), "model": model_fingerprint(model) or model}
    if baseline is not None:
        record["baseline"] = file_digest(baseline)
    return record


def eval_changes(folder: Path, record: dict[str, Any]) -> list[str]:
    """What differs between `record` and what `folder`'s results were made from ([] when the same)."""
    before = read_made_from(folder)
    if before is None:
        return ["not recorded"]
    names = {"eval": "the eval options", "model": "the model's files", "baseline": "the baseline's results"}
    return [names[k] for k in record if before.get(k) != record[k]]


def run_eval_step(
    command: list[str],
    folder: Path,
    record: dict[str, Any],
    what: str,
    echo: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> None:
    """Evaluate unless `folder` holds results made from `record`; results made from something else are made
    again (their samples discarded when the options or the model changed, kept when only the baseline did)."""
    changes = eval_changes(folder, record) if (folder / EVAL_RESULTS).is_file() else None
    if changes == []:
        return
    if changes is not None:
        why = (
            "what its results were made from is not recorded"
            if changes == ["not recorded"]
            else (f"{', '.join(changes)} changed since it was evaluated")
        )
        echo(f"compare: {what}: {why}: evaluating again")
        if changes != ["the baseline's results"]:
            command = [*command, "--overwrite"]
    _run_logged(command, folder / "eval.log", what, env)
    write_made_from(folder, record)


@contextmanager
def study_lock(study: Study) -> Iterator[None]:
    """Hold the study folder for this process and the runs' processes it starts (an exclusive flock on its lock
    file, which they keep open: `children.py`); a second `sas-trl compare` on the same folder is refused, naming
    the holder (pid, host, since when) and its running children, also when the holder itself has ended."""
    study.output_dir.mkdir(parents=True, exist_ok=True)
    path = for_append(study.output_dir, LOCK_FILE, "the study's lock file")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = " ".join(handle.read().split()) or "unknown"
            raise UserError(
                f"study folder {study.output_dir} is in use by another sas-trl compare ({holder}){_ended(holder)}; "
                f"wait for it to finish or stop it (lock file {path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        holder = f"pid {os.getpid()} on host {socket.gethostname()} since {since}"
        handle.write(f"{holder}\n")
        handle.flush()
        try:
            with children.sharing_lock(handle, holder):
                yield
        finally:
            if not children.running():  # else the lock stays with them (the file stays open in them)
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)


def _ended(holder: str) -> str:
    """What to add when the lock's holder is a process of this host that no longer exists: then a training or
    evaluation it started holds the lock (and writes into the study folder)."""
    words = holder.split()
    if len(words) < 5 or words[0] != "pid" or not words[1].isdigit() or words[4] != socket.gethostname():
        return ""
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return (
            ": that compare process has ended, but a training or evaluation it started still runs and writes into "
            "the study folder"
        )
    except OSError:
        pass
    return ""


def print_commands(study: Study) -> list[str]:
    """One self-contained line per run (train, eval, then its trajectory's evaluations), after the starting
    model's own lines; none for a run whose results are kept (nor for the starting model when every run's are)."""
    program = ["sas-trl"]
    lines = []
    model, built = starting_model(study)
    runs = plan_runs(study)
    skipped = kept_runs(study, runs)  # results kept in results_dir: nothing to run
    if len(skipped) == len(runs) and kept.base_available(study):
        return lines
    if built:
        lines.append(f"sas-trl compare --study {shlex.quote(str(study.path))} --prepare_only")
    lines.append(shlex.join(base_eval_command(study, program)))
    if study.trajectory is not None:
        lines.append(shlex.join(trajectory.base_command(study, model, program)))
    for run in runs:
        if run in skipped:
            continue
        write_run_recipe(study, run)
        train, evaluate = commands(study, run, program)
        steps = [command for _, command in trajectory.eval_commands(study, run, program)]
        lines.append(" && ".join(shlex.join(c) for c in (train, evaluate, *steps)))
    return lines


def prepare_starting_model(study: Study) -> str:
    """Build and warm up the built-in model once for all runs (cached, like `sas-trl train` caches it)."""
    model, built = starting_model(study)
    if not built:
        return model
    from accelerate import PartialState

    from ..training.recipes import parse
    from ..training.warmup import prepare_model

    with own_environment():  # the base recipe's `env:` while its model is built, not for the runs after it
        run_args, args, model_args, _ = parse(["--recipe", str(study.base_recipe)])
        args.output_dir = str(study.output_dir.resolve())
        return prepare_model(run_args, model_args, args, PartialState())


def _run_logged(command: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> None:
    with for_append(log.parent, log.name, "the log").open("a") as out:
        out.write(f"$ {shlex.join(redact_argv(command))}\n")  # no credential in a log
        out.flush()
        code = children.call(command, out, env, what)  # stopped with the study (SIGTERM, SIGHUP, Ctrl-C)
    if code != 0:
        raise UserError(f"{what} failed (exit {code}); see {log}. Re-run the same command to resume")


def run_study(study: Study, echo: Callable[[str], None] = print, jobs: int = 1) -> list[Run]:
    """Prepare the starting model, evaluate it, then train and evaluate every run not finished yet, `jobs` at a
    time (`compare/jobs.py`: each with its own GPU(s) or CPU threads)."""
    program = [sys.executable, "-m", "sas_trl.cli"]
    runs = plan_runs(study)
    skipped = kept_runs(study, runs)  # results kept in results_dir (a stale one refused here, before any work)
    if len(skipped) == len(runs) and kept.base_available(study):  # no starting model needed, nothing to run
        for index, run in enumerate(runs, start=1):
            echo(f"compare: run {index}/{len(runs)} ({run.name}): {kept.kept_message(study, run)}")
        return runs
    active = [run for run in runs if run not in skipped]
    preflight_conditions(study)  # what this machine cannot run, for every condition, before any work
    envs = job_envs(study, jobs) if jobs > 1 else [{}]
    check_study_folders(study, active)  # a linked folder out of the study folder: refused before any work
    kept.check_folders(study, active)  # and out of results_dir
    for run in active:  # every recipe written (and checked against an earlier one) before any work
        write_run_recipe(study, run)
        trajectory.check_settings(study, run.dir / "trajectory")
    trajectory.check_settings(study, trajectory.base_dir(study))
    for run in active:
        check_training_record(run)
    study.output_dir.mkdir(parents=True, exist_ok=True)
    model = prepare_starting_model(study)
    kept.check_starting_model(study, model)  # the kept runs' starting model, bit for bit
    base = base_eval_dir(study)
    base_env = with_env(None, recipe_env(study.base_recipe))  # the base recipe's `env:`, shared by every run
    if not (base / EVAL_RESULTS).is_file():
        echo("compare: evaluating the starting model")
    what = "evaluating the starting model"
    run_eval_step(base_eval_command(study, program), base, eval_record(study, model, None), what, echo, base_env)
    baseline = base / EVAL_RESULTS
    if study.trajectory is not None and not (trajectory.base_dir(study) / EVAL_RESULTS).is_file():
        echo("compare: evaluating the starting model (trajectory step 0)")
        command = trajectory.base_command(study, model, program)
        log = trajectory.base_dir(study) / "eval.log"
        _run_logged(command, log, "evaluating the starting model (step 0)", base_env)
    kept.keep_base(study)

    todo = []
    for index, run in enumerate(runs, start=1):
        if run in skipped:
            echo(f"compare: run {index}/{len(runs)} ({run.name}): {kept.kept_message(study, run)}")
            continue
        done = run.trained() and run.evaluated() and trajectory.done(study, run)
        if done and not eval_changes(run.eval_dir, eval_record(study, str(run.dir), baseline)):
            echo(f"compare: run {index}/{len(runs)} ({run.name}): done earlier, skipped")
            kept.keep_run(study, run)  # finished before results_dir was set, or its kept copy was deleted
        else:
            todo.append(run)
    if jobs > 1:
        parallel.run_all(
            todo,
            lambda run, env: run_one(study, run, program, baseline, echo, env),
            envs,
            lambda run: run.name,
            echo,
            total=len(runs),
            done_before=len(runs) - len(todo),
        )
        return runs
    durations: list[float] = []
    for run in todo:
        index = runs.index(run) + 1
        left = len(runs) - index + 1
        eta = f", about {_minutes(left * sum(durations) / len(durations))} left" if durations else ""
        echo(f"compare: run {index}/{len(runs)} ({run.name}){eta}")
        start = time.perf_counter()
        run_one(study, run, program, baseline, echo)
        durations.append(time.perf_counter() - start)
    return runs


def run_one(
    study: Study,
    run: Run,
    program: list[str],
    baseline: Path,
    echo: Callable[[str], None] = print,
    env: dict[str, str] | None = None,
) -> None:
    """Train (resumed), evaluate, and evaluate the trajectory's checkpoints: whatever of it is not done yet, or was
    made from something else (`run_eval_step`)."""
    train, evaluate = commands(study, run, program)
    env = with_env(env, recipe_env(run.recipe_file))  # its condition's `env:`, for its evaluations too
    if not run.trained():
        _run_logged(train, run.dir / "train.log", f"training {run.name}", env)
    record = eval_record(study, str(run.dir), baseline)
    run_eval_step(evaluate, run.eval_dir, record, f"evaluating {run.name}", echo, env)
    for step, command in trajectory.eval_commands(study, run, program):
        folder = trajectory.step_dir(run, step)
        if not (folder / EVAL_RESULTS).is_file():
            checkpoint = run.dir / f"checkpoint-{step}"
            if not (checkpoint / "trainer_state.json").is_file():
                raise UserError(f"{checkpoint} is missing: the trajectory evaluates every saved checkpoint")
            _run_logged(command, folder / "eval.log", f"evaluating {run.name} at step {step}", env)
    kept.keep_run(study, run)  # its results (never its model) into results_dir, when the study keeps them


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
