"""sas_trl.training.hub: access checks, failed uploads keep the model, the model card."""

from __future__ import annotations

import time
from pathlib import Path

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


def write_samples_header(folder, weights=None):
    """The first line of `sas-trl eval`'s samples file, drawn from `weights` (default: the folder's own)."""
    import json

    from sas_trl.evaluation.backends import model_fingerprint

    header = {"model": str(folder), "weights": weights or model_fingerprint(str(folder))}
    (folder / "eval_samples.jsonl").write_text(json.dumps({"header": header}) + "\n")


def test_eval_table_goes_into_the_model_card(tmp_path):
    from sas_trl.training.hub import add_eval_table, write_card

    args = card_args(tmp_path, sas_ratio=0.3)
    write_card(tmp_path, "me/x", args, "builtin:tiny", {"sas_ratio": 0.3}, [{"reward": 0.5, "step": 1}])
    assert "No evaluation was run" in (tmp_path / "README.md").read_text()
    assert not add_eval_table(tmp_path)  # no eval_results.md yet
    (tmp_path / "eval_results.md").write_text("| benchmark | Pass@1 (%) |\n|---|---:|\n| addition | 85.12 |\n")
    write_samples_header(tmp_path)  # `sas-trl eval --output_dir` this folder: drawn from the weights in it
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


# --------------------------------------------------------------------------------------------------
# Credentials: never in a file of the run, its output, its card or its upload (sas_trl/redaction.py)
# --------------------------------------------------------------------------------------------------

SECRETS = {  # the recipe's env: entries whose names read as credentials
    "HF_TOKEN": "hf_envTokenValue0123456789abcdef",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "MY_SERVICE_API_KEY": "sk-live-9f8e7d6c5b4a39281706",
    "DB_PASSWORD": "correct-horse-battery-staple",
}
HUB_TOKEN = "hf_flagTokenValue9876543210fedcba"  # given as --hub_token


class FakeHub:
    """A stand-in for `huggingface_hub.HfApi`: every file `upload_folder` would send is copied to `into`."""

    def __init__(self, into):
        self.into, self.tokens, self.uploads = into, [], 0
        hub = self

        class HfApi:
            def __init__(self, token=None):
                hub.tokens.append(token)

            def whoami(self):
                return {"name": "me"}

            def create_repo(self, repo_id, exist_ok=False, private=None):
                return repo_id

            def upload_folder(self, repo_id, folder_path, ignore_patterns=None, commit_message="", **kwargs):
                import shutil

                from huggingface_hub.utils import filter_repo_objects
                from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

                folder = Path(folder_path).expanduser().resolve()  # what upload_folder lists, and how it filters
                files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
                patterns = [*(ignore_patterns or []), *DEFAULT_IGNORE_PATTERNS]
                hub.uploads += 1
                for relative in filter_repo_objects(list(files), ignore_patterns=patterns):
                    target = hub.into / f"upload{hub.uploads}" / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(files[relative], target)

        self.HfApi = HfApi

    def uploaded(self, number) -> dict[str, bytes]:
        root = self.into / f"upload{number}"
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def holding(secrets, files: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in {path}"
        for path, data in files.items()
        for name, value in secrets.items()
        if value.encode() in data
    ]


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    import huggingface_hub

    hub = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.HfApi)
    return hub


