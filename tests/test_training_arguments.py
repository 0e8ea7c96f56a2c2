"""sas_trl.training.arguments: RunArguments checks its own values; every recipe key has one field."""

from __future__ import annotations

import pytest
from cli_helpers import ROOT

from sas_trl.config import SASConfig
from sas_trl.errors import RecipeError
from sas_trl.training.arguments import RunArguments, all_fields, dataclass_types
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def test_prompt_template_without_problem_fails_when_the_arguments_are_built():
    with pytest.raises(RecipeError, match="prompt_template must contain '{problem}'"):
        RunArguments(prompt_template="Solve it step by step.")


def test_reward_funcs_are_checked_before_anything_loads(monkeypatch):
    from sas_trl.rewards import registry

    assert RunArguments().reward_funcs == ["accuracy"]
    with pytest.raises(RecipeError, match="unknown reward 'acuracy'; known rewards: .*accuracy"):
        parse(["--recipe", "recipes/tiny_cpu.yaml", "--reward_funcs", "acuracy"])
    monkeypatch.setitem(registry.REWARDS, "length", registry.RewardSpec(lambda *a: None, False, "a length term"))
    with pytest.raises(RecipeError, match="first reward must grade correctness.*got 'length'"):
        RunArguments(reward_funcs=["length", "accuracy"])
    assert RunArguments(reward_funcs=["accuracy", "length"]).reward_funcs == ["accuracy", "length"]


def test_every_recipe_key_names_the_first_dataclass_that_has_it():
    from trl import ModelConfig

    assert dataclass_types() == (RunArguments, SASConfig, ModelConfig)
    fields = all_fields()
    assert fields["dataset_name"][0] is RunArguments and fields["sas_ratio"][0] is SASConfig
    assert fields["model_name_or_path"][0] is ModelConfig and fields["sas_ratio"][1].name == "sas_ratio"


def test_the_share_of_traces_with_double_checks_is_a_share():
    with pytest.raises(RecipeError, match=r"builtin_double_check_traces=1.5 is not valid; allowed values: a share"):
        RunArguments(builtin_double_check_traces=1.5)
    assert RunArguments(builtin_double_check_traces=0.0).builtin_task().double_check_traces == 0.0
