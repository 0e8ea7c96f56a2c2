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


def card_args(tmp_path, **overrides):
    """A real `SASConfig`, as the card reads it after training."""
    from sas_trl import SASConfig

    settings = dict(output_dir=str(tmp_path / "run"), max_steps=2, max_completion_length=32, num_generations=4)
    settings.update(learning_rate=1e-4, beta=0.0, use_cpu=True, bf16=False, report_to="none")
    return SASConfig(**{**settings, **overrides})


def test_eval_table_goes_into_the_model_card(tmp_path):
    from sas_trl.training.hub import add_eval_table, write_card

    args = card_args(tmp_path, sas_ratio=0.3)
    write_card(tmp_path, "me/x", args, "builtin:tiny", {"sas_ratio": 0.3}, [{"reward": 0.5, "step": 1}])
    assert "No evaluation was run" in (tmp_path / "README.md").read_text()
    assert not add_eval_table(tmp_path)  # no eval_results.md yet
    (tmp_path / "eval_results.md").write_text("| benchmark | Pass@1 (%) |\n|---|---:|\n| addition | 85.12 |\n")
    assert add_eval_table(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "| addition | 85.12 |" in card and "No evaluation was run" not in card
    assert card.index("## Evaluation") < card.index("| addition") < card.index("## Recipe")
    assert "sas_ratio: 0.3" in card  # the rest of the card is kept


@pytest.mark.parametrize(
    ("overrides", "title"),
    [
        ({"run_name": "deepscaler_4k_sas", "hub_model_id": "me/other"}, "deepscaler_4k_sas"),
        ({"hub_model_id": "me/tiny-sas"}, "tiny-sas"),
        ({}, "run"),  # the output folder's name
    ],
)
def test_card_title_is_the_run_the_repo_or_the_folder_never_none(tmp_path, overrides, title):
    from sas_trl.training.hub import model_card

    card = model_card(None, card_args(tmp_path, **overrides), "builtin:tiny", {}, {}, None)
    assert f"\n# {title}\n" in card and "# None" not in card


def test_card_of_a_sas_run_names_sas_and_its_settings(tmp_path):
    from sas_trl.training.hub import REPOSITORY_URL, model_card

    args = card_args(tmp_path, sas_ratio=0.4, sas_strategy="correct_only", run_name="sas")
    card = model_card(None, args, "agentica-org/DeepScaleR-1.5B-Preview", {"sas_ratio": 0.4}, {}, None)
    assert "with GRPO and **Step-level Advantage Selection** (SAS" in card
    assert "ratio r = 0.4 applied to correct rollouts only" in card and "Rewards: `accuracy`" in card
    assert "- sas\n" in card and "## SAS settings\n" in card and "| `sas_min_steps` | `1` |" in card
    assert f"[sas-trl]({REPOSITORY_URL})" in card and "pypi.org" not in card


def test_card_of_grpo_says_sas_is_off(tmp_path):
    from sas_trl.training.hub import model_card
    from sas_trl.training.recipes import load_recipe

    recipe = load_recipe("recipes/grpo_4k.yaml")
    args = card_args(tmp_path, sas_strategy="none", run_name=recipe["run_name"])
    card = model_card(None, args, "agentica-org/DeepScaleR-1.5B-Preview", recipe, {}, None)
    assert "\n# grpo_4k\n" in card
    assert "with GRPO, with Step-level Advantage Selection **off** (`sas_strategy: none`" in card
    assert "GRPO and **Step-level Advantage Selection**" not in card and "- sas\n" not in card
    assert "## SAS settings (off)" in card and "Rewards: `accuracy`." in card


def test_card_of_a_length_reward_baseline_names_its_reward_and_parameters(tmp_path):
    from sas_trl.training.hub import model_card
    from sas_trl.training.recipes import load_recipe

    recipe = load_recipe("recipes/baselines/l1_max.yaml")
    args = card_args(tmp_path, sas_strategy="none", run_name=recipe["run_name"], reward_weights=[0.0, 1.0])
    card = model_card(None, args, "agentica-org/DeepScaleR-1.5B-Preview", recipe, {}, None)
    assert "\n# l1_max\n" in card and "with a GRPO baseline, with Step-level Advantage Selection **off**" in card
    assert "Rewards: `accuracy`, `l1` (weights 0, 1)" in card
    assert '"max_alpha": 0.002' in card and '"max_form": "multiplicative"' in card
    assert "prompt transforms `l1_budget`" in card and '"max_fraction": 0.5' in card


def test_repository_url_is_pyprojects():
    import tomllib

    from sas_trl.training.hub import REPOSITORY_URL

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == REPOSITORY_URL
