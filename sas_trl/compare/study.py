"""The study file: what `sas-trl compare` runs, checked completely before anything runs.

```yaml
base_recipe: recipes/tiny_cpu.yaml       # a recipe path, relative to the current directory like --recipe
output_dir: outputs/study                # runs, evaluations and the report go here
seeds: [0, 1, 2, 3, 4]
seeds_per_condition: {sas: 3}            # optional: a condition runs only the first N seeds (default: all)
reference: grpo                          # paired differences are taken against this condition
conditions:                              # name: recipe keys that differ from the base recipe
  grpo: {sas_strategy: none}
  sas: {sas_ratio: 0.3}
eval:                                    # `sas-trl eval` options (not model, output_dir, baseline, overwrite)
  benchmarks: addition
  n: 16
  max_tokens: 64
```
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..training.packaged import resolve_path
from ..training.recipe_files import load_yaml
from ..training.settings_checks import SEED, SEED_MAX
from .sections import PowerSpec, TrajectorySpec, parse_power, parse_seeds_per_condition, parse_trajectory

KEYS = (
    "base_recipe",
    "output_dir",
    "results_dir",
    "seeds",
    "seeds_per_condition",
    "reference",
    "conditions",
    "eval",
    "description",
    "trajectory",
    "power",
)
REQUIRED = ("base_recipe", "seeds", "reference", "conditions")
# Recipe keys the study sets for every run: a condition may not override them.
STUDY_OWNED = ("seed", "output_dir", "base", "resume_from_checkpoint", "push_to_hub")
# `sas-trl eval` options the study sets for each evaluation (the model evaluated, where its results go, the
# baseline, whether earlier samples are discarded): an `eval:` or `trajectory.eval` key naming one is refused,
# also abbreviated or as any other key that names an output or the model.
EVAL_OWNED = ("model", "output_dir", "baseline", "overwrite")
MAX_RUNS = 500  # runs (each condition's seeds): beyond this a study is a typo, and each run is a folder of its own
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Study:
    path: Path
    base_recipe: Path
    output_dir: Path
    seeds: tuple[int, ...]
    reference: str
    conditions: dict[str, dict[str, Any]]
    eval_options: dict[str, Any]
    description: str = ""
    trajectory: TrajectorySpec | None = None  # checkpoints evaluated along training (compare/trajectory.py)
    power: PowerSpec | None = None  # the effect the study is sized for (compare/power.py)
    results_dir: Path | None = None  # each finished run's results kept there, in the repository (compare/kept.py)
    # condition: N, it runs the first N of `seeds`; a condition not named runs all of them
    seeds_per_condition: dict[str, int] = field(default_factory=dict)

    def condition_seeds(self, condition: str) -> tuple[int, ...]:
        """The seeds `condition` runs: the first `seeds_per_condition[condition]` of the study's, else all."""
        return self.seeds[: self.seeds_per_condition.get(condition, len(self.seeds))]

    def shared_seeds(self, condition: str, other: str) -> tuple[int, ...]:
        """The seeds both conditions run, the pairs of a paired comparison (a prefix of `seeds`)."""
        return self.seeds[: min(len(self.condition_seeds(condition)), len(self.condition_seeds(other)))]

    def seed_counts(self) -> dict[str, int]:
        """How many seeds each condition runs (the first N of `seeds`)."""
        return {c: len(self.condition_seeds(c)) for c in self.conditions}

    @property
    def run_count(self) -> int:
        return sum(self.seed_counts().values())

    def eval_argv(self) -> list[str]:
        """The eval options as `sas-trl eval` flags."""
        return eval_flags(self.eval_options)


def eval_flags(options: dict[str, Any]) -> list[str]:
    argv = []
    for key, value in options.items():
        if isinstance(value, bool):
            if value:
                argv.append(f"--{key}")
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        argv += [f"--{key}", str(value)]
    return argv


