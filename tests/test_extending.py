"""docs/layout.md "Extending sas-trl": each example, as written there, works end to end."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass  # noqa: F401 - the doc's examples use it
from types import SimpleNamespace

import pytest
import torch
import yaml
from cli_helpers import ROOT

from sas_trl import select_zero_mask
from sas_trl.core import SASRule
from sas_trl.errors import RecipeError
from sas_trl.rewards import REWARDS, ParamError, RunContext, get_reward_funcs, register_reward  # noqa: F401
from sas_trl.selection import SELECTIONS, SelectionInputs, register_selection  # noqa: F401
from sas_trl.training.recipes import parse

SECTION = (ROOT / "docs" / "layout.md").read_text().split("## Extending sas-trl", 1)[1]
PYTHON = re.findall(r"```python\n(.*?)```", SECTION, flags=re.S)
YAML = re.findall(r"```yaml\n(.*?)```", SECTION, flags=re.S)


@pytest.fixture
def registries():
    rewards, selections = dict(REWARDS), dict(SELECTIONS)
    yield
    REWARDS.clear(), REWARDS.update(rewards)
    SELECTIONS.clear(), SELECTIONS.update(selections)


def test_a_dotted_path_reward_needs_no_change_to_the_package(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(PYTHON[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(ROOT)
    recipe = yaml.safe_load(YAML[0])
    recipe["base"] = str(ROOT / recipe["base"])
    (tmp_path / "my_recipe.yaml").write_text(yaml.safe_dump(recipe))
    run_args, _, _, _ = parse(["--recipe", str(tmp_path / "my_recipe.yaml")])
    rewards = get_reward_funcs(run_args)
    assert rewards[1].__wrapped__ is sys.modules["my_rewards"].brevity  # under its deadline and its checks
    assert rewards[1](["a", "b"], completion_ids=[[1] * 10, [1] * 500]) == [-0.01, -0.5]


def test_a_registered_reward_with_parameters(registries, monkeypatch):
    exec(PYTHON[1], globals())
    run_args = SimpleNamespace(
        reward_funcs=["accuracy", "brevity"], reward_params={"brevity": {"scale": 500}}, reward_format="r1"
    )
    brevity = get_reward_funcs(run_args)[1]
    assert brevity(["x"], completion_ids=[[1] * 250]) == [-0.5]
    run_args.reward_params = {"brevity": {"scale": 0}}
    with pytest.raises(RecipeError, match="reward_params.brevity.scale=0.0 is not valid"):
        get_reward_funcs(run_args)


def test_a_selection_rule_is_one_decorated_function(registries):
    exec(PYTHON[2], globals())
    step_ids = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, -1, -1, -1, -1]])
    zero = select_zero_mask(step_ids, -torch.rand(2, 8), torch.tensor([True, False]), 0.5, selection="latest_first")
    assert zero.tolist() == [[False] * 4 + [True] * 4, [False, False, True, True] + [False] * 4]
    assert SASRule.from_settings({"sas_selection": "latest_first"}).selection == "latest_first"


def test_the_baseline_recipe_example_parses(registries, tmp_path, monkeypatch):
    exec(PYTHON[1], globals())  # the registered "brevity" reward it names
    monkeypatch.chdir(ROOT)
    recipe = tmp_path / "recipes" / "baselines" / "brevity.yaml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(YAML[1].replace("base: ../grpo_4k.yaml", f"base: {ROOT / 'recipes' / 'grpo_4k.yaml'}"))
    run_args, args, _, _ = parse(["--recipe", str(recipe), "--use_cpu", "true", "--bf16", "false"])
    assert run_args.reward_funcs == ["accuracy", "brevity"] and not args.sas_rule.enabled
