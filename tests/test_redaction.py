"""sas_trl.redaction: credentials known by name and by value, redacted from recipes, text and command lines."""

from __future__ import annotations

import pytest
import yaml

from sas_trl.redaction import (
    REDACTED,
    find_secrets,
    is_secret_name,
    redact_argv,
    redact_recipe,
    redact_text,
    remember,
    remember_recipe,
)


@pytest.fixture(autouse=True)
def forget_remembered(monkeypatch):
    """Each test's remembered credentials are its own."""
    import sas_trl.redaction

    monkeypatch.setattr(sas_trl.redaction, "_remembered", set())


# What the Hub, wandb and other services read as credentials, in the spellings recipes and shells use.
SECRET_NAMES = [
    "hub_token", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "HF_API_TOKEN", "WANDB_API_KEY",
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "GH_TOKEN",
    "COMET_API_KEY", "NEPTUNE_API_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "DB_PASSWORD",
    "DB_PASSWD", "SMTP_PASS", "CLIENT_SECRET", "client_secret", "apiKey", "api-key", "OPENAIAPIKEY", "HFTOKEN",
    "token", "access_token", "authToken", "GOOGLE_APPLICATION_CREDENTIALS_JSON", "SESSION_COOKIE", "PRIVATE_KEY",
    "ssh_passphrase", "--hub_token", "X_AUTH",
]  # fmt: skip
# Ordinary settings that merely contain such letters: paths to credentials, ids, switches, tokenizer tokens, counts.
PLAIN_NAMES = [
    "max_tokens", "max_prompt_tokens", "average_tokens_across_devices", "include_num_input_tokens_seen",
    "hub_private_repo", "hub_model_id", "TOKENIZERS_PARALLELISM", "HF_TOKEN_PATH", "WANDB_IDENTITY_TOKEN_FILE",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN", "AWS_ACCESS_KEY_ID", "SSH_AUTH_SOCK", "PWD", "pad_token", "eos_token",
    "bos_token", "unk_token", "pad_token_id", "image_token", "vision_start_token", "additional_special_tokens",
    "sas_think_end", "keyboard", "monkey", "passes", "OMP_NUM_THREADS", "WANDB_MODE", "output_dir", "",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_credential_names_are_known(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_ordinary_names_are_not_credentials(name):
    assert not is_secret_name(name)


def test_every_recipe_key_but_hub_token_is_an_ordinary_setting():
    from sas_trl.training.arguments import all_fields

    assert [key for key in all_fields() if is_secret_name(key)] == ["hub_token"]


def test_a_recipe_is_redacted_by_name_at_any_depth_and_by_value(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe = {
        "hub_token": "hf_abcdefghij",
        "env": {"HF_TOKEN": "hf_klmnopqrst", "WANDB_API_KEY": "w" * 40, "OMP_NUM_THREADS": "1"},
        "model_init_kwargs": {"token": "hf_uvwxyzabcd", "dtype": "float32"},
        "run_name": "uses-hf_klmnopqrst-inside",
        "seed": 3,
        "reward_funcs": ["accuracy"],
    }
    assert redact_recipe(recipe, by_value=False)["run_name"] == recipe["run_name"]
    remember_recipe(recipe)
    redacted = redact_recipe(recipe)
    assert redacted == {
        "hub_token": REDACTED,
        "env": {"HF_TOKEN": REDACTED, "WANDB_API_KEY": REDACTED, "OMP_NUM_THREADS": "1"},
        "model_init_kwargs": {"token": REDACTED, "dtype": "float32"},
        "run_name": f"uses-{REDACTED}-inside",
        "seed": 3,
        "reward_funcs": ["accuracy"],
    }
    assert recipe["env"]["HF_TOKEN"] == "hf_klmnopqrst"  # a copy: the recipe itself is kept
    # unset credentials stay unset (None is not a secret to hide)
    assert redact_recipe({"hub_token": None})["hub_token"] is None


def test_dump_recipe_writes_no_credential_and_stays_a_recipe(tmp_path, monkeypatch):
    from sas_trl.training.recipe_files import dump_recipe

    monkeypatch.chdir(tmp_path)
    text = dump_recipe({"seed": 1, "hub_token": "hf_dumpedtoken1", "env": {"MY_API_KEY": "k-dumped-123", "A": "b"}})
    assert "hf_dumpedtoken1" not in text and "k-dumped-123" not in text
    assert yaml.safe_load(text) == {"seed": 1, "hub_token": REDACTED, "env": {"MY_API_KEY": REDACTED, "A": "b"}}


def test_credentials_in_this_environment_are_redacted_by_value_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fromtheshell42")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")  # a switch: its "1" is never matched
    text = "cannot reach the Hub with hf_fromtheshell42 (1 try, 10 s)"
    assert redact_text(text) == f"cannot reach the Hub with {REDACTED} (1 try, 10 s)"
    monkeypatch.delenv("HF_TOKEN")
    assert redact_text(text) == text


def test_short_values_are_not_matched_by_value_but_still_by_name():
    remember("abc")  # too short to be told apart from ordinary text
    assert redact_text("abc abcdef") == "abc abcdef"
    assert redact_recipe({"env": {"SERVICE_TOKEN": "abc"}})["env"]["SERVICE_TOKEN"] == REDACTED


def test_the_longest_credential_is_replaced_whole():
    remember("secretvalue-long-1234")
    remember("secretvalue")
    assert redact_text("x secretvalue-long-1234 y secretvalue") == f"x {REDACTED} y {REDACTED}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:hunter22@example.org/x", f"https://user:{REDACTED}@example.org/x"),
        ("postgres://admin:pa55word@db:5432/runs", f"postgres://admin:{REDACTED}@db:5432/runs"),
        ("https://example.org/a:b@c", "https://example.org/a:b@c"),  # a path, not a password
        ("https://example.org:8080/x", "https://example.org:8080/x"),
    ],
)
def test_passwords_in_urls_are_redacted(url, shown):
    assert redact_text(url) == shown


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--hub_token", "hf_argvtoken1"], ["--hub_token", REDACTED]),
        (["--hub_token=hf_argvtoken1"], [f"--hub_token={REDACTED}"]),
        (
            ["--seed", "1", "--hub_token", "x", "--run_name", "r"],
            ["--seed", "1", "--hub_token", REDACTED, "--run_name", "r"],
        ),
        (["--max_tokens", "32"], ["--max_tokens", "32"]),
        (["train", "--recipe", "r.yaml"], ["train", "--recipe", "r.yaml"]),
    ],
)
def test_command_lines_hide_secret_flags(argv, shown):
    assert redact_argv(argv) == shown


def test_command_lines_hide_known_credentials_anywhere():
    remember("sk-commandline-999")
    assert redact_argv(["--run_name", "a-sk-commandline-999"]) == ["--run_name", f"a-{REDACTED}"]


def test_find_secrets_names_keys_in_clear_but_not_redacted_ones():
    remember("known-secret-in-text")
    document = {
        "env": {"OPENAI_API_KEY": "sk-clear-123456", "HF_TOKEN": REDACTED, "A": "1"},
        "runs": [{"note": "has known-secret-in-text inside"}],
        "pad_token": "<pad>",
    }
    assert find_secrets(document) == ["env.OPENAI_API_KEY", "runs[0].note"]


def test_the_cli_redacts_credentials_from_error_messages(monkeypatch, capsys):
    from sas_trl.cli import main
    from sas_trl.errors import UserError

    def fail(argv):
        raise UserError("could not log in with hf_errortoken77")

    monkeypatch.setenv("HF_TOKEN", "hf_errortoken77")
    monkeypatch.setattr("sas_trl.cli.recipes.main", fail)
    assert main(["recipes"]) == 2
    err = capsys.readouterr().err
    assert "hf_errortoken77" not in err and f"could not log in with {REDACTED}" in err
