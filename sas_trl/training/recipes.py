"""Recipes: TrlParser-compatible YAML files of `SASConfig`, `ModelConfig` and `RunArguments` fields.

A recipe is a flat YAML mapping (plus an optional `env:` mapping of environment variables), exactly what
`trl grpo --config` reads. Command-line flags override recipe values. Everything is validated here,
before any model or data is loaded: unknown keys (with the nearest valid ones), wrong types, bad values
and missing local files all raise `RecipeError` naming the key or file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..constants import BUILTIN_DATASET, BUILTIN_MODEL, DEEPSCALER_ID, PROMPT_TEMPLATE, REWARD_FORMATS
from ..errors import RecipeError
from ..rewards import check_reward_names


@dataclass
class RunArguments:
    """What to train on and how to launch: the recipe keys that are neither `SASConfig` nor `ModelConfig`."""

    dataset_name: str = field(
        default=DEEPSCALER_ID,
        metadata={"help": f"Hub id, local file (.jsonl, .json, .parquet) or {BUILTIN_DATASET!r} (the built-in task)."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
    prompt_template: str = field(
        default=PROMPT_TEMPLATE, metadata={"help": "User message; '{problem}' is replaced by the problem text."}
    )
    problem_column: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_column: str = field(default="answer", metadata={"help": "Column holding the gold answer(s)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N problems."})
    max_prompt_tokens: int | None = field(
        default=None, metadata={"help": "Drop problems whose templated prompt is longer than this many tokens."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={
            "help": "Reward functions by name (sas_trl.rewards.REWARDS), the correctness reward first: it "
            "defines SAS's 'correct'. Weights: `reward_weights`."
        },
    )
    reward_format: str = field(
        default="r1",
        metadata={"help": "'r1': grade the text after </think> (required); 'plain': grade the whole completion."},
    )
    builtin_num_problems: int = field(default=4096, metadata={"help": f"Problems generated for {BUILTIN_DATASET!r}."})
    builtin_min_terms: int = field(default=2, metadata={"help": f"Fewest addends of a {BUILTIN_DATASET!r} problem."})
    builtin_max_terms: int = field(default=8, metadata={"help": f"Most addends of a {BUILTIN_DATASET!r} problem."})
    sft_warmup_steps: int = field(
        default=0,
        metadata={
            "help": f"For {BUILTIN_MODEL!r}: supervised steps on the built-in task before RL (cached in "
            "output_dir/base_model with the settings that made it; rebuilt when seed, sft_warmup_steps or the "
            "builtin_*_terms differ)."
        },
    )
    num_processes: int | None = field(
        default=None,
        metadata={
            "help": "Processes to launch (GPUs: accelerate launch; CPU: torchrun). Unset: one, or the "
            "accelerate config's count."
        },
    )
    accelerate_config: str | None = field(
        default=None, metadata={"help": "Accelerate config file (recipes/accelerate/*.yaml) to launch with."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train even when output_dir holds a finished run of a different recipe (its checkpoints and "
            "run_info.json are removed first). Without it, such a folder is refused unless resuming."
        },
    )

    # -- length-aware baselines (docs/baselines.md) ---------------------------------------------------------
    reward_params: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Parameters of the rewards in reward_funcs, by reward: {l1: {alpha: 0.0003}} (each reward's "
            "parameters: docs/baselines.md). On the command line a YAML/JSON mapping, which replaces the recipe's."
        },
    )
    prompt_transforms: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Prompt transforms by name, applied in order (sas_trl.transforms.TRANSFORMS): l1_budget, "
            "thinkprune_system, lapo_target."
        },
    )
    transform_params: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Parameters of the prompt_transforms, by transform: {l1_budget: {budget_range: [100, 4000]}}. "
            "On the command line a YAML/JSON mapping, which replaces the recipe's."
        },
    )

    def __post_init__(self):
        if isinstance(self.accelerate_config, str) and self.accelerate_config.lower() in ("", "none", "null"):
            self.accelerate_config = None  # lets a flag switch off the recipe's launch config
        if self.reward_format not in REWARD_FORMATS:
            allowed = ", ".join(repr(f) for f in REWARD_FORMATS)
            raise RecipeError(f"reward_format={self.reward_format!r} is not valid; allowed values: {allowed}")
        if "{problem}" not in self.prompt_template:
            raise RecipeError(f"prompt_template must contain '{{problem}}', got {self.prompt_template!r}")
        check_reward_names(self.reward_funcs)
        for name in ("max_train_samples", "max_prompt_tokens", "builtin_num_problems", "num_processes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RecipeError(f"{name}={value} is not valid; allowed values: an integer >= 1")
        if not 2 <= self.builtin_min_terms <= self.builtin_max_terms:
            raise RecipeError(
                f"builtin_min_terms={self.builtin_min_terms}, builtin_max_terms={self.builtin_max_terms} are not "
                "valid; allowed values: 2 <= builtin_min_terms <= builtin_max_terms"
            )
        if self.sft_warmup_steps < 0:
            raise RecipeError(f"sft_warmup_steps={self.sft_warmup_steps} is not valid; allowed values: >= 0")
        self._check_baselines()

    def _check_baselines(self) -> None:
        from ..transforms import check_rewards_and_transforms

        self.reward_params, self.transform_params = check_rewards_and_transforms(
            self.reward_funcs, self.reward_params, self.prompt_transforms, self.transform_params
        )

    def builtin_task(self):
        """The built-in task's generator settings."""
        from ..task import AdditionTask

        return AdditionTask(min_terms=self.builtin_min_terms, max_terms=self.builtin_max_terms)