def owned_eval_flag(key: str, flags: Collection[str] = ()) -> str | None:
    """The `sas-trl eval` flag the study owns that `key` would set or that it names (an abbreviation, an output,
    the model), or None. `flags`: every flag of `sas-trl eval`, so that a prefix of another flag too is not taken
    for an owned one."""
    name = key.lstrip("-").replace("-", "_").lower()
    if name in EVAL_OWNED:
        return name
    if "output" in name or name.startswith("model"):
        return "output_dir" if "output" in name else "model"
    owners = [o for o in EVAL_OWNED if name and o.startswith(name)]
    if len(owners) == 1 and not any(f.startswith(name) for f in flags if f not in EVAL_OWNED):
        return owners[0]
    return None


def check_eval_options(path: Path, section: str, options: dict, flags: Collection[str] | None = None) -> None:
    """`UserError` for a key of the study's `section` (`eval` or `trajectory.eval`) that names an option the study
    sets for each run, or, given `flags` (every `sas-trl eval` flag), one that is not a flag: with the nearest."""
    for key in options:
        if not isinstance(key, str):
            raise UserError(f"study {path}: {section}: key {key!r} is not a `sas-trl eval` option name")
        owned = owned_eval_flag(key, flags or ())
        if owned is not None:
            said = "" if key == owned else f" (it would name --{owned})"
            raise UserError(
                f"study {path}: {section} sets {key!r}{said}, which the study sets for each run: the model "
                "evaluated and where its results go are the run's; remove it"
            )
        values = options[key] if isinstance(options[key], list | tuple) else [options[key]]
        flag_like = [v for v in values if isinstance(v, str) and v.strip().startswith("--")]
        if flag_like:  # `sas-trl eval` would read it as a flag of its own (--model=..., --output_dir=...)
            raise UserError(f"study {path}: {section}: {key}: value {flag_like[0]!r} is a flag, not a value")
        if flags is not None and key not in flags:
            valid = sorted(set(flags) - set(EVAL_OWNED))
            close = [f for f in valid if f.startswith(key)] or difflib.get_close_matches(key, valid, n=1)
            hint = (
                f"; did you mean {' or '.join(map(repr, close))}? (options are never abbreviated)"
                if close
                else f"; known options: {', '.join(valid)}"
            )
            raise UserError(f"study {path}: {section}: unknown `sas-trl eval` option {key!r}{hint}")


