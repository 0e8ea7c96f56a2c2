"""Parameters of registered rewards and prompt transforms: a frozen dataclass per reward, checked from a recipe.

A parametrised reward declares its parameters next to its formula (`sas_trl.rewards.length.L1Params`), validates
them in `__post_init__` (raising `ParamError`), and a recipe sets them under the reward's name:

    reward_params: {l1: {alpha: 0.0003, max_form: multiplicative}}

`build_params` turns that mapping into the dataclass, naming the full recipe key in every error
(`reward_params.l1.alpha=-1 is not valid; allowed values: > 0`). `RunContext` is what a reward or a transform may
read from the run (group size, generation cap, seed, ...), so neither needs the training arguments themselves.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import RecipeError
from ..typecheck import matches, type_name
from .deadline import DEFAULT_REWARD_TIMEOUT


class ParamError(RecipeError):
    """A parameter's value is not valid: `field=value is not valid; allowed values: ...`."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not valid; allowed values: {allowed}")

    def at(self, prefix: str) -> RecipeError:
        """The same error, naming the full recipe key (`reward_params.l1.alpha`)."""
        return RecipeError(f"{prefix}.{self.field}={self.value!r} is not valid; allowed values: {self.allowed}")


# The keyword argument `SASGRPOTrainer` adds to every reward call: "train" or "eval" (one value per rollout, as TRL
# passes dataset columns). TRL's own keywords do not say which; group-level rewards need it (LAPO).
GENERATION_MODE_KEY = "generation_mode"


def generation_mode(kwargs: Mapping[str, Any]) -> str:
    """The mode of a reward call: "train" or "eval" (`GENERATION_MODE_KEY`); "train" when the trainer gives none."""
    modes = kwargs.get(GENERATION_MODE_KEY)
    return modes[0] if modes else "train"


@dataclass(frozen=True)
class NoParams:
    """A reward or transform without parameters."""


@dataclass(frozen=True)
class RunContext:
    """What a reward or a transform may read from the run (built from the recipe's settings, never edited).

    Fields are None where the caller has no training arguments (a reward built outside training); a reward that
    needs one raises `ValueError` naming it.
    """

    reward_format: str = "r1"  # how the correctness reward reads an answer (constants.REWARD_FORMATS)
    num_generations: int | None = None  # rollouts per prompt: the group of a group-level reward
    num_generations_eval: int | None = None  # rollouts per prompt in evaluation (TRL: num_generations if unset)
    max_completion_length: int | None = None  # the generation cap, in tokens
    seed: int = 0  # the run's seed (transforms that draw at random are seeded with it)
    output_dir: str | None = None  # where the run writes
    reward_timeout: float | None = DEFAULT_REWARD_TIMEOUT  # seconds a user's (dotted-path) reward call may take

    @classmethod
    def of(cls, run_args: Any, training_args: Any = None) -> RunContext:
        """The context of a run: `run_args` gives `reward_format`, the training arguments (GRPOConfig) the rest."""
        num_generations = getattr(training_args, "num_generations", None)
        return cls(
            reward_format=getattr(run_args, "reward_format", "r1"),
            num_generations=num_generations,
            num_generations_eval=getattr(training_args, "num_generations_eval", None) or num_generations,
            max_completion_length=getattr(training_args, "max_completion_length", None),
            seed=getattr(training_args, "seed", 0),
            output_dir=getattr(training_args, "output_dir", None),
            reward_timeout=getattr(run_args, "reward_timeout", DEFAULT_REWARD_TIMEOUT),
        )

    def need(self, name: str, user: str) -> Any:
        """The value of field `name`, or `ValueError` saying that `user` needs it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{user} needs the run's {name} (pass the training arguments)")
        return value


def parse_mapping(value: Any, key: str) -> dict[str, dict[str, Any]]:
    """A `{name: {param: value}}` mapping from a recipe value, or from a flag's YAML/JSON text; None -> {}."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise RecipeError(f"{key}: {value!r} is not a YAML/JSON mapping ({err})") from err
        except RecursionError as err:
            raise RecipeError(f"{key}: the value is nested too deeply to read (thousands of levels)") from err
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecipeError(f"{key} must be a mapping of name: {{parameter: value}}, got {value!r}")
    for name, params in value.items():
        if params is None:
            continue
        if not isinstance(params, Mapping):
            raise RecipeError(f"{key}.{name} must be a mapping of parameter: value, got {params!r}")
    return {str(name): dict(params or {}) for name, params in value.items()}


