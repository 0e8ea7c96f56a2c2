"""sas_trl.transforms: the baselines' prompt changes, as each method's data preparation makes them."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from datasets import Dataset

from sas_trl.errors import RecipeError
from sas_trl.task import grpo_dataset
from sas_trl.training.recipes import RunArguments
from sas_trl.transforms import (
    apply_transforms,
    draw_l1_budgets,
    lapo_target,
    load_lapo_targets,
    save_lapo_targets,
    thinkprune_system_prompt,
)

SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."


def dataset(*problems: str) -> Dataset:
    return Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": p + SUFFIX}] for p in problems], "answer": ["1"] * len(problems)}
    )


def stage1(folder) -> dict:
    return {"lapo_target": {"targets": str(folder)}}


def training(**kwargs):
    return SimpleNamespace(**{"seed": 0, "max_completion_length": 4096, **kwargs})


def test_l1_budgets_are_drawn_as_l1_draws_them():
    rng = random.Random(3)
    expected = []
    for _ in range(5):
        n = rng.randint(100, 4000)
        expected.append(-n if rng.random() < 0.5 else n)
    assert draw_l1_budgets(5, 100, 4000, 0.5, seed=3) == expected
    exact = draw_l1_budgets(1000, 100, 4000, 0.0, seed=0)
    assert min(exact) >= 100 and max(exact) <= 4000 and len(set(exact)) > 500
    mixed = draw_l1_budgets(1000, 100, 4000, 0.5, seed=0)
    assert 400 < sum(b < 0 for b in mixed) < 600  # about half are Max prompts


def test_l1_budget_suffix_and_column():
    run_args = RunArguments(
        prompt_transforms=["l1_budget"], transform_params={"l1_budget": {"budget_range": [7, 7], "max_fraction": 0.0}}
    )
    out = apply_transforms(dataset("Add 1, 2."), run_args, training())
    assert out[0]["prompt"] == [{"role": "user", "content": "Add 1, 2." + SUFFIX + " Think for 7 tokens."}]
    assert out[0]["l1_budget"] == 7 and out[0]["answer"] == "1"
    run_args = RunArguments(
        prompt_transforms=["l1_budget"], transform_params={"l1_budget": {"budget_range": [7, 7], "max_fraction": 1}}
    )
    out = apply_transforms(dataset("Add 1, 2."), run_args, training())
    assert out[0]["prompt"][0]["content"].endswith("\\boxed{}. Think for maximum 7 tokens.")
    assert out[0]["l1_budget"] == -7


def test_thinkprune_system_prompt_names_the_stage_cap():
    run_args = RunArguments(prompt_transforms=["thinkprune_system"])
    out = apply_transforms(dataset("Add 1, 2."), run_args, training(max_completion_length=3072))
    system, user = out[0]["prompt"]
    assert system["role"] == "system" and user == {"role": "user", "content": "Add 1, 2." + SUFFIX}
    assert system["content"] == thinkprune_system_prompt(3072)
    assert system["content"].startswith("A conversation between User and Assistant.")
    assert system["content"].endswith(
        "</think><answer> answer here</answer>. The output of the assistant should be within 3072 tokens."
    )


def test_lapo_targets_round_trip_and_the_stage2_sentence(tmp_path):
    save_lapo_targets({"Add 1, 2." + SUFFIX: 250.5, "Add 3, 4." + SUFFIX: 0.0}, tmp_path / "lapo_targets.json")
    run_args = RunArguments(prompt_transforms=["lapo_target"], transform_params=stage1(tmp_path))
    out = apply_transforms(dataset("Add 1, 2.", "Add 3, 4.", "Add 5, 6."), run_args, training())
    assert out[0]["prompt"][0]["content"] == "Add 1, 2." + SUFFIX + " I will answer the question with 250 tokens."
    assert out["lapo_target"] == [250, None, None]  # 0 (no correct rollout last time) and absent: no target
    assert out[1]["prompt"][0]["content"] == "Add 3, 4." + SUFFIX  # no sentence without a target
    assert lapo_target({"x": 99.9}, "x") == 99


def test_lapo_stage2_fails_early_without_matching_targets(tmp_path):
    with pytest.raises(RecipeError, match="transform_params.lapo_target.targets: .*lapo_targets.json not found"):
        RunArguments(prompt_transforms=["lapo_target"], transform_params=stage1(tmp_path))
    (tmp_path / "lapo_targets.json").write_text("[1, 2]")
    with pytest.raises(RecipeError, match="must map each prompt"):
        load_lapo_targets(tmp_path)
    (tmp_path / "lapo_targets.json").write_text(json.dumps({"another prompt": 12}))
    run_args = RunArguments(prompt_transforms=["lapo_target"], transform_params=stage1(tmp_path))
    with pytest.raises(RecipeError, match="none of the 1 prompts has a stage-1 target"):
        apply_transforms(dataset("Add 1, 2."), run_args, training())


def test_transforms_compose_on_the_builtin_task():
    run_args = RunArguments(
        prompt_transforms=["thinkprune_system", "l1_budget"], transform_params={"l1_budget": {"budget_range": [5, 5]}}
    )
    out = apply_transforms(grpo_dataset(3, seed=0), run_args, training(max_completion_length=32))
    for row in out:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["prompt"][1]["content"].endswith(SUFFIX + " Think for 5 tokens.")
    assert RunArguments().prompt_transforms == []  # nothing changes unless a recipe asks


def test_transform_params_are_checked_naming_the_key(tmp_path):
    def build(params, transforms=("l1_budget",)):
        return RunArguments(prompt_transforms=list(transforms), transform_params=params)

    with pytest.raises(RecipeError, match=r"transform_params.l1_budget.budget_range=\[500, 100\] is not valid"):
        build({"l1_budget": {"budget_range": [500, 100]}})
    with pytest.raises(
        RecipeError, match=r"transform_params.l1_budget.max_fraction=1.5 is not valid; allowed.*\[0, 1\]"
    ):
        build({"l1_budget": {"max_fraction": 1.5}})
    with pytest.raises(RecipeError, match=r"transform_params.l1_budget.budget_range: 'wide' is not a valid tuple"):
        build({"l1_budget": {"budget_range": "wide"}})
    with pytest.raises(RecipeError, match=r"unknown parameter transform_params.l1_budget.max_fractoin; did you mean "):
        build({"l1_budget": {"max_fractoin": 0.5}})
    with pytest.raises(
        RecipeError, match=r"transform_params: unknown transform 'l1_budgets'; did you mean 'l1_budget'"
    ):
        build({"l1_budgets": {}})
    with pytest.raises(RecipeError, match="transform_params.l1_budget is set but prompt_transforms does not list"):
        build({"l1_budget": {"max_fraction": 0.5}}, transforms=())
    with pytest.raises(RecipeError, match="transform_params.lapo_target.targets is required"):
        build({}, transforms=["lapo_target"])
    with pytest.raises(
        RecipeError, match="unknown parameter transform_params.thinkprune_system.cap .parameters: none"
    ):
        build({"thinkprune_system": {"cap": 3}}, transforms=["thinkprune_system"])
    # A flag's YAML/JSON text is parsed into the same mapping.
    assert build('{"l1_budget": {"max_fraction": 0.5}}').transform_params == {"l1_budget": {"max_fraction": 0.5}}


def test_a_transform_registers_once_and_declares_its_column():
    from sas_trl.transforms import TRANSFORMS, register_transform

    assert (
        TRANSFORMS["l1_budget"].adds_column == "l1_budget" and TRANSFORMS["lapo_target"].adds_column == "lapo_target"
    )
    with pytest.raises(ValueError, match="'l1_budget' is registered twice"):
        register_transform("l1_budget")(lambda dataset, params, context: dataset)