@pytest.mark.slow
def test_a_run_and_its_push_leave_no_credential_in_any_file_output_or_upload(tmp_path, monkeypatch, capfd, fake_hub):
    import yaml

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # restored after the test: the recipe's env: sets them in this process
    recipe = tmp_path / "recipe.yaml"
    env = {**SECRETS, "SAS_TRL_TEST_PLAIN": "plain-value-kept"}
    recipe.write_text(yaml.safe_dump({"base": str(ROOT / "recipes" / "tiny_cpu.yaml"), "env": env}))
    out = tmp_path / "run"
    argv = ["--recipe", str(recipe), *QUICK, "--output_dir", str(out), "--save_steps", "1"]
    argv += ["--push_to_hub", "true", "--hub_model_id", "me/tiny-sas", "--hub_token", HUB_TOKEN]
    # a credential's value where no name says so: a run name (the card's title) holding the API key
    argv += ["--run_name", f"run-{SECRETS['MY_SERVICE_API_KEY']}"]
    assert main(["train", *argv]) == 0
    assert main(["push", "--output_dir", str(out), "--hub_model_id", "me/tiny-sas"]) == 0
    printed = capfd.readouterr()

    secrets = {**SECRETS, "hub_token": HUB_TOKEN}
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {"README.md", "recipe.yaml", "resolved_recipe.yaml", "training_args.bin"} <= set(files)
    assert any(name.startswith("checkpoint-") for name in files)
    assert holding(secrets, files) == []
    assert holding(secrets, {"stdout": printed.out.encode(), "stderr": printed.err.encode()}) == []
    assert fake_hub.tokens[0] == HUB_TOKEN  # the token still reached the Hub calls that need it
    assert "not uploaded" not in printed.out  # nothing had to be left out: no file of the run holds one
    for number in (1, 2):  # the upload at the end of training, then `sas-trl push`
        uploaded = fake_hub.uploaded(number)
        assert "README.md" in uploaded and "model.safetensors" in uploaded
        assert holding(secrets, uploaded) == []
    # what the run's files say instead: the names, redacted; other entries as they were
    for name in ("resolved_recipe.yaml", "recipe.yaml"):
        saved = yaml.safe_load(files[name])
        assert saved["env"] == {**{k: "<redacted>" for k in SECRETS}, "SAS_TRL_TEST_PLAIN": "plain-value-kept"}
        assert saved["hub_token"] == "<redacted>" and saved["run_name"] == "run-<redacted>"
    card = files["README.md"].decode()
    assert "\n# run-<redacted>\n" in card and "MY_SERVICE_API_KEY: <redacted>" in card
    assert "sas-trl: recipe resolved" in printed.out and "MY_SERVICE_API_KEY: <redacted>" in printed.out


def test_an_upload_leaves_out_every_file_that_holds_a_credential_and_says_so(tmp_path, monkeypatch, fake_hub):
    import json

    import sas_trl.redaction
    from sas_trl.training.hub import upload

    monkeypatch.setattr(sas_trl.redaction, "_remembered", set())  # only what this test makes known
    monkeypatch.setenv("WANDB_API_KEY", SECRETS["WANDB_API_KEY"])
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "README.md").write_text("# run\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<pad>", "eos_token": "</s>"}))
    # a study run's recipe: the training input holds the condition's env: in clear
    api_key = SECRETS["MY_SERVICE_API_KEY"]
    (folder / "study_recipe.yaml").write_text(f"seed: 0\nenv:\n  MY_SERVICE_API_KEY: {api_key}\n")
    (folder / "made_from.json").write_text(json.dumps({"recipe": {"env": {"DB_PASSWORD": SECRETS["DB_PASSWORD"]}}}))
    (folder / "train.log").write_text(f"wandb: logged in with {SECRETS['WANDB_API_KEY']}\n")  # known by value
    (folder / "notes.bin").write_bytes(b"\x00pickled " + HUB_TOKEN.encode())  # the token this upload is given
    (folder / "resolved_recipe.yaml").write_text("seed: 0\nhub_token: <redacted>\nenv:\n  HF_TOKEN: <redacted>\n")
    outside = tmp_path / "netrc"
    outside.write_text("machine api.wandb.ai password p\n")
    (folder / "netrc").symlink_to(outside)  # a link out of the folder: never followed into an upload
    (folder / "checkpoint-1").mkdir()
    (folder / "checkpoint-1" / "log.txt").write_text(SECRETS["WANDB_API_KEY"])  # ignored by the upload anyway
    said = []
    assert upload(folder, "me/run", HUB_TOKEN, echo=said.append) == "https://huggingface.co/me/run"
    uploaded = {"model.safetensors", "README.md", "tokenizer_config.json", "resolved_recipe.yaml"}
    assert set(fake_hub.uploaded(1)) == uploaded
    assert sorted(said) == [
        "not uploaded: made_from.json (holds a credential in clear: recipe.env.DB_PASSWORD)",
        f"not uploaded: netrc (a link to {outside}, outside the folder)",
        "not uploaded: notes.bin (holds a credential's value)",
        "not uploaded: study_recipe.yaml (holds a credential in clear: env.MY_SERVICE_API_KEY)",
        "not uploaded: train.log (holds a credential's value)",
    ]
    assert (folder / "study_recipe.yaml").is_file()  # left out of the upload, not deleted