def nearest(name: str, known) -> str:
    """'; did you mean ...?' with the nearest of `known`, or ''."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def build_params(cls: type, values: Mapping[str, Any] | None, prefix: str):
    """`cls(**values)` checked: unknown names, missing required ones and wrong types raise naming `prefix.name`.

    Lists become tuples (the dataclasses are frozen); integers are accepted where a float is expected.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for name in values:
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise RecipeError(f"unknown parameter {prefix}.{name}{nearest(name, fields)} (parameters: {known})")
    for name, f in fields.items():
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                help_text = f.metadata.get("help", "")
                raise RecipeError(f"{prefix}.{name} is required" + (f" ({help_text})" if help_text else ""))
            continue
        hint = hints[name]
        if not matches(hint, values[name]):
            raise RecipeError(f"{prefix}.{name}: {values[name]!r} is not a valid {type_name(hint)}")
        too_large = [v for v in _numbers(values[name]) if abs(v) > MAX_INTEGER]
        if too_large:  # it would overflow a 64-bit dataset column or a float, deep inside the dataset map
            raise RecipeError(f"{prefix}.{name}: {too_large[0]} is too large (at most {MAX_INTEGER:,} in size)")
        values[name] = _convert(hint, values[name])
    try:
        return cls(**values)
    except ParamError as err:
        raise err.at(prefix) from None


MAX_INTEGER = 2**63 - 1  # the largest integer a dataset column (int64) holds


def _numbers(value) -> list[int]:
    """The integers in a parameter's value (itself, or a list's items)."""
    items = value if isinstance(value, list | tuple) else [value]
    return [v for v in items if isinstance(v, int) and not isinstance(v, bool)]


def _convert(hint, value):
    if isinstance(value, list | tuple):  # the parameters' tuples hold one type
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return tuple(_convert(args[0] if args else Any, v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        allowed = typing.get_args(hint) or (hint,)
        if float in allowed and int not in allowed:
            return float(value)
    return value


def build_named_params(
    key: str, kind: str, listed_in: str, names: Sequence[str], mapping: Any, params_of: Callable[[str], type | None]
) -> dict[str, Any]:
    """Each listed name's parameters (its `params` dataclass, defaults filled in) from a `{name: {param: value}}`
    recipe mapping such as `reward_params` or `transform_params`.

    Args:
        key: the recipe key ("reward_params"); kind: what the names are ("reward"); listed_in: the recipe key that
            lists them ("reward_funcs").
        params_of: name -> its parameters class, or None for a dotted-path name (no parameters); unknown names raise.
    Every name in the mapping must take parameters and be listed in `names`.
    """
    mapping = parse_mapping(mapping, key)
    built = {}
    for name, values in mapping.items():  # each entry checked first: its values are what the user is editing
        params = params_of(name)
        if params is None:
            raise RecipeError(f"{key}.{name}: a dotted-path {kind} takes no parameters")
        built[name] = build_params(params, values, f"{key}.{name}")
    for name in mapping:
        if name not in names:
            raise RecipeError(
                f"{key}.{name} is set but {listed_in} does not list {name!r} ({', '.join(names) or 'none'})"
            )
    for name in names:
        if name not in built:
            built[name] = build_params(params_of(name) or NoParams, {}, f"{key}.{name}")
    return {name: built[name] for name in names}