def load_study(path: str | Path, eval_flags: Collection[str] | None = None) -> Study:
    """Read and check a study file; every problem is a `UserError` naming the file and the key.

    `eval_flags`: every flag of `sas-trl eval` (`sas_trl.cli.eval.flag_names`, a higher layer), so that an
    unknown `eval:` or `trajectory.eval` key is refused here with the nearest one; without it only the keys the
    study owns are refused here (`sas-trl compare` passes it)."""
    path = Path(resolve_path(str(path)))  # `recipes/studies/...`: the packaged study when not here
    if not path.is_file():
        raise UserError(f"study file not found: {path}")
    data, lines = load_yaml(path, "study", UserError)  # a key given twice is refused, also 1 against "1"
    if not isinstance(data, dict):
        raise UserError(f"study {path} must be a YAML mapping with keys {', '.join(REQUIRED)}")
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
            raise UserError(f"study {path}: unknown key {key!r}{hint}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"study {path}: missing {', '.join(missing)}")

    for key in ("base_recipe", "output_dir", "results_dir", "reference", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"study {path}, line {lines[key]}: {key} must be text, got {data[key]!r}")
    base = Path(resolve_path(data["base_recipe"]))  # `recipes/...`: the packaged file when not here
    if not base.is_file():
        raise UserError(f"study {path}: base_recipe {str(base)!r} not found")
    seeds = data["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise UserError(f"study {path}: seeds must be a non-empty list of integers, got {_short(seeds)}")
    bad = [s for s in seeds if not SEED.allows(s)]
    if bad:  # `sas-trl train` would refuse it, but only after the starting model's warm-up and evaluation
        raise UserError(
            f"study {path}, line {lines['seeds']}: seed {bad[0]} is not valid; allowed values: an "
            f"integer >= 0 and <= {SEED_MAX} (numpy's seed range)"
        )
    if len(set(seeds)) != len(seeds):
        raise UserError(f"study {path}: seeds must be distinct, got {_short(seeds)}")
    conditions = data["conditions"]
    if not isinstance(conditions, dict) or not conditions:
        raise UserError(f"study {path}: conditions must be a mapping of name: {{recipe key: value}}")
    conditions = {str(name): overrides or {} for name, overrides in conditions.items()}
    for name, overrides in conditions.items():
        if not _NAME.match(name):
            raise UserError(f"study {path}: condition name {name!r} must be letters, digits, '_', '.', '-'")
        if not isinstance(overrides, dict):
            raise UserError(f"study {path}: condition {name!r} must map recipe keys to values, got {overrides!r}")
        owned = sorted(set(overrides) & set(STUDY_OWNED))
        if owned:
            raise UserError(f"study {path}: condition {name!r} sets {owned[0]!r}, which the study sets for each run")
    reference = data["reference"]
    if reference not in conditions:
        raise UserError(
            f"study {path}: reference {reference!r} is not a condition; conditions: {', '.join(conditions)}"
        )
    per_condition = parse_seeds_per_condition(
        path, data.get("seeds_per_condition"), seeds, list(conditions), reference, lines
    )
    runs = sum(per_condition.get(c, len(seeds)) for c in conditions)
    if runs > MAX_RUNS:
        size = f"{len(conditions)} condition(s) x {len(seeds)} seed(s)"
        if per_condition:
            size = f"{len(conditions)} condition(s), their seeds_per_condition"
        raise UserError(
            f"study {path}: {size} = {runs} runs, more than {MAX_RUNS}; split it into several studies (each run "
            "gets its own folder)"
        )
    eval_options = data.get("eval") or {}
    if not isinstance(eval_options, dict):
        raise UserError(f"study {path}: eval must be a mapping of `sas-trl eval` options")
    output_dir = Path(data.get("output_dir") or Path("compare_results") / path.stem)
    results_dir = _results_dir(path, data.get("results_dir"), output_dir, lines.get("results_dir"))

    study = Study(
        path=path,
        base_recipe=base,
        output_dir=output_dir,
        seeds=tuple(seeds),
        reference=reference,
        conditions=conditions,
        eval_options=dict(eval_options),
        description=str(data.get("description") or ""),
        trajectory=parse_trajectory(path, data.get("trajectory")),
        power=parse_power(path, data.get("power"), list(conditions), reference),
        results_dir=results_dir,
        seeds_per_condition=per_condition,
    )
    check_eval_options(path, "eval", study.eval_options, eval_flags)
    if study.trajectory is not None:
        check_eval_options(path, "trajectory.eval", study.trajectory.eval, eval_flags)
    check_conditions(study)
    return with_steps(study)


def _results_dir(path: Path, value: str | None, output_dir: Path, line: int | None) -> Path | None:
    """`results_dir` (None when not set): a folder apart from `output_dir`, neither inside the other, since one
    holds checkpoints outside the repository and the other only results kept in it."""
    if value is None:
        return None
    where = f"study {path}, line {line}: results_dir"
    if not value.strip():
        raise UserError(f"{where} must name a folder, got {value!r}")
    results, out = Path(value).resolve(), output_dir.resolve()
    if results == out or results.is_relative_to(out):
        raise UserError(f"{where} {value!r} lies inside output_dir {str(output_dir)!r}; keep the results apart")
    if out.is_relative_to(results):
        raise UserError(
            f"{where} {value!r} holds output_dir {str(output_dir)!r}, whose checkpoints would land among the kept "
            "results; choose folders apart"
        )
    return Path(value)


def _short(values) -> str:
    """A value as an error shows it: a study's seeds can be thousands."""
    if not isinstance(values, list) or len(values) <= 10:
        return repr(values)
    return f"{repr(values[:10])[:-1]}, ... ({len(values) - 10} more)]"


def run_recipe(study: Study, condition: str, seed: int, run_dir: Path, model: str | None = None) -> dict[str, Any]:
    """The recipe one run trains with: the base recipe (by `base:`), the condition's keys, the run's seed and
    folder, and the shared starting model when there is one."""
    recipe = {"base": str(study.base_recipe.resolve()), **study.conditions[condition]}
    if model is not None:
        recipe["model_name_or_path"] = model
        recipe["sft_warmup_steps"] = 0
    recipe.update(seed=seed, output_dir=str(run_dir))
    return recipe


@contextmanager
def own_environment() -> Iterator[None]:
    """Put `os.environ` back as it was: parsing a recipe applies its `env:` (as `sas-trl train` must), and in the
    compare process one condition's variables would reach every later condition's training and evaluation."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        if dict(os.environ) != saved:
            os.environ.clear()
            os.environ.update(saved)


def condition_errors(study: Study, this_machine: bool = False) -> Iterator[tuple[str, str]]:
    """Parse every condition's recipe exactly as `sas-trl train` would (keys, types, values, files; with
    `this_machine`, also what this machine cannot run), each with its own `env:` only while it is parsed; yields
    (condition, message) for each one refused."""
    from ..errors import RecipeError
    from ..training.recipes import parse

    with tempfile.TemporaryDirectory() as tmp:
        for name in study.conditions:
            file = Path(tmp) / f"{name}.yaml"
            file.write_text(yaml.safe_dump(run_recipe(study, name, study.seeds[0], Path(tmp) / name)))
            try:
                with own_environment():
                    parse(["--recipe", str(file)], this_machine=this_machine)
            except RecipeError as err:
                yield name, str(err).replace(str(file), f"condition {name!r}")


def check_conditions(study: Study) -> None:
    """Every condition's recipe parses as `sas-trl train` would; the first one refused is a UserError naming it."""
    with closing(condition_errors(study)) as errors:  # its temporary folder goes at once
        for name, message in errors:
            raise UserError(f"study {study.path}: condition {name!r}: {message}")


def preflight_conditions(study: Study) -> None:
    """What `sas-trl train` refuses on this machine (`training/preflight.py`: a GPU recipe on a CPU, wandb without
    a login, a package that is missing, ...) for every condition, before the first run: every problem in one
    message naming its condition. Each condition is checked with its own `env:` (a key it sets counts)."""
    problems = [f"condition {name!r}: {message}" for name, message in condition_errors(study, this_machine=True)]
    if problems:
        raise UserError(
            f"study {study.path}: {len(problems)} of {len(study.conditions)} condition(s) cannot train on this "
            f"machine; nothing was run: {'; '.join(problems)}"
        )


def with_steps(study: Study) -> Study:
    """The study with each condition's evaluated checkpoint steps, read from its recipe as `sas-trl train` parses
    it: every condition must save a checkpoint at each multiple of `every` and keep them all."""
    spec = study.trajectory
    if spec is None:
        return study
    from ..errors import RecipeError
    from ..training.recipes import parse

    steps = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in study.conditions:
            file = Path(tmp) / f"{name}.yaml"
            file.write_text(yaml.safe_dump(run_recipe(study, name, study.seeds[0], Path(tmp) / name)))
            try:
                with own_environment():  # the condition's `env:` stays its own
                    _, args, _, _ = parse(["--recipe", str(file)])
            except RecipeError as err:  # check_conditions reports these first; kept for a direct call
                raise UserError(f"study {study.path}: condition {name!r}: {err}") from err
            where = f"study {study.path}: trajectory.every={spec.every} with condition {name!r}"
            if str(getattr(args.save_strategy, "value", args.save_strategy)) != "steps":
                raise UserError(f"{where}: the condition must save checkpoints (save_strategy: steps)")
            if spec.every % args.save_steps != 0:
                raise UserError(f"{where}: every must be a multiple of its save_steps ({args.save_steps})")
            if args.save_total_limit is not None:
                raise UserError(f"{where}: save_total_limit={args.save_total_limit} would delete the checkpoints")
            if args.max_steps < spec.every:
                raise UserError(f"{where}: the run trains only {args.max_steps} steps")
            steps[name] = tuple(range(spec.every, args.max_steps + 1, spec.every))
    return replace(study, trajectory=replace(spec, steps=steps))
