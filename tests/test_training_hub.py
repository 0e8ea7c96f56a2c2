"""sas_trl.training.hub: access checks, failed uploads keep the model, the model card."""

from __future__ import annotations

import time

import pytest
from cli_helpers import QUICK, ROOT

from sas_trl.cli import main


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def test_push_without_credentials_fails_in_seconds(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    start = time.perf_counter()
    code = main(
        [
            "train",
            "--recipe",
            "recipes/tiny_cpu.yaml",
            *QUICK,
            "--output_dir",
            str(tmp_path / "run"),
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "me/tiny-sas",
        ]
    )
    assert code == 2 and time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert "push_to_hub" in err and "HF_TOKEN" in err
    assert not (tmp_path / "run" / "base_model").exists()  # nothing was built or trained


@pytest.mark.slow
def test_failed_upload_keeps_the_model_and_says_how_to_retry(tmp_path, capsys, monkeypatch):
    import sas_trl.training.hub as hub

    monkeypatch.setattr(hub, "check_hub_access", lambda repo_id, token=None, private=None: "me/tiny-sas")

    def broken_upload(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(hub, "upload", broken_upload)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--recipe",
            "recipes/tiny_cpu.yaml",
            *QUICK,
            "--output_dir",
            str(out),
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "me/tiny-sas",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "upload to 'me/tiny-sas' failed" in err and "network is unreachable" in err
    assert f"sas-trl push --output_dir {out} --hub_model_id me/tiny-sas" in err
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_eval_table_goes_into_the_model_card(tmp_path):
    from types import SimpleNamespace

    from sas_trl.training.hub import SAS_FIELDS, add_eval_table, write_card

    args = SimpleNamespace(
        max_steps=2,
        max_completion_length=32,
        num_generations=4,
        learning_rate=1e-4,
        beta=0.0,
        **{name: 0.3 for name in SAS_FIELDS},
    )
    write_card(tmp_path, "me/x", args, "builtin:tiny", {"sas_ratio": 0.3}, [{"reward": 0.5, "step": 1}])
    assert "No evaluation was run" in (tmp_path / "README.md").read_text()
    assert not add_eval_table(tmp_path)  # no eval_results.md yet
    (tmp_path / "eval_results.md").write_text("| benchmark | Pass@1 (%) |\n|---|---:|\n| addition | 85.12 |\n")
    assert add_eval_table(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "| addition | 85.12 |" in card and "No evaluation was run" not in card
    assert card.index("## Evaluation") < card.index("| addition") < card.index("## Recipe")
    assert "sas_ratio: 0.3" in card  # the rest of the card is kept
