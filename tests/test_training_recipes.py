"""sas_trl.training.recipes: every shipped recipe validates, the paper's values, overrides, env."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from cli_helpers import CPU_OVERRIDES, RECIPES, ROOT

from sas_trl.errors import RecipeError
from sas_trl.training.launch import launch_command
from sas_trl.training.recipe_files import dump_recipe, load_recipe
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def test_all_recipes_are_shipped():
    names = {r.relative_to(ROOT / "recipes").as_posix() for r in RECIPES}
    expected = {"deepscaler_4k.yaml", "grpo_4k.yaml", "deepscaler_4k_lora.yaml", "tiny_cpu.yaml"}
    expected |= {
        f"ablations/{n}.yaml"
        for n in (
            "only_correct",
            "random_selection",
            "token_level",
            "std_ranking",
            "release_counting",
            "failed_truncated_only",
        )
    }
    expected |= {f"ablations/ratio_0.{r}.yaml" for r in range(1, 10)}
    assert expected <= names
    for config in ("ddp", "zero2", "zero3", "fsdp"):
        assert (ROOT / "recipes" / "accelerate" / f"{config}.yaml").is_file()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_every_recipe_parses_and_validates(recipe):
    extra = [] if recipe.name == "tiny_cpu.yaml" else CPU_OVERRIDES
    run_args, args, model_args, resolved = parse(["--recipe", str(recipe), *extra])
    raw = load_recipe(recipe)
    for key, value in raw.items():  # every recipe value reached its field
        if key not in ("bf16", "use_cpu"):
            assert resolved[key] == value
            got = getattr(run_args, key, getattr(args, key, getattr(model_args, key, None)))
            if key != "report_to":  # normalised to a list by transformers
                assert getattr(got, "value", got) == value, key


def test_the_paper_recipe_has_the_papers_values():
    run_args, args, model_args, _ = parse(["--recipe", "recipes/deepscaler_4k.yaml", *CPU_OVERRIDES])
    assert model_args.model_name_or_path == "agentica-org/DeepScaleR-1.5B-Preview"
    assert run_args.dataset_name == "agentica-org/DeepScaleR-Preview-Dataset"
    assert (run_args.max_prompt_tokens, args.max_completion_length, args.num_generations) == (1024, 4096, 8)
    processes = 8  # the recipe's accelerate config
    assert yaml.safe_load(Path(run_args.accelerate_config).read_text())["num_processes"] == processes
    rollouts_per_optimizer_step = args.per_device_train_batch_size * processes * args.gradient_accumulation_steps
    rollouts_per_generation = args.per_device_train_batch_size * processes * args.steps_per_generation
    assert rollouts_per_generation == 128 * 8 and rollouts_per_generation // rollouts_per_optimizer_step == 2
    assert (args.learning_rate, args.lr_scheduler_type.value, args.weight_decay, args.max_grad_norm) == (
        1e-6,
        "constant",
        0.01,
        1.0,
    )
    assert (args.beta, args.temperature, args.max_steps, args.save_steps) == (0.001, 1.0, 1000, 100)
    assert (args.sas_ratio, args.sas_strategy, args.use_vllm) == (0.3, "both", True)


def test_baseline_and_ablations_change_only_their_keys():
    base = load_recipe(ROOT / "recipes" / "deepscaler_4k.yaml")
    naming = {"output_dir", "run_name"}
    assert {
        k
        for k in base.keys() | load_recipe(ROOT / "recipes" / "grpo_4k.yaml").keys()
        if base.get(k) != load_recipe(ROOT / "recipes" / "grpo_4k.yaml").get(k)
    } == naming | {"sas_strategy"}
    for path in sorted((ROOT / "recipes" / "ablations").glob("*.yaml")):
        recipe = load_recipe(path)
        changed = {k for k in base.keys() | recipe.keys() if base.get(k) != recipe.get(k)} - naming
        assert len(changed) <= 1 and changed <= {k for k in recipe if k.startswith("sas_")}, path.name


def test_flags_override_the_recipe_and_env_is_set(tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model_name_or_path: builtin:tiny\nsas_ratio: 0.5\nmax_steps: 7\nuse_cpu: true\n"
        "bf16: false\nenv:\n  SAS_TRL_TEST_VAR: hello\n"
    )
    monkeypatch.delenv("SAS_TRL_TEST_VAR", raising=False)
    _, args, _, resolved = parse(["--recipe", str(recipe), "--sas_ratio", "0.7", "--output_dir", str(tmp_path)])
    assert args.sas_ratio == 0.7  # the flag wins
    assert args.max_steps == 7  # the recipe still applies elsewhere
    assert resolved["sas_ratio"] == 0.7 and resolved["output_dir"] == str(tmp_path)
    assert os.environ["SAS_TRL_TEST_VAR"] == "hello"


def test_a_flag_can_switch_off_the_recipes_launch_config():
    run_args, *_ = parse(["--recipe", "recipes/deepscaler_4k.yaml", *CPU_OVERRIDES, "--accelerate_config", "null"])
    assert run_args.accelerate_config is None
    assert launch_command(run_args, [], cuda=True) is None  # one GPU: run in place


def test_the_recipe_names_are_importable_from_recipes():
    from sas_trl.training import arguments, recipe_files, recipes

    assert recipes.RunArguments is arguments.RunArguments and recipes.dataclass_types is arguments.dataclass_types
    assert recipes.load_recipe is recipe_files.load_recipe and recipes.dump_recipe is recipe_files.dump_recipe


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("l1_alpha", "reward_params: {l1: {alpha: ...}}"),
        ("l1_max_form", "reward_params: {l1: {max_form: ...}}"),
        ("l1_budget_range", "transform_params: {l1_budget: {budget_range: ...}}"),
        ("l1_max_fraction", "transform_params: {l1_budget: {max_fraction: ...}}"),
        ("lapo_percentiles", "reward_params: {lapo_band: {percentiles: ...}}"),
        ("lapo_margin", "reward_params: {lapo_band: {margin: ...}}"),
        ("lapo_band_weight", "reward_params: {lapo_band: {weight: ...}}"),
        ("lapo_target_weight", "reward_params: {lapo_target: {weight: ...}}"),
        ("lapo_sigma", "reward_params: {lapo_target: {sigma: ...}}"),
        ("lapo_targets", "transform_params: {lapo_target: {targets: ...}}"),
        ("overlong_cache", "reward_params: {dapo_overlong: {cache: ...}}"),
    ],
)
def test_an_old_flat_baseline_key_says_where_it_moved(tmp_path, old, new):
    recipe = tmp_path / "old.yaml"
    recipe.write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\n{old}: 1\n")
    with pytest.raises(RecipeError, match=re.escape(f"{old} moved to {new} (in {recipe}")):
        parse(["--recipe", str(recipe)])


def test_reward_and_transform_params_are_recipe_mappings_saved_as_written(tmp_path):
    recipe = tmp_path / "l1.yaml"
    recipe.write_text(
        f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nreward_funcs: [accuracy, l1]\nprompt_transforms: [l1_budget]\n"
        "reward_params: {l1: {alpha: 0.01}}\ntransform_params: {l1_budget: {budget_range: [8, 32]}}\n"
    )
    run_args, _, _, resolved = parse(["--recipe", str(recipe), "--reward_params", '{"l1": {"alpha": 0.02}}'])
    assert run_args.reward_params == resolved["reward_params"] == {"l1": {"alpha": 0.02}}  # a flag replaces it
    assert resolved["transform_params"] == {"l1_budget": {"budget_range": [8, 32]}}
    assert load_recipe_text(dump_recipe(resolved), tmp_path)["reward_params"] == {"l1": {"alpha": 0.02}}
    with pytest.raises(RecipeError, match=r"reward_params: \[1\] in .* is not a valid"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nreward_params: [1]\n")
        parse(["--recipe", str(bad)])


def load_recipe_text(text: str, folder) -> dict:
    path = folder / "saved.yaml"
    path.write_text(text)
    return load_recipe(path)
