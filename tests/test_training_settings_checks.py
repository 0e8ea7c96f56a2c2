"""sas_trl.training.settings_checks: every numeric and enum field of the recipe has a known range, checked
before any dataclass is built; `model_init_kwargs` keys checked against the loader and the model's config."""

from __future__ import annotations

import typing

import pytest
from cli_helpers import ROOT

from sas_trl.constants import BUILTIN_MODEL
from sas_trl.errors import RecipeError
from sas_trl.training.arguments import all_fields
from sas_trl.training.recipes import parse
from sas_trl.training.settings_checks import (
    CHECKED_ELSEWHERE,
    CHOICES,
    RANGES,
    Range,
    check_model_init_kwargs,
    check_values,
)

RECIPE = "recipes/tiny_cpu.yaml"


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def numeric_fields() -> set[str]:
    fields = set()
    for key, (cls, f) in all_fields().items():
        hint = typing.get_type_hints(cls)[f.name]
        kinds = set(typing.get_args(hint)) or {hint}
        if kinds & {int, float} and bool not in kinds:
            fields.add(key)
    return fields


def test_every_numeric_field_has_a_range_or_is_checked_elsewhere():
    # A field TRL or transformers adds shows up here, so its range is decided, not forgotten.
    assert numeric_fields() - set(RANGES) - set(CHECKED_ELSEWHERE) == set()
    # ...and a field they rename or drop cannot leave a check that never runs.
    assert set(RANGES) | set(CHOICES) | set(CHECKED_ELSEWHERE) <= set(all_fields())


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_range_refuses_a_value_outside_it_and_keeps_the_default(key):
    spec = RANGES[key]
    outside = (spec.low - 1 if not spec.low_open else spec.low) if spec.low is not None else spec.high + 1
    if outside in spec.extra:
        outside -= 1
    with pytest.raises(RecipeError, match=rf"^{key}=.* is not valid; allowed values: "):
        check_values({key: outside})
    default = all_fields()[key][1].default
    check_values({key: default})  # TRL's and transformers' defaults stay valid


def test_a_range_describes_itself():
    assert Range(1, extra=(-1,), note="why").describe(integer=True) == "an integer >= 1, or -1 (why)"
    assert Range(0, 1, low_open=True).describe(integer=False) == "a number > 0 and <= 1"
    assert not Range(0, 1, high_open=True).allows(1) and Range(0, 1).allows(1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"temperature": float("nan")}, "temperature=nan is not valid; allowed values: finite numbers"),
        ({"learning_rate": float("inf")}, "learning_rate=inf"),
        ({"reward_weights": [1.0, float("nan")]}, "reward_weights=.*finite"),
        ({"optim": "adam"}, "optim='adam' is not valid; allowed values: 'adamw_torch'"),
        ({"lr_scheduler_type": "cosine_annealing"}, "lr_scheduler_type="),
        ({"save_strategy": "step"}, "save_strategy='step'"),
        ({"report_to": ["tensorboard", "wandbb"]}, r"report_to=\['tensorboard', 'wandbb'\]"),
        ({"dtype": "fp16"}, "dtype='fp16'"),
        ({"scale_rewards": "std"}, "scale_rewards='std'"),
        ({"importance_sampling_level": "seq"}, "importance_sampling_level='seq'"),
        ({"pad_to_multiple_of": "eight"}, "pad_to_multiple_of='eight'"),
        ({"model_init_kwargs": "{dtype: auto}"}, "model_init_kwargs: .* is not a JSON mapping"),
        ({"reward_funcs": ["accuracy", "l1"], "reward_weights": [1.0]}, "reward_weights=.*1 weight.*2 reward"),
    ],
)
def test_non_finite_numbers_unknown_choices_and_mismatched_lists_are_refused(values, expected):
    with pytest.raises(RecipeError, match=expected):
        check_values(values)


def test_valid_choices_and_unset_values_pass():
    check_values({"optim": "adamw_torch", "report_to": ["none"], "scale_rewards": True, "pad_to_multiple_of": "8"})
    check_values({key: None for key in RANGES})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"attn_implementaton": "eager"}, "unknown key 'attn_implementaton'.*did you mean 'attn_implementation'"),
        ({"hiden_size": 8}, "unknown key 'hiden_size'.*did you mean 'hidden_size'"),
        ({"hidden_dropout": 0.1}, "unknown key 'hidden_dropout'"),  # not a Llama config attribute
        ({"dtype": "float8"}, "dtype='float8' is not valid"),
        ({"torch_dtype": "half"}, "torch_dtype='half' is not valid"),
        ({1: 2}, "key 1 is not a keyword name"),
    ],
)
def test_model_init_kwargs_the_loader_would_refuse_are_refused(kwargs, expected):
    with pytest.raises(RecipeError, match=expected):
        check_model_init_kwargs(kwargs, BUILTIN_MODEL, None, lambda key: "")


def test_model_init_kwargs_the_loader_takes_pass(tmp_path):
    ok = {"dtype": "float32", "attn_implementation": "eager", "attention_dropout": 0.1, "low_cpu_mem_usage": True}
    check_model_init_kwargs(ok, BUILTIN_MODEL, None, lambda key: "")
    # A local model folder: its config.json names the config class.
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    check_model_init_kwargs({"n_embd": 8, "hidden_size": 8}, str(tmp_path), None, lambda key: "")
    with pytest.raises(RecipeError, match="unknown key 'n_emdb'.*did you mean 'n_embd'"):
        check_model_init_kwargs({"n_emdb": 8}, str(tmp_path), None, lambda key: "")
    # A Hub model not in the cache: its config is unknown, so only near-misses of the loader's keywords fail.
    check_model_init_kwargs({"some_config_field": 1}, "nobody/not-cached", None, lambda key: "")
    with pytest.raises(RecipeError, match="did you mean 'device_map'"):
        check_model_init_kwargs({"device_mapp": "auto"}, "nobody/not-cached", None, lambda key: "")


def test_model_init_kwargs_are_checked_when_the_recipe_is_parsed(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\nmodel_init_kwargs:\n  attn_implementaton: eager\n")
    with pytest.raises(RecipeError, match=rf"attn_implementaton.*\(set in {recipe}, line 2\)"):
        parse(["--recipe", str(recipe)])
    with pytest.raises(RecipeError, match="unknown key 'dtyp'"):
        parse(["--recipe", RECIPE, "--model_init_kwargs", '{"dtyp": "float32"}'])
    _, args, _, _ = parse(["--recipe", RECIPE, "--model_init_kwargs", '{"attention_dropout": 0.1}'])
    assert args.model_init_kwargs == {"attention_dropout": 0.1}
