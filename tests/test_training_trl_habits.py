"""TRL users' habits: `--config FILE`, accelerate configs by name, TRL's script keys, and a recipe of TRL keys only
read the same by `trl grpo`'s own parser (docs/trl_recipes.md)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import QUICK, ROOT

from sas_trl import data
from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.training.datasets import load_eval_dataset, load_train_dataset
from sas_trl.training.packaged import PACKAGED
from sas_trl.training.recipes import parse

TINY = "recipes/tiny_cpu.yaml"
CPU = ["--use_cpu", "true", "--bf16", "false"]


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_config_is_recipe():
    by_config = parse(["--config", TINY])
    by_recipe = parse(["--recipe", TINY])
    assert by_config[3] == by_recipe[3] and by_config[1].max_completion_length == 32
    assert parse([f"--config={TINY}"])[3] == by_recipe[3]
    with pytest.raises(RecipeError, match="--config and --recipe both name a recipe; pass one recipe"):
        parse(["--recipe", TINY, "--config", TINY])
    with pytest.raises(RecipeError, match="--config needs a file"):
        parse(["--config", "--max_steps", "3"])


def test_config_trains_and_evaluates_on_the_test_split(tmp_path):
    # `trl grpo --config` habits: the recipe by --config, an eval split evaluated when eval_strategy is set
    out = tmp_path / "run"
    argv = ["train", "--config", TINY, *QUICK, "--eval_strategy", "steps", "--eval_steps", "2"]
    assert main([*argv, "--per_device_eval_batch_size", "8", "--output_dir", str(out)]) == 0
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert json.loads((out / "run_info.json").read_text())["global_step"] == 2
    assert "eval_reward" in metrics and "eval_sas/zeroed_frac" in metrics


def test_accelerate_config_by_name():
    run_args, *_ = parse(["--recipe", "deepscaler_4k", *CPU, "--accelerate_config", "zero3"])
    assert run_args.accelerate_config == str(PACKAGED / "accelerate" / "zero3.yaml")
    run_args, *_ = parse(["--recipe", "deepscaler_4k", *CPU, "--accelerate_config", "multi_gpu"])
    assert run_args.accelerate_config.endswith("trl/accelerate_configs/multi_gpu.yaml")  # TRL's own name
    with pytest.raises(RecipeError, match=r"accelerate_config 'zero4' is neither .*names: ddp, fsdp, .*zero3"):
        parse(["--recipe", "deepscaler_4k", *CPU, "--accelerate_config", "zero4"])


def test_trls_dataset_keys(monkeypatch, tmp_path):
    calls = []

    def fake_table(source, split="train", config=None):
        calls.append((str(source), split, config))
        return data.Dataset.from_list([{"problem": "1+1?", "answer": "2"}])

    monkeypatch.setattr(data, "load_table", fake_table)
    base = ["--recipe", TINY, "--dataset_name", "org/set", "--dataset_config", "main"]
    run_args, args, *_ = parse([*base, "--dataset_train_split", "hard"])
    assert run_args.dataset_split == "hard"  # TRL's name for dataset_split
    load_train_dataset(run_args, args)
    assert calls == [("org/set", "hard", "main")]
    assert load_eval_dataset(run_args, args) is None  # eval_strategy "no": no eval set, as TRL's script
    run_args, args, *_ = parse([*base, "--eval_strategy", "steps", "--dataset_test_split", "dev"])
    assert len(load_eval_dataset(run_args, args)) == 1 and calls[-1] == ("org/set", "dev", "main")
    with pytest.raises(RecipeError, match="dataset_train_split='a' and dataset_split='b' name the same setting"):
        parse([*base, "--dataset_train_split", "a", "--dataset_split", "b"])
    run_args, args, *_ = parse(["--recipe", TINY, "--eval_strategy", "steps"])
    assert len(load_eval_dataset(run_args, args)) == 256  # the built-in task: other problems
    local = ["--recipe", TINY, "--dataset_name", "tests/fixtures/deepscaler.jsonl", "--eval_strategy", "steps"]
    run_args, args, *_ = parse(local)
    with pytest.raises(RecipeError, match="is a local file .*no splits"):
        load_eval_dataset(run_args, args)


def test_trls_keys_sas_trl_does_not_take_say_so(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / TINY}\ndatasets: []\n")
    with pytest.raises(RecipeError, match=r"'datasets' \(in .*r.yaml.*\) is a key of TRL's own scripts .*mixtures"):
        parse(["--recipe", str(recipe)])


def test_a_recipe_of_trl_keys_reads_the_same_in_trl_grpo(tmp_path, monkeypatch):
    from trl.scripts.grpo import make_parser

    (tmp_path / "habit_rewards.py").write_text(
        "def correct(completions, **kwargs):\n    return [0.0] * len(completions)\n\n\n"
        "correct.sas_correctness = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tmp_path / "trl.yaml"
    recipe.write_text(
        "model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\n"
        "dataset_name: org/math\n"
        "dataset_config: main\n"
        "dataset_train_split: train\n"
        "dataset_test_split: validation\n"
        "reward_funcs: [habit_rewards.correct]\n"
        "learning_rate: 1.0e-6\n"
        "max_completion_length: 512\n"
        "num_generations: 4\n"
        "per_device_train_batch_size: 4\n"
        "use_cpu: true\n"
        "bf16: false\n"
        "env:\n"
        "  TOKENIZERS_PARALLELISM: 'false'\n"
    )
    script, trl_args, trl_model, *_ = make_parser().parse_args_and_config(["--config", str(recipe)])
    run_args, args, model_args, _ = parse(["--config", str(recipe)])
    assert model_args.model_name_or_path == trl_model.model_name_or_path
    assert (run_args.dataset_name, run_args.dataset_config) == (script.dataset_name, script.dataset_config)
    assert (run_args.dataset_split, run_args.dataset_test_split) == ("train", script.dataset_test_split)
    assert run_args.reward_funcs == script.reward_funcs
    for key in ("learning_rate", "max_completion_length", "num_generations", "per_device_train_batch_size", "bf16"):
        assert getattr(args, key) == getattr(trl_args, key), key
