"""A study's `eval:` and `trajectory.eval` keys: the ones the study owns (the model evaluated, where results go,
the baseline, overwrite) are refused by name, abbreviated too, and an unknown one with the nearest valid key,
when the study file is read: before anything runs or is written, in the study folder or anywhere else."""

from __future__ import annotations

import pytest
from cli_helpers import ROOT, SMOKE_EVAL, write_study

from sas_trl.cli import main
from sas_trl.cli.eval import flag_names
from sas_trl.compare import load_study
from sas_trl.compare.study import EVAL_OWNED, owned_eval_flag
from sas_trl.errors import UserError

EVAL = SMOKE_EVAL


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def study_file(tmp_path, eval_options=None, trajectory=None) -> str:
    return write_study(tmp_path, {"grpo": {"sas_strategy": "none"}}, (0,), eval_options, trajectory)


# key -> the owned flag it sets or names
OWNED = {
    "model": "model",
    "mod": "model",
    "mo": "model",
    "Model": "model",
    "--model": "model",
    "model_name_or_path": "model",
    "output_dir": "output_dir",
    "output": "output_dir",
    "out": "output_dir",
    "outputs": "output_dir",
    "output-dir": "output_dir",
    "eval_output_dir": "output_dir",
    "baseline": "baseline",
    "base": "baseline",
    "basel": "baseline",
    "overwrite": "overwrite",
    "over": "overwrite",
    "ov": "overwrite",
}


@pytest.mark.parametrize("section", ["eval", "trajectory.eval"])
@pytest.mark.parametrize("key", list(OWNED))
def test_a_key_the_study_owns_is_refused_by_name_and_nothing_is_written(tmp_path, capsys, key, section):
    elsewhere = tmp_path / "elsewhere"  # where the evaluation would have gone
    value = True if OWNED[key] == "overwrite" else str(elsewhere)
    if section == "eval":
        path = study_file(tmp_path, {**EVAL, key: value})
    else:
        path = study_file(tmp_path, trajectory={"every": 4, "eval": {key: value}})
    assert main(["compare", "--study", path]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{section} sets {key!r}" in err and "which the study sets for each run" in err, err
    if key != OWNED[key]:
        assert f"(it would name --{OWNED[key]})" in err
    assert not (tmp_path / "out").exists() and not elsewhere.exists()


def test_every_owned_key_is_an_eval_flag_and_a_prefix_shared_with_another_flag_is_not_taken_for_it():
    flags = flag_names()
    assert set(EVAL_OWNED) <= flags and {"benchmarks", "backend", "batch_size", "max_tokens"} <= flags
    assert owned_eval_flag("b", flags) is None  # baseline, benchmarks, backend, batch_size: not an owned flag's
    assert owned_eval_flag("m", flags) is None  # model, max_tokens
    assert owned_eval_flag("bas", flags) == "baseline" and owned_eval_flag("mod", flags) == "model"
    assert all(owned_eval_flag(f, flags) is None for f in flags - set(EVAL_OWNED))  # every other flag is free


@pytest.mark.parametrize("section", ["eval", "trajectory.eval"])
@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("benchmark", "did you mean 'benchmarks'"),
        ("max_token", "did you mean 'max_tokens'"),
        ("temp", "did you mean 'temperature'"),
        ("b", "did you mean 'backend' or 'batch_size' or 'benchmarks'?"),
        ("m", "did you mean 'max_tokens'? (options are never abbreviated)"),
        ("zzzz", "known options: addition_terms, backend"),
    ],
)
def test_an_unknown_eval_key_is_refused_with_the_nearest_when_the_study_is_read(tmp_path, capsys, key, hint, section):
    if section == "eval":
        path = study_file(tmp_path, {**EVAL, key: 1})
    else:
        path = study_file(tmp_path, trajectory={"every": 4, "eval": {key: 1}})
    assert main(["compare", "--study", path, "--print_commands"]) == 2
    err = capsys.readouterr().err
    assert f"{section}: unknown `sas-trl eval` option {key!r}" in err and hint in err, err
    assert not (tmp_path / "out").exists()


def test_load_study_alone_refuses_owned_keys_too(tmp_path):
    with pytest.raises(UserError, match=r"eval sets 'mod' \(it would name --model\)"):
        load_study(study_file(tmp_path, {**EVAL, "mod": "x"}))
    with pytest.raises(UserError, match="trajectory.eval sets 'output_dir'"):
        load_study(study_file(tmp_path, trajectory={"every": 4, "eval": {"output_dir": "x"}}))
    assert load_study(study_file(tmp_path, {**EVAL, "temperature": 0.5}), eval_flags=flag_names()).eval_options


@pytest.mark.parametrize("section", ["eval", "trajectory.eval"])
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("benchmarks", "--model=ELSEWHERE"),
        ("data_dir", "--output_dir=ELSEWHERE"),
        ("benchmarks", ["addition", "--output_dir=ELSEWHERE"]),
        ("source", " --baseline=ELSEWHERE"),
    ],
)
def test_a_value_that_is_a_flag_is_refused(tmp_path, capsys, key, value, section):
    elsewhere = str(tmp_path / "elsewhere")
    value = [v.replace("ELSEWHERE", elsewhere) for v in value] if isinstance(value, list) else value
    value = value.replace("ELSEWHERE", elsewhere) if isinstance(value, str) else value
    if section == "eval":
        path = study_file(tmp_path, {**EVAL, key: value})
    else:
        path = study_file(tmp_path, trajectory={"every": 4, "eval": {key: value}})
    assert main(["compare", "--study", path, "--print_commands"]) == 2
    err = capsys.readouterr().err
    assert f"{section}: {key}: value '" in err and "is a flag, not a value" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()
