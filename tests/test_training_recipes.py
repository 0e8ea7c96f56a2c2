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


TINY = "model_name_or_path: builtin:tiny\nuse_cpu: true\nbf16: false\n"


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_BIND_NOW", "ld_preload", "DYLD_INSERT_LIBRARIES",
     "DYLD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONBREAKPOINT",
     "BASH_ENV"],
)  # fmt: skip
def test_env_refuses_loader_variables_unless_the_user_asks(name, tmp_path, monkeypatch):
    monkeypatch.delenv("SAS_TRL_ALLOW_LOADER_ENV", raising=False)
    monkeypatch.setenv(name, "before")  # restored after the test
    (tmp_path / "base.yaml").write_text(f"{TINY}env:\n  A_VAR: '1'\n  {name}: /tmp/evil.so\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: base.yaml\nseed: 1\n")
    with pytest.raises(RecipeError) as err:
        parse(["--recipe", str(recipe)])
    message = str(err.value)
    assert f"{tmp_path / 'base.yaml'}, line 6: env sets {name}" in message  # the file and line that set it
    assert f"SAS_TRL_ALLOW_LOADER_ENV={name}" in message and "a recipe is code" in message
    assert ("put its folder on PYTHONPATH in the shell" in message) == (name == "PYTHONPATH")
    assert os.environ[name] == "before"  # refused before any variable is set

    monkeypatch.setenv("SAS_TRL_ALLOW_LOADER_ENV", f"OTHER_NAME, {name}")  # asked for: this one
    parse(["--recipe", str(recipe)])
    assert os.environ[name] == "/tmp/evil.so"
    monkeypatch.setenv(name, "before")
    monkeypatch.setenv("SAS_TRL_ALLOW_LOADER_ENV", "1")  # asked for: every such variable
    parse(["--recipe", str(recipe)])
    assert os.environ[name] == "/tmp/evil.so"


def test_asking_for_one_loader_variable_allows_no_other(tmp_path, monkeypatch):
    monkeypatch.setenv("SAS_TRL_ALLOW_LOADER_ENV", "LD_LIBRARY_PATH")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"{TINY}env:\n  LD_LIBRARY_PATH: /opt/lib\n  LD_PRELOAD: /tmp/evil.so\n")
    monkeypatch.setenv("LD_LIBRARY_PATH", "before")
    with pytest.raises(RecipeError, match="env sets LD_PRELOAD"):
        parse(["--recipe", str(recipe)])


@pytest.mark.parametrize("spelling", ["SAS_TRL_ALLOW_LOADER_ENV", "sas_trl_allow_loader_env"])
def test_a_recipe_cannot_ask_for_loader_variables_itself(spelling, tmp_path, monkeypatch):
    monkeypatch.delenv("SAS_TRL_ALLOW_LOADER_ENV", raising=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"{TINY}env:\n  {spelling}: '1'\n  LD_PRELOAD: /tmp/evil.so\n")
    with pytest.raises(RecipeError, match=f"env sets {spelling}, the switch .* only the environment you run"):
        parse(["--recipe", str(recipe)])
    assert "SAS_TRL_ALLOW_LOADER_ENV" not in os.environ


def test_a_study_condition_with_a_loader_variable_is_refused_by_name(tmp_path, monkeypatch):
    from sas_trl.compare.study import load_study
    from sas_trl.errors import UserError

    monkeypatch.delenv("SAS_TRL_ALLOW_LOADER_ENV", raising=False)
    study = tmp_path / "study.yaml"
    study.write_text(
        f"base_recipe: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nseeds: [0]\nreference: a\n"
        "conditions:\n  a: {}\n  b: {env: {LD_PRELOAD: /tmp/evil.so}}\n"
    )
    with pytest.raises(UserError, match="condition 'b'.*env sets LD_PRELOAD.*SAS_TRL_ALLOW_LOADER_ENV=LD_PRELOAD"):
        load_study(study)


def test_a_saved_recipe_with_redacted_credentials_reads_again(tmp_path, monkeypatch, capsys):
    """`resolved_recipe.yaml` says `<redacted>`: read with --recipe, the variable keeps the environment's value
    (a note when it has none) and the key stays unset; the resolved recipe says `<redacted>` again."""
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-from-the-shell-1")
    monkeypatch.delenv("OTHER_TOKEN", raising=False)
    recipe = tmp_path / "resolved_recipe.yaml"
    recipe.write_text(
        f"{TINY}dataset_name: builtin:addition\nhub_token: <redacted>\n"
        "env:\n  MY_SERVICE_API_KEY: <redacted>\n  OTHER_TOKEN: <redacted>\n"
    )
    _, args, _, resolved = parse(["--recipe", str(recipe)], this_machine=True)
    assert args.hub_token is None and os.environ["MY_SERVICE_API_KEY"] == "sk-from-the-shell-1"
    assert "OTHER_TOKEN" not in os.environ
    assert "env OTHER_TOKEN is <redacted> in the recipe and not set here" in capsys.readouterr().out
    assert resolved["env"] == {"MY_SERVICE_API_KEY": "<redacted>", "OTHER_TOKEN": "<redacted>"}
    assert resolved["hub_token"] == "<redacted>"


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