# --------------------------------------------------------------------------------------------------
# The card shows only the evaluation of the weights now in the folder
# --------------------------------------------------------------------------------------------------


def test_the_card_leaves_out_an_evaluation_of_other_weights_and_keeps_its_files(tmp_path, tiny_model_dir):
    import shutil

    from sas_trl.training.hub import add_eval_table, write_card

    folder = tmp_path / "run"
    shutil.copytree(tiny_model_dir, folder)
    table = "| benchmark | Pass@1 (%) |\n|---|---:|\n| addition | 85.12 |\n"
    (folder / "eval_results.md").write_text(table)
    write_samples_header(folder)  # evaluated these weights
    args = card_args(tmp_path)
    said = []
    write_card(folder, None, args, "builtin:tiny", {}, [], said.append)
    assert "| addition | 85.12 |" in (folder / "README.md").read_text() and said == []

    kept = {name: (folder / name).read_bytes() for name in ("eval_results.md", "eval_samples.jsonl")}
    config = folder / "config.json"  # new weights in the folder: another model trained over it
    config.write_text(config.read_text().replace("{", '{"retrained": 1, ', 1))
    write_card(folder, None, args, "builtin:tiny", {}, [], said.append)
    card = (folder / "README.md").read_text()
    assert "85.12" not in card and "No evaluation of this model yet." in card
    assert "evaluates the weights sha256:" in card and "an earlier model's evaluation" in card
    assert len(said) == 1 and f"the model card leaves out {folder / 'eval_results.md'}" in said[0]
    assert not add_eval_table(folder, said.append)  # `sas-trl push` does not put it back either
    assert "85.12" not in (folder / "README.md").read_text()
    assert {name: (folder / name).read_bytes() for name in kept} == kept  # the evaluation's files, byte for byte

    (folder / "eval_samples.jsonl").unlink()  # a table whose weights nothing records is not shown either
    assert not add_eval_table(folder)
    assert "weights it does not record (no readable eval_samples.jsonl" in (folder / "README.md").read_text()


@pytest.mark.slow
def test_after_overwrite_output_dir_the_card_shows_no_evaluation_of_the_old_model(tmp_path, capsys, fake_hub):
    out = tmp_path / "run"
    train = ["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--output_dir", str(out)]
    assert main(train) == 0
    evaluate = ["eval", "--model", str(out), "--output_dir", str(out), "--benchmarks", "addition", "--limit", "2"]
    assert main([*evaluate, "--n", "1", "--max_tokens", "16", "--no_progress", "--num_threads", "1"]) == 0
    assert main(["push", "--output_dir", str(out), "--hub_model_id", "me/tiny-sas"]) == 0
    assert "| addition |" in (out / "README.md").read_text()  # the table of the model in the folder
    assert "added" in capsys.readouterr().out
    evaluation = {p.name: p.read_bytes() for p in out.glob("eval_*")}

    assert main([*train, "--overwrite_output_dir", "true", "--seed", "1"]) == 0  # another model, same folder
    printed = capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert "| addition |" not in card and "No evaluation of this model yet." in card
    assert "an earlier model's evaluation" in card
    assert f"sas-trl: the model card leaves out {out / 'eval_results.md'}" in printed
    assert {p.name: p.read_bytes() for p in out.glob("eval_*")} == evaluation  # kept, byte for byte

    assert main(["push", "--output_dir", str(out), "--hub_model_id", "me/tiny-sas"]) == 0
    assert "added" not in capsys.readouterr().out
    assert b"| addition |" not in fake_hub.uploaded(2)["README.md"]
