"""`sas-trl train`: every user error before any model work (one line, exit 2, no traceback, nothing written).

Bad training data, a reward index beyond `reward_funcs`, and recipe values that would be silently
reinterpreted all fail while the recipe is parsed or the data is checked: before the built-in model's SFT
warm-up (minutes in the default recipe) and before any model is loaded. The model preparation is replaced by
a tripwire to prove it.
"""

from __future__ import annotations

import json
import time

import pytest
from cli_helpers import ROOT, sas_trl, trip_model_work

from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.training.recipes import parse

RECIPE = "recipes/tiny_cpu.yaml"  # 300 warm-up steps: minutes of model work if anything came after it
ROW = {"problem": "Add 1, 2.", "answer": "3"}


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


@pytest.fixture
def no_model_work(monkeypatch):
    trip_model_work(monkeypatch)


def one_line_error(capsys, command: str = "train") -> str:
    """The error line, checked to be the only thing on stderr but the libraries' import-time warnings."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "warm-up" not in captured.out, captured.err
    return the_error_line(captured.err, command)


def the_error_line(stderr: str, command: str = "train") -> str:
    # transformers prints FutureWarnings (two lines each) when TRL's config is built; nothing else may be there.
    lines = [line for line in stderr.splitlines() if "FutureWarning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"sas-trl {command}: error: "), stderr
    return lines[0]


def lines(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


DATA_ERRORS = {
    "no answer column": ("d.jsonl", lines({"problem": "Add 1, 2.", "final": "3"}), ["column 'answer' not found"]),
    "null problem": ("d.jsonl", lines(ROW, {"problem": None, "answer": "3"}), ["row 1", "'problem'", "None"]),
    "malformed JSON line": ("d.jsonl", lines(ROW, ROW, '{"problem": "Add 2, 2.", "answer": '), ["d.jsonl", "line 3"]),
    "CSV named .parquet": ("d.parquet", "problem,answer\nAdd 1, 2.,3\n", ["d.parquet", "not a parquet file"]),
    "empty file": ("d.jsonl", "", ["d.jsonl", "is empty"]),
}


@pytest.mark.parametrize("case", list(DATA_ERRORS))
def test_bad_training_data_fails_before_any_model_work(tmp_path, capsys, no_model_work, case):
    name, content, expected = DATA_ERRORS[case]
    data = tmp_path / name
    data.write_text(content)
    out = tmp_path / "out"
    code = main(["train", "--recipe", RECIPE, "--dataset_name", str(data), "--output_dir", str(out)])
    err = one_line_error(capsys)
    assert code == 2
    for piece in expected:
        assert piece in err, (piece, err)
    assert not out.exists()  # nothing written either


def test_an_unreachable_hub_dataset_fails_before_any_model_work(tmp_path, capsys, monkeypatch, no_model_work):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    code = main(["train", "--recipe", RECIPE, "--dataset_name", "nobody/no-such-set", "--output_dir", str(tmp_path)])
    err = one_line_error(capsys)
    assert code == 2 and "Hub dataset nobody/no-such-set" in err and "HF_HUB_OFFLINE" in err
    assert time.monotonic() - start < 30


def test_bad_data_in_a_real_process_ends_before_the_warm_up(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(lines(ROW, "{not json"))
    start = time.monotonic()
    result = sas_trl("train", "--recipe", RECIPE, "--dataset_name", str(data), "--output_dir", str(tmp_path / "o"))
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stderr[-2000:]
    assert the_error_line(result.stderr) == (
        f"sas-trl train: error: dataset file {data}: line 2: malformed JSON (Expecting property name enclosed in "
        "double quotes at column 2)"
    )
    assert "warm-up" not in result.stdout and not (tmp_path / "o").exists()
    assert seconds < 120  # imports only: the warm-up alone takes minutes


def test_a_correctness_index_beyond_the_rewards_fails_while_parsing(tmp_path, capsys, no_model_work):
    out = tmp_path / "out"
    code = main(["train", "--recipe", RECIPE, "--sas_correct_reward_index", "1", "--output_dir", str(out)])
    err = one_line_error(capsys)
    assert code == 2 and "sas_correct_reward_index=1" in err and "1 reward(s) (accuracy)" in err
    assert not out.exists()


def test_a_correctness_index_must_name_a_correctness_reward(monkeypatch):
    from sas_trl.rewards import registry

    monkeypatch.setitem(registry.REWARDS, "length", registry.RewardSpec(lambda *a: None, False, "a length term"))
    with pytest.raises(RecipeError, match="names reward 'length', which does not grade correctness"):
        parse(["--recipe", RECIPE, "--reward_funcs", "accuracy", "length", "--sas_correct_reward_index", "1"])
    _, args, _, _ = parse(["--recipe", RECIPE, "--reward_funcs", "accuracy", "length"])
    assert args.sas_correct_reward_index == 0


def test_recipe_given_with_an_equals_sign(tmp_path):
    run_args, args, _, resolved = parse([f"--recipe={RECIPE}", "--max_steps", "3"])
    assert run_args.dataset_name == "builtin:addition" and args.max_steps == 3 and resolved["sas_ratio"] == 0.3
    with pytest.raises(RecipeError, match="--recipe needs a file"):
        parse(["--recipe="])
    with pytest.raises(RecipeError, match="--recipe is given twice"):
        parse([f"--recipe={RECIPE}", "--recipe", RECIPE])


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("", ["--sas_think_end", ""]),
        ("", ["--sas_think_end="]),
        ("sas_think_end: ''\n", []),
        ("sas_think_end: '  '\n", []),
    ],
)
def test_an_empty_think_end_is_refused(tmp_path, capsys, text, flags):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\n{text}")
    code = main(["train", "--recipe", str(recipe), *flags, "--output_dir", str(tmp_path / "out")])
    err = one_line_error(capsys)
    assert code == 2 and "sas_think_end=" in err and "'none'" in err
    assert not (tmp_path / "out").exists()


def test_no_think_end_is_an_explicit_value(tmp_path):
    for flags in (["--sas_think_end", "none"], ["--sas_think_end", "null"]):
        _, args, _, resolved = parse(["--recipe", RECIPE, *flags])
        assert args.sas_think_end is None and resolved["sas_think_end"] is None
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\nsas_think_end: null\n")
    assert parse(["--recipe", str(recipe)])[1].sas_think_end is None
    assert parse(["--recipe", RECIPE])[1].sas_think_end == "</think>"  # the default is untouched


def test_max_steps_zero_is_refused(capsys):
    assert main(["train", "--recipe", RECIPE, "--max_steps", "0"]) == 2
    err = one_line_error(capsys)
    assert "max_steps=0" in err and "-1" in err
    assert parse(["--recipe", RECIPE, "--max_steps", "-1"])[1].max_steps == -1  # epochs: still allowed


def test_the_launching_process_checks_the_data_before_starting_others(tmp_path, capsys, no_model_work, monkeypatch):
    import subprocess

    def no_launch(*args, **kwargs):
        raise AssertionError("launched processes despite bad data")

    monkeypatch.setattr(subprocess, "call", no_launch)
    data = tmp_path / "d.jsonl"
    data.write_text(lines({"problem": "Add 1, 2."}))
    out = tmp_path / "out"
    code = main(
        ["train", "--recipe", RECIPE, "--num_processes", "2", "--dataset_name", str(data), "--output_dir", str(out)]
    )
    err = one_line_error(capsys)
    assert code == 2 and "column 'answer' not found" in err and not out.exists()


@pytest.mark.parametrize("where", ["itself", "a parent"])
def test_an_output_dir_that_is_a_file_is_refused_by_name(tmp_path, capsys, no_model_work, where):
    taken = tmp_path / "taken"
    taken.write_text("a file of the user's")
    out = taken if where == "itself" else taken / "run"
    assert main(["train", "--recipe", RECIPE, "--output_dir", str(out)]) == 2
    err = one_line_error(capsys)
    assert f"output_dir {str(out)!r}" in err and "existing file, not a folder" in err
    assert taken.read_text() == "a file of the user's"


# Settings TRL, transformers, torch or numpy refuse only once training starts (after minutes of warm-up), or
# accept and then misuse: each is refused while the recipe is parsed, naming the field.
LATE_SETTINGS = {
    "max_completion_length 0": (["--max_completion_length", "0"], "max_completion_length=0", "integer >= 1"),
    "temperature 0": (["--temperature", "0"], "temperature=0.0", "a number > 0"),
    "temperature NaN": (["--temperature", "nan"], "temperature=nan", "finite"),
    "top_p 0": (["--top_p", "0"], "top_p=0.0", "> 0 and <= 1"),
    "top_k negative": (["--top_k", "-1"], "top_k=-1", ">= 0"),
    "seed negative": (["--seed", "-1"], "seed=-1", "<= 4294967295"),
    "seed past numpy's range": (["--seed", str(2**32)], "seed=4294967296", "numpy's seed range"),
    "max_steps -3": (["--max_steps", "-3"], "max_steps=-3", "or -1"),
    "gradient_accumulation_steps 0": (["--gradient_accumulation_steps", "0"], "gradient_accumulation_steps=0", ">= 1"),
    "batch size 0": (["--per_device_train_batch_size", "0"], "per_device_train_batch_size=0", ">= 1"),
    "num_generations 0": (["--num_generations", "0"], "num_generations=0", ">= 2"),
    "num_iterations 0": (["--num_iterations", "0"], "num_iterations=0", ">= 1"),
    "learning_rate negative": (["--learning_rate=-1e-5"], "learning_rate=-1e-05", ">= 0"),
    "adam_beta2 1": (["--adam_beta2", "1.0"], "adam_beta2=1.0", "< 1"),
    "max_grad_norm negative": (["--max_grad_norm", "-1"], "max_grad_norm=-1.0", ">= 0"),
    "save_steps 0": (["--save_steps", "0"], "save_steps=0.0", "> 0"),
    "epsilon negative": (["--epsilon", "-0.2"], "epsilon=-0.2", ">= 0"),
    "beta negative": (["--beta", "-0.1"], "beta=-0.1", ">= 0"),
    "num_train_epochs 0": (["--max_steps", "-1", "--num_train_epochs", "0"], "num_train_epochs=0.0", "> 0"),
    "report_to unknown": (["--report_to", "tensorbord"], "report_to='tensorbord'", "'tensorboard'"),
    "scale_rewards unknown": (["--scale_rewards", "std"], "scale_rewards='std'", "'group'"),
    "vllm_mode unknown": (["--vllm_mode", "remote"], "vllm_mode='remote'", "'colocate'"),
    "reward_weights length": (["--reward_weights", "1.0", "0.5"], "reward_weights=[1.0, 0.5]", "one weight per"),
    "model_init_kwargs typo": (
        ["--model_init_kwargs", '{"attn_implementaton": "eager"}'],
        "unknown key 'attn_implementaton'",
        "did you mean 'attn_implementation'",
    ),
    "model_init_kwargs not JSON": (["--model_init_kwargs", "{dtype"], "model_init_kwargs:", "JSON mapping"),
    "pad_to_multiple_of text": (["--pad_to_multiple_of", "eight"], "pad_to_multiple_of='eight'", "'auto'"),
}


@pytest.mark.parametrize("case", list(LATE_SETTINGS))
def test_settings_refused_after_the_warm_up_are_refused_while_parsing(tmp_path, capsys, no_model_work, case):
    flags, named, allowed = LATE_SETTINGS[case]
    out = tmp_path / "out"
    code = main(["train", "--recipe", RECIPE, *flags, "--output_dir", str(out)])
    err = one_line_error(capsys)
    assert code == 2 and named in err and allowed in err, err
    assert not out.exists()  # and the tripwire shows no model work started


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("temperature: 0.0\n", "temperature=0.0"),
        ("optim: adam\n", "optim='adam'"),  # a recipe value skips argparse's choices
        ("gradient_accumulation_steps: 0\n", "gradient_accumulation_steps=0"),
        ("sas_ratio: 1.5\n", "sas_ratio=1.5"),  # raised by SASConfig itself
        ("num_generations: 3\n", "num_generations (3)"),  # raised by TRL's GRPOConfig
    ],
)
def test_a_bad_value_in_a_base_recipe_names_that_file_and_line(tmp_path, capsys, no_model_work, text, named):
    (tmp_path / "common").mkdir()
    base = tmp_path / "common" / "base.yaml"
    base.write_text(f"base: {ROOT / RECIPE}\n# a comment line\n{text}")
    recipe = tmp_path / "run.yaml"
    recipe.write_text("base: common/base.yaml\nlogging_steps: 5\n")
    code = main(["train", "--recipe", str(recipe), "--output_dir", str(tmp_path / "out")])
    err = one_line_error(capsys)
    assert code == 2 and named in err and f"(set in {base}, line 3)" in err, err
    assert str(recipe) not in err


def test_a_value_set_on_the_command_line_is_not_blamed_on_the_recipe(tmp_path, capsys):
    recipe = tmp_path / "run.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\ntemperature: 0.7\n")
    assert main(["train", "--recipe", str(recipe), "--temperature", "0"]) == 2
    err = one_line_error(capsys)
    assert "temperature=0.0" in err and "set in" not in err


RECIPE_FILE_ERRORS = {
    "a key twice": ("seed: 1\nseed: 2\n", "key 'seed' appears twice (lines 2 and 3)"),
    "an env key with '='": ("env:\n  A=B: x\n", "env key 'A=B' contains '='"),
    "an env value with NUL": ('env:\n  A: "x\\0y"\n', "env 'A' has a NUL character"),
    "an empty env key": ("env:\n  '': x\n", "env key '' is not a variable name"),
}


@pytest.mark.parametrize("case", list(RECIPE_FILE_ERRORS))
def test_recipe_files_the_os_or_yaml_would_misread_fail_in_one_line(tmp_path, capsys, no_model_work, case):
    text, expected = RECIPE_FILE_ERRORS[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\n{text}")
    code = main(["train", "--recipe", str(recipe), "--output_dir", str(tmp_path / "out")])
    err = one_line_error(capsys)
    assert code == 2 and str(recipe) in err and expected in err, err
    assert not (tmp_path / "out").exists()


def test_a_deep_include_chain_fails_in_one_line(tmp_path, capsys, no_model_work):
    for index in range(60):
        (tmp_path / f"r{index}.yaml").write_text(f"base: r{index + 1}.yaml\n")
    (tmp_path / "r60.yaml").write_text(f"base: {ROOT / RECIPE}\n")
    assert main(["train", "--recipe", str(tmp_path / "r0.yaml")]) == 2
    assert "includes deep" in one_line_error(capsys)
