"""Absurd sizes: refused in one line naming the setting, before anything of that size is made (an unbounded
allocation, an overflow inside the dataset map, a RecursionError while reading, a dtype silently ignored)."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from cli_helpers import ROOT, trip_model_work

from sas_trl.cli import main
from sas_trl.compare.jobs import job_envs
from sas_trl.errors import UserError
from sas_trl.training.recipe_files import MAX_DEPTH, nesting

TINY = "recipes/tiny_cpu.yaml"
L1 = "recipes/baselines/tiny_cpu/l1_exact.yaml"
HUGE = 10**20


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"sas-trl {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def deep(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


# flags -> what the line says
TRAIN = {
    "an L1 budget beyond int64": (
        ["--recipe", L1, "--transform_params", json.dumps({"l1_budget": {"budget_range": [8, HUGE]}})],
        f"transform_params.l1_budget.budget_range: {HUGE} is too large",
    ),
    "a negative one too": (
        ["--recipe", L1, "--transform_params", json.dumps({"l1_budget": {"budget_range": [-HUGE, 8]}})],
        f"-{HUGE} is too large",
    ),
    "a reward parameter beyond int64": (
        ["--recipe", L1, "--reward_params", json.dumps({"l1": {"alpha": 10**400}})],
        "reward_params.l1.alpha: 1000000000",
    ),
    "max_steps beyond int64": (["--recipe", TINY, "--max_steps", str(HUGE)], f"max_steps={HUGE} is too large"),
    "seed beyond int64": (["--recipe", TINY, "--seed", str(HUGE)], f"seed={HUGE} is too large"),
    "10**12 built-in problems": (
        ["--recipe", TINY, "--builtin_num_problems", str(10**12)],
        "builtin_num_problems=1000000000000 is too large; allowed values: at most 10,000,000",
    ),
    "a million addends": (
        ["--recipe", TINY, "--builtin_max_terms", str(10**6)],
        "builtin_max_terms=1000000 is too large",
    ),
    "model_init_kwargs nested 5000 deep": (
        ["--recipe", TINY, "--model_init_kwargs", deep(5000)],
        "--model_init_kwargs: the value is nested 5000 levels deep, more than 32",
    ),
    "reward_params nested 5000 deep": (
        ["--recipe", TINY, "--reward_params", deep(5000, "{a: ", "}")],
        "--reward_params: the value is nested 5000 levels deep",
    ),
    "a flag nested 5000 deep with =": (
        ["--recipe", TINY, "--model_init_kwargs=" + deep(5000, '{"a": ', "}")],
        "--model_init_kwargs: the value is nested 5000 levels deep",
    ),
    "a dtype given as a number": (
        ["--recipe", TINY, "--model_init_kwargs", json.dumps({"dtype": 5})],
        "model_init_kwargs: dtype=5 is not a dtype name",
    ),
    "a torch_dtype given as a list": (
        ["--recipe", TINY, "--model_init_kwargs", json.dumps({"torch_dtype": ["float32"]})],
        "model_init_kwargs: torch_dtype=['float32'] is not a dtype name",
    ),
    "a dtype given as true": (
        ["--recipe", TINY, "--model_init_kwargs", json.dumps({"dtype": True})],
        "model_init_kwargs: dtype=True is not a dtype name",
    ),
}


@pytest.mark.parametrize("case", list(TRAIN))
def test_absurd_training_settings_are_one_line(tmp_path, capsys, monkeypatch, case):
    flags, says = TRAIN[case]
    trip_model_work(monkeypatch, extra=("load_train_dataset",))
    start = time.perf_counter()
    assert main(["train", *flags, "--output_dir", str(tmp_path / "out")]) == 2
    assert says in one_line(capsys, "train") and time.perf_counter() - start < 60
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("levels", [40, 1000, 5000])
@pytest.mark.parametrize("shape", ["lists", "mappings", "a key's value"])
def test_a_recipe_nested_too_deep_is_one_line(tmp_path, capsys, monkeypatch, levels, shape):
    trip_model_work(monkeypatch, extra=("load_train_dataset",))
    if shape == "lists":
        text = f"base: {ROOT / TINY}\nreward_params: {deep(levels)}\n"
    elif shape == "mappings":
        text = f"base: {ROOT / TINY}\nreward_params: {deep(levels, '{a: ', '}')}\n"
    else:
        text = f"base: {ROOT / TINY}\n" + "".join(" " * i + "k:\n" for i in range(levels)) + " " * levels + "k: 1\n"
    recipe = tmp_path / "deep.yaml"
    recipe.write_text(text)
    assert main(["train", "--recipe", str(recipe), "--output_dir", str(tmp_path / "out")]) == 2
    line = one_line(capsys, "train")
    assert str(recipe) in line and ("nested too deeply to read" in line or f"more than {MAX_DEPTH}" in line)


def test_a_study_nested_too_deep_is_one_line(tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(f"base_recipe: {TINY}\nseeds: {deep(3000)}\n")
    assert main(["compare", "--study", str(study)]) == 2
    assert str(study) in one_line(capsys, "compare")


def test_nesting_is_counted_without_recursion_and_survives_aliases():
    assert nesting({"a": [1, {"b": 2}]}) == 3 and nesting(1) == 0
    value: list = []
    value.append(value)  # what a YAML anchor inside itself makes
    assert nesting(value) == 1
    chain: list = []
    for _ in range(100_000):
        chain = [chain]
    assert nesting(chain) == 100_001


@pytest.mark.parametrize("jobs", [10**12, 10**6, 501])
def test_a_huge_jobs_is_refused_before_any_slot_is_made(jobs):
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"--jobs {jobs} is more runs at once than a study holds"):
        job_envs(jobs, gpus=[], cores=2)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("extra", [1, 10**12])
def test_more_jobs_than_the_study_has_runs_is_one_line(tmp_path, capsys, monkeypatch, extra):
    import sas_trl.compare

    def tripwire(*args, **kwargs):
        raise AssertionError("the study started")

    monkeypatch.setattr(sas_trl.compare, "run_study", tripwire)
    study = yaml.safe_load((ROOT / "recipes" / "studies" / "tiny_smoke.yaml").read_text())
    study["output_dir"] = str(tmp_path / "out")
    study["seeds"] = [0, 1, 2]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    runs = 3 * len(study["conditions"])
    assert main(["compare", "--study", str(path), "--jobs", str(runs + extra)]) == 2
    line = one_line(capsys, "compare")
    assert f"is more than the study's {runs} runs; pass --jobs {runs} or fewer" in line
    assert not (tmp_path / "out").exists()
