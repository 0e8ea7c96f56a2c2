"""Running a study: one shared starting model, then every (condition, seed) trained and evaluated, in turn or
`--jobs N` at once (`jobs.py`), and with a trajectory each run's checkpoints evaluated too (`trajectory.py`).

Every run goes through the same commands a user types, `sas-trl train --recipe RUN/study_recipe.yaml` and
`sas-trl eval`, each in its own process (so a run's launch settings, several processes or an accelerate
config, work as they do alone). What finished is skipped on a re-run; an interrupted training resumes from
its last complete checkpoint (`--resume_from_checkpoint last`), an interrupted evaluation from its samples
file. `--print_commands` prints the same commands for a cluster scheduler instead.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..constants import BUILTIN_MODEL
from ..errors import UserError
from . import jobs as parallel
from . import trajectory
from .study import Study, run_recipe

EVAL_RESULTS = "eval_results.json"


@dataclass(frozen=True)
class Run:
    condition: str
    seed: int
    dir: Path

    @property
    def name(self) -> str:
        return f"{self.condition} seed {self.seed}"

    @property
    def recipe_file(self) -> Path:
        return self.dir / "study_recipe.yaml"  # not recipe.yaml: the model card writes that one

    @property
    def eval_dir(self) -> Path:
        return self.dir / "eval"

    def trained(self) -> bool:
        return (self.dir / "run_info.json").is_file()  # written after the final save

    def evaluated(self) -> bool:
        return (self.eval_dir / EVAL_RESULTS).is_file()


def plan_runs(study: Study) -> list[Run]:
    """Every (condition, seed), conditions in the study's order, seeds inner."""
    root = study.output_dir.resolve() / "runs"
    return [Run(c, s, root / c / f"seed{s}") for c in study.conditions for s in study.seeds]


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
    base = base_recipe_values(study)
    cpu_only = all({**base, **overrides}.get("use_cpu", False) for overrides in study.conditions.values())
    return parallel.job_envs(jobs, gpus=[] if cpu_only else None)


def base_eval_dir(study: Study) -> Path:
    return study.output_dir.resolve() / "base_eval"


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
    run.dir.mkdir(parents=True, exist_ok=True)
    run.recipe_file.write_text(text)


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


def print_commands(study: Study) -> list[str]:
    """One self-contained line per run (train, eval, then its trajectory's evaluations), after the starting
    model's own lines."""
    program = ["sas-trl"]
    lines = []
    model, built = starting_model(study)
    if built:
        lines.append(f"sas-trl compare --study {shlex.quote(str(study.path))} --prepare_only")
    lines.append(shlex.join(base_eval_command(study, program)))
    if study.trajectory is not None:
        lines.append(shlex.join(trajectory.base_command(study, model, program)))
    for run in plan_runs(study):
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

    run_args, args, model_args, _ = parse(["--recipe", str(study.base_recipe)])
    args.output_dir = str(study.output_dir.resolve())
    return prepare_model(run_args, model_args, args, PartialState())


def _run_logged(command: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        raise UserError(f"{what} failed (exit {code}); see {log}. Re-run the same command to resume")


def run_study(study: Study, echo: Callable[[str], None] = print, jobs: int = 1) -> list[Run]:
    """Prepare the starting model, evaluate it, then train and evaluate every run not finished yet, `jobs` at a
    time (`compare/jobs.py`: each with its own GPU(s) or CPU threads)."""
    program = [sys.executable, "-m", "sas_trl.cli"]
    runs = plan_runs(study)
    envs = job_envs(study, jobs) if jobs > 1 else [{}]
    for run in runs:  # every recipe written (and checked against an earlier one) before any work
        write_run_recipe(study, run)
        trajectory.check_settings(study, run.dir / "trajectory")
    trajectory.check_settings(study, trajectory.base_dir(study))
    study.output_dir.mkdir(parents=True, exist_ok=True)
    model = prepare_starting_model(study)
    if not (base_eval_dir(study) / EVAL_RESULTS).is_file():
        echo("compare: evaluating the starting model")
        _run_logged(
            base_eval_command(study, program), base_eval_dir(study) / "eval.log", "evaluating the starting model"
        )
    if study.trajectory is not None and not (trajectory.base_dir(study) / EVAL_RESULTS).is_file():
        echo("compare: evaluating the starting model (trajectory step 0)")
        command = trajectory.base_command(study, model, program)
        _run_logged(command, trajectory.base_dir(study) / "eval.log", "evaluating the starting model (step 0)")

    todo = []
    for index, run in enumerate(runs, start=1):
        if run.trained() and run.evaluated() and trajectory.done(study, run):
            echo(f"compare: run {index}/{len(runs)} ({run.name}): done earlier, skipped")
        else:
            todo.append(run)
    if jobs > 1:
        parallel.run_all(
            todo,
            lambda run, env: run_one(study, run, program, env),
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
        run_one(study, run, program)
        durations.append(time.perf_counter() - start)
    return runs


def run_one(study: Study, run: Run, program: list[str], env: dict[str, str] | None = None) -> None:
    """Train (resumed), evaluate, and evaluate the trajectory's checkpoints: whatever of it is not done yet."""
    train, evaluate = commands(study, run, program)
    if not run.trained():
        _run_logged(train, run.dir / "train.log", f"training {run.name}", env)
    if not run.evaluated():
        _run_logged(evaluate, run.eval_dir / "eval.log", f"evaluating {run.name}", env)
    for step, command in trajectory.eval_commands(study, run, program):
        folder = trajectory.step_dir(run, step)
        if not (folder / EVAL_RESULTS).is_file():
            checkpoint = run.dir / f"checkpoint-{step}"
            if not (checkpoint / "trainer_state.json").is_file():
                raise UserError(f"{checkpoint} is missing: the trajectory evaluates every saved checkpoint")
            _run_logged(command, folder / "eval.log", f"evaluating {run.name} at step {step}", env)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
