"""sas_trl.cli.sas_options: inspect and analyze-truncation apply exactly the rule training applies."""

from __future__ import annotations

import argparse

import pytest
import torch
from cli_helpers import CPU_OVERRIDES, RECIPES, ROOT

from sas_trl.cli.sas_options import add_sas_options, sas_rule_from
from sas_trl.core import SASRule
from sas_trl.errors import RecipeError
from sas_trl.evaluation.inspection import Rollout, inspect_rollouts
from sas_trl.tiny import build_tokenizer
from sas_trl.training.argv import unescape
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sas_options(parser, "recipe")
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_every_recipe_gives_inspect_the_rule_training_applies(recipe):
    flags = ["--sas_min_steps", "2", "--sas_delimiter", "\\n"]
    extra = [] if recipe.name == "tiny_cpu.yaml" else CPU_OVERRIDES
    for given in ([], flags):
        _, args, _, _ = parse(["--recipe", str(recipe), *extra, *given])
        rule, _ = sas_rule_from(options("--recipe", str(recipe), *given))
        assert rule == args.sas_rule
    assert rule.min_steps == 2 and rule.delimiter == "\n"


def test_a_recipes_min_steps_changes_inspects_masks(tmp_path):
    tok = build_tokenizer()
    text = "3 + 4 = 7\n\n7 + 5 = 12\n\n</think>\\boxed{12}"
    rollouts = [Rollout("Add 3, 4, 5.", (5, 6), tok(text)["input_ids"], True, False)]
    logps = [torch.linspace(-3, -0.1, len(rollouts[0].completion_ids))]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: " + str(ROOT / "recipes" / "tiny_cpu.yaml") + "\nsas_min_steps: 3\n")
    guarded, _ = sas_rule_from(options("--recipe", str(recipe)))
    assert guarded.min_steps == 3
    paper = inspect_rollouts(rollouts, logps, tok, SASRule())
    shown = inspect_rollouts(rollouts, logps, tok, guarded)
    assert paper.zero_if_correct.any() and not shown.zero_if_correct.any()  # 2 steps < 3: left to plain GRPO


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--sas_ratio", "x"], "--sas_ratio"),
        (["--sas_ratio", "nan"], "sas_ratio=nan"),
        (["--sas_min_steps", "0"], "sas_min_steps=0"),
        (["--sas_selection", "entropy"], "sas_selection='entropy'"),
        (["--sas_think_end", ""], "sas_think_end=''"),
    ],
)
def test_bad_flags_are_refused_by_name(argv, named):
    with pytest.raises(RecipeError, match=named.replace("[", r"\[")):
        sas_rule_from(options(*argv))


def test_bad_recipe_values_are_refused_naming_the_file(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("sas_ratio: high\n")
    with pytest.raises(RecipeError, match="bad.yaml"):
        sas_rule_from(options("--recipe", str(recipe)))


def test_flags_are_made_from_the_rule_and_escapes_are_read_safely():
    parser = argparse.ArgumentParser()
    add_sas_options(parser, "recipe")
    text = parser.format_help()
    for f in SASRule.fields():
        assert f"--sas_{f.name}" in text
    assert unescape("\\n\\n") == "\n\n" and unescape("§\\t§") == "§\t§" and unescape("a\\q\\\\n") == "a\\q\\n"


def test_recipe_values_out_of_range_are_refused_as_training_refuses_them(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: " + str(ROOT / "recipes" / "tiny_cpu.yaml") + "\nnum_generations: 0\n")
    with pytest.raises(RecipeError, match="num_generations") as inspect_error:
        sas_rule_from(options("--recipe", str(recipe)))
    with pytest.raises(RecipeError, match="num_generations") as train_error:
        parse(["--recipe", str(recipe)])
    assert str(inspect_error.value) == str(train_error.value)
