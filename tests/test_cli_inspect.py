"""`sas-trl inspect`: the README's command on the tiny model end to end; bad input fails fast, naming what is wrong."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest
from cli_helpers import ROOT, sas_trl

from sas_trl.cli import main

README = (ROOT / "README.md").read_text()


def readme_inspect_command() -> list[str]:
    section = README.split("## See what SAS does", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    line = next(c for c in block.splitlines() if c.startswith("sas-trl inspect"))
    return shlex.split(line.split("#")[0])[1:]


def test_readme_command_on_the_tiny_model(tmp_path, tiny_model_dir):
    args = readme_inspect_command()
    assert (
        args[args.index("--model") + 1] == "outputs/tiny_cpu"
    )  # what `sas-trl train --recipe recipes/tiny_cpu.yaml` saves
    args[args.index("--model") + 1] = str(tiny_model_dir)
    args[args.index("--output_dir") + 1] = str(tmp_path / "out")
    result = sas_trl(*args, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "sas-trl inspect: wrote" in result.stdout and "steps per rollout" in result.stdout
    assert re.search(r"^\[[ x~]\] +\d+ ", result.stdout, flags=re.M)  # a step line of the terminal rendering
    assert "\x1b[" not in result.stdout  # not a terminal: plain markers
    page = (tmp_path / "out" / "inspect.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'class="step' in page and "advantage set to 0" in page
    for name in ("inspect.png", "inspect.json", "inspect_samples.jsonl"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_prompt_and_recipe_settings(tmp_path, tiny_model_dir, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "base: " + str(ROOT / "recipes" / "tiny_cpu.yaml") + "\nsas_ratio: 0.5\nmax_completion_length: 12\n"
    )
    out = tmp_path / "out"
    code = main(
        ["inspect", "--model", str(tiny_model_dir), "--prompt", "Add 1, 2.", "--n", "2", "--recipe", str(recipe),
         "--sas_ranking", "std", "--output_dir", str(out), "--no_progress"]
    )  # fmt: skip
    assert code == 0
    import json

    results = json.loads((out / "inspect.json").read_text())
    assert results["settings"]["sas_ratio"] == 0.5 and results["settings"]["sas_ranking"] == "std"
    assert results["rollouts"] == 2 and results["unknown"] == 2  # a bare prompt has no verdict
    samples = [json.loads(line) for line in (out / "inspect_samples.jsonl").read_text().splitlines()]
    assert samples[0]["header"]["max_tokens"] == 12 and all(len(s["token_ids"]) <= 12 for s in samples[1:])


def test_bad_input_fails_in_seconds_naming_it(tmp_path, capsys):
    cases = [
        (["--model", str(tmp_path / "no-model"), "--prompt", "x"], "no-model"),
        (["--model", str(tmp_path), "--samples", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
        (["--model", str(tmp_path), "--prompt", "x", "--sas_strategy", "most"], "sas_strategy='most'"),
        (["--model", str(tmp_path), "--prompt", "x", "--recipe", str(tmp_path / "r.yaml")], "r.yaml"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"benchmark": "addition", "id": "0", "correct": 1.0}\n')
    cases.append((["--model", str(tmp_path), "--samples", str(bad)], "line 1: no completion; needs field 'token_ids'"))
    for args, name in cases:
        start = time.perf_counter()
        assert main(["inspect", *args]) == 2
        err = capsys.readouterr().err
        assert name in err and err.startswith("sas-trl inspect: error:") and err.count("\n") == 1, err
        assert time.perf_counter() - start < 10


@pytest.mark.parametrize(
    "line, name",
    [
        ("max_completion_length: abc", "max_completion_length: 'abc'"),
        ("max_completion_length: true", "max_completion_length: True"),
        ("max_completion_length: 12.5", "max_completion_length: 12.5"),
        ("max_completion_length: [64]", "max_completion_length: [64]"),
        ("max_completion_length: 0", "max_completion_length=0"),
        ("max_completion_length: -3", "max_completion_length=-3"),
        ("sas_ratio: high", "sas_ratio"),
        ("sas_strategy: [1]", "sas_strategy"),
        ("sas_think_end: 5", "sas_think_end"),
    ],
)
def test_recipe_values_of_the_wrong_type_or_range_fail_naming_them(tmp_path, capsys, monkeypatch, line, name):
    from sas_trl.evaluation import inspection

    def tripwire(*args, **kwargs):
        raise AssertionError("reached model work before the user error was reported")

    monkeypatch.setattr(inspection, "load_tokenizer", tripwire)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(line + "\n")
    args = ["inspect", "--model", str(tmp_path), "--prompt", "x", "--recipe", str(recipe)]
    assert main([*args, "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if "Warning" not in x and "warnings.warn(" not in x]
    assert len(lines) == 1 and lines[0].startswith("sas-trl inspect: error:") and name in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_samples_of_another_vocabulary_are_refused_before_the_model_loads(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    from sas_trl.evaluation import inspection

    def tripwire(*args, **kwargs):
        raise AssertionError("reached model work before the user error was reported")

    monkeypatch.setattr(inspection, "scoring_model", tripwire)
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"prompt": "Add 1, 2.", "token_ids": [5, 10**6]}) + "\n")
    assert main(["inspect", "--model", str(tiny_model_dir), "--samples", str(samples)]) == 2
    err = capsys.readouterr().err
    assert "line 1: token id 1000000 is not in the model's vocabulary" in err and err.count("\n") == 1, err
