"""Each condition of a study is its own: its `env:` reaches only its own runs' processes (never the compare
process, where every later condition would inherit it), and what this machine cannot run is found for every
condition before the first run, in one message."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.cli import main
from sas_trl.compare import load_study, runner
from sas_trl.training import warmup

NAMES = ("SAS_TEST_ENV_BASE", "SAS_TEST_ENV_A", "SAS_TEST_ENV_B", "SAS_TEST_ENV_SHARED")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def study_file(tmp_path, conditions, trajectory=None) -> str:
    base = tmp_path / "base.yaml"
    base.write_text(
        f"base: {ROOT / 'recipes' / 'studies' / 'tiny_smoke_base.yaml'}\nenv:\n  SAS_TEST_ENV_BASE: base\n"
    )
    study = {
        "base_recipe": str(base),
        "output_dir": str(tmp_path / "out"),
        "seeds": [0, 1],
        "reference": next(iter(conditions)),
        "conditions": conditions,
        "eval": {"benchmarks": "addition", "n": 2, "max_tokens": 16},
    }
    if trajectory:
        study["trajectory"] = trajectory
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)


TWO = {
    "a": {"sas_strategy": "none", "env": {"SAS_TEST_ENV_A": "only a", "SAS_TEST_ENV_SHARED": "a's"}},
    "b": {"sas_ratio": 0.3, "env": {"SAS_TEST_ENV_B": "only b"}},
}


def ours(environment) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k in NAMES}


def test_reading_a_study_leaves_the_environment_as_it_was(tmp_path):
    before = dict(os.environ)
    load_study(study_file(tmp_path, TWO, trajectory={"every": 4}))  # every condition parsed, twice
    assert dict(os.environ) == before


def test_each_run_gets_its_own_conditions_env_and_no_other(tmp_path, monkeypatch):
    """Two conditions of different `env:`: every process of a run (training, evaluation, trajectory) sees the
    base's and its own condition's variables only; the compare process none of them, before and after."""
    seen: list[tuple[str, dict[str, str]]] = []

    def fake_prepare(run_args, model_args, args, state):
        seen.append(("prepare", ours(os.environ)))  # the base recipe builds the starting model: its env applies
        return str(tmp_path / "model")

    def fake_run(command, log, what, env=None):
        seen.append((what, ours(os.environ if env is None else env)))
        assert ours(os.environ) == {"SAS_TEST_ENV_SHARED": "outer"}, f"{what}: the compare process holds an env:"
        folder = log.parent
        if command[3] == "train":
            (folder / "run_info.json").write_text("{}")
            for step in (4, 8, 12):
                (folder / f"checkpoint-{step}").mkdir(exist_ok=True)
                (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "eval_results.json").write_text("{}")

    monkeypatch.setattr(warmup, "prepare_model", fake_prepare)
    monkeypatch.setattr(runner, "_run_logged", fake_run)
    monkeypatch.setenv("SAS_TEST_ENV_SHARED", "outer")  # set where compare runs; condition a changes it
    study = load_study(study_file(tmp_path, TWO, trajectory={"every": 4}))
    runner.run_study(study, echo=lambda line: None)
    assert ours(os.environ) == {"SAS_TEST_ENV_SHARED": "outer"}
    base = {"SAS_TEST_ENV_BASE": "base", "SAS_TEST_ENV_SHARED": "outer"}
    assert seen[0] == ("prepare", base)
    whats = {what: env for what, env in seen[1:]}
    assert whats["evaluating the starting model"] == base
    assert whats["evaluating the starting model (step 0)"] == base
    for seed in (0, 1):
        a = {"SAS_TEST_ENV_A": "only a", "SAS_TEST_ENV_SHARED": "a's"}
        for condition, own in (("a", a), ("b", {"SAS_TEST_ENV_B": "only b"})):
            name = f"{condition} seed {seed}"
            for what in (f"training {name}", f"evaluating {name}", f"evaluating {name} at step 8"):
                assert whats[what] == {**base, **own}, what
    assert len(seen) == 1 + 2 + 4 * (2 + 3)  # prepare, two starting-model evaluations, 4 runs x (train, eval, 3)
    recipe = yaml.safe_load((tmp_path / "out" / "runs" / "b" / "seed0" / "study_recipe.yaml").read_text())
    assert recipe["env"] == {"SAS_TEST_ENV_B": "only b"}  # what `sas-trl train` of that run applies itself


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))


def test_every_condition_is_preflighted_before_the_first_run_and_all_problems_are_named(
    tmp_path, capsys, monkeypatch, no_wandb_login
):
    def tripwire(*args, **kwargs):
        raise AssertionError("reached the starting model or a run before the preflight's refusal")

    monkeypatch.setattr(runner, "prepare_starting_model", tripwire)
    monkeypatch.setattr(runner, "_run_logged", tripwire)
    conditions = {
        "logged_in": {"report_to": "wandb", "env": {"WANDB_API_KEY": "x" * 40}},  # its own env has the key
        "offline": {"report_to": "wandb", "env": {"WANDB_MODE": "offline"}},
        "no_login": {"report_to": "wandb"},
        "vllm": {"use_vllm": True},
        "plain": {"sas_strategy": "none"},
    }
    path = study_file(tmp_path, conditions)
    assert main(["compare", "--study", path]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "2 of 5 condition(s) cannot train on this machine; nothing was run" in err, err
    assert "condition 'no_login': report_to wandb: no wandb credentials" in err
    assert re.search(r"condition 'vllm': (this recipe is written for GPUs|use_vllm: true needs vLLM)", err)
    assert "'logged_in'" not in err and "'offline'" not in err and "'plain'" not in err
    assert "re-run" not in err.lower()
    assert not (tmp_path / "out" / "base_eval").exists() and not (tmp_path / "out" / "runs").exists()
    assert "WANDB_API_KEY" not in os.environ  # the condition's key was its own


def test_print_commands_and_report_only_do_not_preflight(tmp_path, capsys, no_wandb_login):
    """A study written for another machine (a cluster) still prints its commands and reports here."""
    path = study_file(tmp_path, {"a": {"report_to": "wandb"}})
    assert main(["compare", "--study", path, "--print_commands"]) == 0
    assert main(["compare", "--study", path, "--report_only"]) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["missing"] == ["a seed 0", "a seed 1"]
