"""`sas-trl`: the command, its help, user errors as one line with exit 2, `push`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT, sas_trl

from sas_trl import __version__
from sas_trl.cli import main


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--sas_ratio" in out and "--model_name_or_path" in out and "--dataset_name" in out
    # A default that prints as blank space is shown escaped, as in inspect's and analyze-truncation's help.
    delimiter = " ".join(out[out.index("--sas_delimiter SAS_DELIMITER") :].split("--sas_think_end")[0].split())
    assert delimiter.endswith("(default: '\\n\\n')") and "(default: )" not in out, delimiter


def test_train_help_lists_sas_then_run_then_model_then_trl_settings(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert [h.split(" (")[0] for h in headers] == [
        "SAS settings",
        "run settings",
        "model settings",
        "training settings",
        "command options:",
    ]
    sas, run, model, trl, command = (out.index(h) for h in headers)
    assert command < out.index("  --dry_run ") and command < out.index("  --config ")  # the command's own flags last
    assert sas < out.index("--sas_ratio") < out.index("--sas_correct_threshold") < run  # every sas_* field first
    assert run < out.index("--dataset_name") < out.index("--reward_params") < model
    assert model < out.index("--model_name_or_path") < trl < out.index("--learning_rate") < out.index("--beta ")
    assert out.count("--sas_ratio SAS_RATIO") == 1 and out.index("--sas_ratio") < 200  # at the top, once


def test_console_script_is_installed():
    result = subprocess.run([Path(sys.executable).parent / "sas-trl", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"sas-trl {__version__}"


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


BASE = "model_name_or_path: builtin:tiny\ndataset_name: builtin:addition\nuse_cpu: true\nbf16: false\n"


@pytest.mark.parametrize(
    ("text", "flags", "expected"),
    [
        (BASE + "sas_ration: 0.3\n", [], ["unknown key 'sas_ration'", "did you mean 'sas_ratio'"]),
        (BASE + "learnig_rate: 0.1\n", [], ["'learnig_rate'", "'learning_rate'"]),
        (BASE, ["--sas_ration", "0.3"], ["unknown key 'sas_ration'", "command line", "'sas_ratio'"]),
        (BASE + "sas_ratio: high\n", [], ["sas_ratio", "'high'", "float"]),
        (BASE + "max_steps: 1.5\n", [], ["max_steps", "1.5", "int"]),
        (BASE + "use_vllm: maybe\n", [], ["use_vllm", "bool"]),
        (BASE + "sas_strategy: wrong_only\n", [], ["sas_strategy='wrong_only'", "'correct_only'"]),
        (BASE + "sas_ratio: 1.5\n", [], ["sas_ratio=1.5", "[0, 1]"]),
        (BASE, ["--sas_ratio", "abc"], ["sas_ratio", "abc"]),
        (BASE + "reward_format: latex\n", [], ["reward_format='latex'", "'plain'"]),
        (
            BASE.replace("builtin:addition", "data/missing.jsonl"),  # a key given twice is refused on its own
            [],
            ["dataset_name", "data/missing.jsonl", "does not exist"],
        ),
        (BASE.replace("builtin:tiny", "./models/missing"), [], ["model_name_or_path", "./models/missing"]),
        (BASE + "accelerate_config: recipes/accelerate/none.yaml\n", [], ["accelerate_config", "none.yaml"]),
        ("- a\n- list\n", [], ["must be a YAML mapping"]),
        ("model_name_or_path: [unclosed\n", [], ["not valid YAML"]),
        ("use_cpu: true\nbf16: false\n", [], ["model_name_or_path is required"]),
    ],
)
def test_recipe_errors_name_the_problem(tmp_path, capsys, text, flags, expected):
    code = main(["train", "--recipe", write(tmp_path, text), "--output_dir", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sas-trl train: error:") and "Traceback" not in err
    for piece in expected:
        assert piece in err, (piece, err)
    assert not (tmp_path / "out").exists()  # failed before anything was written or loaded


def test_missing_recipe_file(capsys):
    assert main(["train", "--recipe", "recipes/nope.yaml"]) == 2
    assert "recipe not found: recipes/nope.yaml" in capsys.readouterr().err


def test_user_error_exit_code_without_traceback_in_a_real_process(tmp_path):
    result = sas_trl("train", "--recipe", write(tmp_path, BASE + "sas_ration: 0.3\n"), timeout=120)
    assert result.returncode == 2
    assert "did you mean 'sas_ratio'" in result.stderr and "Traceback" not in result.stderr


def test_push_command_checks_the_folder(tmp_path, capsys):
    assert main(["push", "--output_dir", str(tmp_path), "--hub_model_id", "me/x"]) == 2
    assert "holds no saved model" in capsys.readouterr().err