def dataclass_types() -> tuple[type, ...]:
    from trl import ModelConfig

    from ..config import SASConfig

    return (RunArguments, SASConfig, ModelConfig)


# --------------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------------


def load_recipe(path: str | os.PathLike, _including: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's mapping (with its `env:` mapping, if any), or a `RecipeError` naming the file.

    A `base: OTHER.yaml` key (a path relative to the recipe) includes another recipe first; the including
    recipe's keys win, and `env:` mappings merge. Ablations and baselines then hold only what they change.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise RecipeError(f"recipe {path} is not a text file ({err.reason} at byte {err.start})") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from err
    if recipe is None:
        raise RecipeError(f"recipe {path} is empty; a recipe is a YAML mapping of field: value")
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of field: value, got {type(recipe).__name__}")
    env = recipe.get("env", {})
    if not isinstance(env, dict):
        raise RecipeError(f"recipe {path}: 'env' must be a mapping of VARIABLE: value")
    for key, value in env.items():
        if not isinstance(value, str | int | float | bool):
            raise RecipeError(f"recipe {path}: env {key!r} must be a string or number, got {type(value).__name__}")
    if "base" not in recipe:
        return recipe
    base_name = recipe.pop("base")
    if not isinstance(base_name, str):
        raise RecipeError(f"recipe {path}: 'base' must be the path of another recipe, got {base_name!r}")
    base_path = (path.parent / base_name).resolve()
    if base_path in (*_including, path.resolve()):
        raise RecipeError(f"recipe {path}: 'base: {base_name}' includes itself")
    if not base_path.is_file():
        raise RecipeError(f"recipe {path}: base recipe {base_name!r} not found (looked for {base_path})")
    base = load_recipe(base_path, (*_including, path.resolve()))
    merged = {**base, **recipe}
    if "env" in base or "env" in recipe:
        merged["env"] = {**base.get("env", {}), **recipe.get("env", {})}
    return merged


def all_fields() -> dict[str, tuple[type, dataclasses.Field]]:
    """Every recipe key: name -> (dataclass, field)."""
    fields = {}
    for cls in dataclass_types():
        for f in dataclasses.fields(cls):
            if f.init:
                fields.setdefault(f.name, (cls, f))
    return fields


def check_keys(keys, source: str) -> None:
    """Unknown keys raise, naming the key and the nearest valid ones."""
    from ..transforms import moved_key

    known = all_fields()
    for key in keys:
        if key == "env" or key in known:
            continue
        moved = moved_key(key)  # an old flat baseline key: say where it went
        if moved:
            raise RecipeError(f"{moved} (in {source}; docs/baselines.md)")
        close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RecipeError(f"unknown key {key!r} in {source}{hint}")


def check_types(values: dict[str, Any], source: str) -> None:
    """Values of the wrong type raise, naming the key, the value and the expected type."""
    known = all_fields()
    for key, value in values.items():
        if key == "env":
            continue
        cls, f = known[key]
        hint = typing.get_type_hints(cls).get(f.name, Any)
        if not _matches(hint, value):
            raise RecipeError(f"{key}: {value!r} in {source} is not a valid {_type_name(hint)}")


def _matches(hint, value) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(a, value) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        return isinstance(value, list | tuple) and all(_matches(args[0], v) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, str):  # str-valued enums (e.g. IntervalStrategy)
        return isinstance(value, str)
    return True  # anything more exotic is left to the parser


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_local_files(run_args: RunArguments, model_args) -> None:
    """Local paths the recipe names must exist (Hub ids are checked when loaded)."""
    candidates = {
        "dataset_name": run_args.dataset_name,
        "accelerate_config": run_args.accelerate_config,
        "model_name_or_path": model_args.model_name_or_path,
    }
    for key, value in candidates.items():
        if not value or value.startswith("builtin:"):
            continue
        if _looks_local(value) and not Path(value).exists():
            raise RecipeError(f"{key}: local path {value!r} does not exist")
    if model_args.model_name_or_path is None:
        raise RecipeError(f"model_name_or_path is required (a Hub id, a local folder, or {BUILTIN_MODEL!r})")


def _looks_local(value: str) -> bool:
    # A Hub id is "name" or "org/name"; anything with more parts, a leading ./ ~ /, or a data suffix is a path.
    return (
        value.startswith((".", "/", "~"))
        or value.count("/") > 1
        or value.endswith((".jsonl", ".json", ".parquet", ".yaml", ".yml"))
        or Path(value).exists()
    )


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def parse(argv: list[str]):
    """`--recipe FILE` plus `--field value` overrides -> (RunArguments, SASConfig, ModelConfig, recipe dict).

    The recipe dict holds the recipe's keys with command-line overrides applied (the resolved recipe).
    """
    argv, source = _pop_recipe_flag(list(argv))
    recipe: dict[str, Any] = {}
    if source is not None:
        recipe = load_recipe(source)
        check_keys(recipe, source)
        check_types(recipe, source)
    check_keys(_flag_names(argv), "the command line")
    check_raw_values(recipe, source, argv)

    for key, value in recipe.get("env", {}).items():
        os.environ[key] = str(value)
    run_args, sas_args, model_args = build(recipe, argv)
    check_local_files(run_args, model_args)
    check_settings(run_args, sas_args)

    resolved = dict(recipe)
    for key in _flag_names(argv):
        resolved[key] = _value_of(key, run_args, sas_args, model_args)
    return run_args, sas_args, model_args, resolved


def build(recipe: dict[str, Any], argv: list[str]):
    """The three dataclasses from a recipe mapping and flags (no environment set, no files checked)."""
    from trl import TrlParser

    parser = TrlParser(dataclass_types())

    def fail(message: str):  # argparse would print its (very long) usage and exit
        raise RecipeError(message)

    parser.error = fail
    parser.set_defaults_with_config(**{k: v for k, v in recipe.items() if k != "env"})
    try:
        run_args, sas_args, model_args = parser.parse_args_into_dataclasses(args=argv)
    except RecipeError:
        raise
    except (ValueError, TypeError) as err:
        raise RecipeError(str(err)) from err
    return run_args, sas_args, model_args


def _pop_recipe_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """argv without `--recipe FILE` / `--recipe=FILE`, and FILE (None when absent)."""
    source = None
    for index, arg in enumerate(argv):
        if arg == "--recipe":
            if index + 1 >= len(argv) or argv[index + 1].startswith("--"):
                raise RecipeError("--recipe needs a file")
            source = argv[index + 1]
            del argv[index : index + 2]
            break
        if arg.startswith("--recipe="):
            source = arg.split("=", 1)[1]
            if not source:
                raise RecipeError("--recipe needs a file")
            del argv[index]
            break
    if any(a == "--recipe" or a.startswith("--recipe=") for a in argv):
        raise RecipeError("--recipe is given twice; pass one recipe (a recipe can include another with 'base:')")
    return argv, source


def _raw_flags(argv: list[str]) -> dict[str, str | None]:
    """`--name value` / `--name=value` pairs as typed (value None for a flag followed by another flag)."""
    values: dict[str, str | None] = {}
    for index, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        name, sep, value = arg[2:].partition("=")
        if not sep:
            following = argv[index + 1] if index + 1 < len(argv) else None
            value = None if following is None or following.startswith("--") else following
        values[name.replace("-", "_")] = value
    return values


NO_THINK_END = ("none", "null")  # the explicit "no think-end" values (YAML null works too)


def check_raw_values(recipe: dict[str, Any], source: str | None, argv: list[str]) -> None:
    """Values the dataclasses would silently reinterpret, checked as the user wrote them."""
    flags = _raw_flags(argv)
    candidates = [("the command line", flags["sas_think_end"])] if "sas_think_end" in flags else []
    if not candidates and "sas_think_end" in recipe:
        candidates = [(source, recipe["sas_think_end"])]
    for where, value in candidates:
        if isinstance(value, str) and not value.strip():
            raise RecipeError(
                f"sas_think_end={value!r} in {where} is not valid: an empty value would silently switch off the "
                "reasoning/answer split; give the token that ends the reasoning (default '</think>'), or 'none' "
                "for no think-end (the whole completion is then the reasoning part)"
            )


def check_settings(run_args: RunArguments, sas_args) -> None:
    """Settings that are valid alone but not together, or that TRL would accept and then misuse."""
    if sas_args.max_steps == 0:
        raise RecipeError(
            "max_steps=0 is not valid (transformers would still train one step); allowed values: an integer >= 1, "
            "or -1 to train num_train_epochs epochs"
        )
    index, names = sas_args.sas_correct_reward_index, run_args.reward_funcs
    if index >= len(names):
        raise RecipeError(
            f"sas_correct_reward_index={index} is not valid: reward_funcs lists {len(names)} reward(s) "
            f"({', '.join(names)}); allowed values: 0..{len(names) - 1}"
        )
    from ..rewards import RunContext, reward_spec
    from ..transforms import check_run_context

    if not reward_spec(names[index]).correctness:
        correct = [i for i, name in enumerate(names) if reward_spec(name).correctness]
        raise RecipeError(
            f"sas_correct_reward_index={index} names reward {names[index]!r}, which does not grade correctness "
            f"(SAS's 'correct' must mean a right answer); correctness rewards in reward_funcs are at: "
            f"{', '.join(map(str, correct))}"
        )
    check_run_context(run_args, RunContext.of(run_args, sas_args))


# Keys that change neither what is trained nor how: where it is written, logged or uploaded.
NOT_TRAINING_SETTINGS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
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


def _flag_names(argv: list[str]) -> list[str]:
    return [a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")]


def _value_of(key, *objects):
    for obj in objects:
        if hasattr(obj, key):
            value = getattr(obj, key)
            return value.value if hasattr(value, "value") else value
    raise KeyError(key)


def dump_recipe(resolved: dict[str, Any]) -> str:
    """YAML text of a resolved recipe (loadable again with --recipe)."""
    return yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
