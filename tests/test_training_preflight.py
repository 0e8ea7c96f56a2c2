"""Settings this machine cannot run: refused while `sas-trl train` parses, before any model work, in one line.

Each case runs `sas-trl train` with the model preparation replaced by a tripwire; the machine (CUDA devices,
installed packages, wandb credentials) is simulated where this one differs.
"""

from __future__ import annotations

import time

import pytest
from cli_helpers import ROOT, sas_trl, trip_model_work

from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.training import preflight
from sas_trl.training.recipes import parse

PAPER = "recipes/deepscaler_4k.yaml"  # bf16, vLLM, wandb, DeepSpeed ZeRO-2 on 8 GPUs
CPU_RUN = ["--use_cpu", "true", "--bf16", "false", "--use_vllm", "false", "--accelerate_config", "null"]
TINY = "recipes/tiny_cpu.yaml"
PAPER_LAUNCH = "recipes/accelerate/zero2.yaml"  # DeepSpeed ZeRO-2, 8 processes


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


@pytest.fixture
def no_model_work(monkeypatch):
    trip_model_work(monkeypatch, extra=("load_train_dataset",))  # preflight refuses before the data are read


@pytest.fixture
def no_wandb_login(monkeypatch, tmp_path):
    """No API key, no netrc entry, no saved wandb mode."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "wandb-config"))
    return home


def gpus(
    monkeypatch, count: int, missing: tuple[str, ...] = (), present: tuple[str, ...] = (), hub: str | None = None
):
    """Simulate `count` CUDA devices, packages that are (not) installed, and the Hub (reachable unless `hub`
    says why not)."""
    monkeypatch.setattr(preflight, "cuda_devices", lambda: count)
    monkeypatch.setattr(preflight, "hub_dataset_unreachable", lambda name: hub)
    real = preflight.installed
    monkeypatch.setattr(
        preflight, "installed", lambda module: module not in missing and (module in present or real(module))
    )


def refused(capsys, argv: list[str], tmp_path) -> str:
    """Run `sas-trl train ARGV`: exit 2, one error line (returned), nothing written."""
    out = tmp_path / "out"
    start = time.perf_counter()
    code = main(["train", *argv, "--output_dir", str(out)])
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    lines = [
        line for line in captured.err.splitlines() if "FutureWarning" not in line and "warnings.warn(" not in line
    ]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sas-trl train: error: "), captured.err
    assert "Traceback" not in captured.err and not out.exists() and seconds < 60
    return lines[0]


def test_the_paper_recipe_on_a_cpu_names_every_gpu_setting_and_the_flags(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 0)
    line = refused(capsys, ["--recipe", PAPER], tmp_path)
    assert "this recipe is written for GPUs" in line and "no CUDA device" in line
    for setting in ("bf16", "use_vllm", "accelerate_config recipes/accelerate/zero2.yaml (DEEPSPEED)"):
        assert setting in line
    assert "for a CPU run pass --use_cpu true --bf16 false --use_vllm false --accelerate_config null" in line
    assert "DeepSpeed, which is not installed" not in line  # the fix switches it off: not named twice


def test_every_problem_in_one_message(tmp_path, capsys, no_model_work, monkeypatch, no_wandb_login):
    # The CPU refusal, then wandb, then the Hub dataset used to cost one start each.
    gpus(monkeypatch, 0, hub="ConnectError: no network")
    line = refused(capsys, ["--recipe", PAPER], tmp_path)
    assert line.startswith("sas-trl train: error: 3 problems, all found before starting: 1) this recipe is written")
    assert "; 2) report_to wandb: no wandb credentials" in line
    assert "; 3) Hub dataset agentica-org/DeepScaleR-Preview-Dataset cannot be reached" in line
    assert "(ConnectError: no network)" in line and "pass --dataset_name DeepScaleR-Preview-Dataset.jsonl" in line
    # the recipe's own error comes first in the same message (checked as if the hardware were right)
    line = refused(capsys, ["--recipe", PAPER, "--model_name_or_path", "./no_such_model"], tmp_path)
    assert "4 problems, all found before starting: 1) model_name_or_path: local path './no_such_model'" in line
    assert "; 2) this recipe is written for GPUs" in line


def test_grpo_configs_own_bf16_default_is_refused_with_the_fix(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 0)
    flags = ["--model_name_or_path", "builtin:tiny", "--dataset_name", "builtin:addition"]
    line = refused(capsys, flags, tmp_path)
    assert "(bf16 (GRPOConfig's default when unset) need one)" in line and "pass --use_cpu true --bf16 false" in line
    _, args, _, _ = parse([*flags, "--bf16", "false", "--output_dir", str(tmp_path / "o")], this_machine=True)
    assert not args.bf16  # the fix the message names passes
    preflight.check_machine({"fp16": False, "use_cpu": True}, [])  # bf16 on the CPU by choice: allowed


def test_a_missing_recipe_says_what_to_pass(tmp_path, capsys):
    line = refused(capsys, [], tmp_path)
    assert "no recipe given: pass --recipe NAME or --recipe FILE" in line and "--recipe tiny_cpu" in line


def test_the_hub_check_reads_the_cache_and_the_offline_setting(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE is set" in preflight.hub_dataset_unreachable("org/set")
    (tmp_path / "datasets--org--set").mkdir()
    assert preflight.hub_dataset_unreachable("org/set") is None  # downloaded before: read from the cache


def test_an_unreachable_hub_dataset_names_the_offline_alternative(monkeypatch):
    gpus(monkeypatch, 0, hub="HF_HUB_OFFLINE is set and it is not in the Hugging Face cache")
    with pytest.raises(RecipeError) as caught:
        preflight.check_machine({"dataset_name": "org/set", "dataset_config": "main", "use_cpu": True}, [])
    message = str(caught.value)
    assert message.startswith("Hub dataset org/set (config 'main') cannot be reached from this machine (HF_HUB")
    assert "--dataset_name set.jsonl (a local .jsonl, .json or .parquet file" in message
    for local in ("builtin:addition", "tests/fixtures/deepscaler.jsonl", "recipes/no_such.parquet"):
        preflight.check_machine({"dataset_name": local, "use_cpu": True}, [])  # not a Hub id: no Hub check


@pytest.mark.parametrize(
    ("flags", "setting", "fix"),
    [
        (["--fp16", "true"], "fp16", "--fp16 false"),
        (["--tf32", "true"], "tf32", "--tf32 false"),
        (["--attn_implementation", "flash_attention_2"], "attn_implementation flash_attention_2", "sdpa"),
        (["--load_in_4bit"], "load_in_4bit", "--load_in_4bit false"),
        (["--bf16", "true", "--use_cpu", "false"], "bf16", "--use_cpu true --bf16 false"),
    ],
)
def test_a_gpu_only_setting_on_a_cpu(tmp_path, capsys, no_model_work, monkeypatch, flags, setting, fix):
    gpus(monkeypatch, 0)
    line = refused(capsys, ["--recipe", TINY, *flags], tmp_path)
    assert f"({setting} need one)" in line and fix in line


def test_bf16_with_use_cpu_is_the_users_choice(monkeypatch):
    gpus(monkeypatch, 0)
    preflight.check_machine({"bf16": True, "use_cpu": True}, [])  # CPU autocast in bf16: allowed, as before


def test_the_paper_recipe_passes_on_a_cpu_with_the_flags_the_message_gives(monkeypatch):
    gpus(monkeypatch, 0)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_args, args, _, _ = parse(["--recipe", PAPER, *CPU_RUN], this_machine=True)
    assert args.use_cpu and not args.bf16 and not args.use_vllm and run_args.accelerate_config is None


def test_vllm_not_installed_on_a_gpu_machine(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 8, missing=("vllm",))
    line = refused(capsys, ["--recipe", PAPER], tmp_path)
    assert "use_vllm: true needs vLLM, which is not installed" in line
    assert "pip install 'sas-trl[vllm]'" in line and "--use_vllm false" in line


def test_a_launch_config_with_more_processes_than_gpus(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 1, present=("vllm", "deepspeed"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    line = refused(capsys, ["--recipe", PAPER], tmp_path)
    assert "accelerate_config recipes/accelerate/zero2.yaml starts 8 processes" in line
    assert "this machine has 1 GPU" in line and "--num_processes 1" in line
    line = refused(capsys, ["--recipe", PAPER, "--num_processes", "2"], tmp_path)
    assert line.split("error: ")[1].startswith("num_processes starts 2 processes")
    gpus(monkeypatch, 1, present=("vllm", "deepspeed"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    preflight.check_machine({"accelerate_config": PAPER_LAUNCH}, ["--num_processes", "1"])  # the fix passes
    nodes = tmp_path / "two_nodes.yaml"
    nodes.write_text("distributed_type: MULTI_GPU\nnum_machines: 2\nnum_processes: 2\n")
    preflight.check_machine({"accelerate_config": str(nodes)}, [])  # 2 processes over 2 nodes: 1 per node
    monkeypatch.setenv("SAS_TRL_LAUNCHED", "1")
    preflight.check_machine({"accelerate_config": PAPER_LAUNCH}, [])  # a launched process: launched already


def test_deepspeed_not_installed(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 8, missing=("deepspeed",), present=("vllm",))
    line = refused(capsys, ["--recipe", PAPER], tmp_path)
    assert "accelerate_config recipes/accelerate/zero2.yaml uses DeepSpeed, which is not installed" in line
    assert "pip install 'sas-trl[deepspeed]'" in line and "recipes/accelerate/ddp.yaml" in line


def test_flash_attention_not_installed(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 8, missing=("flash_attn",), present=("vllm", "deepspeed"))
    line = refused(capsys, ["--recipe", PAPER, "--attn_implementation", "flash_attention_2"], tmp_path)
    assert "attn_implementation flash_attention_2 needs the flash_attn package" in line and "sdpa" in line


def test_wandb_without_credentials(tmp_path, capsys, no_model_work, monkeypatch, no_wandb_login):
    gpus(monkeypatch, 0)
    line = refused(capsys, ["--recipe", TINY, "--report_to", "wandb"], tmp_path)
    assert "report_to wandb: no wandb credentials" in line and "api.wandb.ai" in line
    assert "wandb login" in line and "WANDB_MODE=offline" in line and "--report_to none" in line
    # the paper recipe's own report_to, once the hardware is right
    gpus(monkeypatch, 8, present=("vllm", "deepspeed"))
    line = refused(capsys, ["--recipe", PAPER], tmp_path)
    assert "report_to wandb: no wandb credentials" in line


@pytest.mark.parametrize("way", ["api key", "netrc", "offline mode", "disabled mode", "wandb offline", "other host"])
def test_wandb_with_credentials_or_offline_passes(monkeypatch, no_wandb_login, tmp_path, way):
    gpus(monkeypatch, 0)
    check = lambda: preflight.check_machine({"report_to": "wandb", "bf16": False}, [])  # noqa: E731
    if way == "other host":  # a netrc entry for another host is no login for the default one
        (no_wandb_login / ".netrc").write_text("machine example.com login user password secret\n")
        with pytest.raises(RecipeError, match="no wandb credentials"):
            check()
        monkeypatch.setenv("WANDB_BASE_URL", "https://example.com")
    elif way == "api key":
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    elif way == "netrc":
        (no_wandb_login / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    elif way == "offline mode":
        monkeypatch.setenv("WANDB_MODE", "offline")
    elif way == "disabled mode":
        monkeypatch.setenv("WANDB_MODE", "disabled")
    else:  # `wandb offline` saves the mode in the user's wandb settings
        (no_wandb_login / "wandb-config").mkdir()
        (no_wandb_login / "wandb-config" / "settings").write_text("[default]\nmode = offline\n")
    check()


def test_wandb_mode_set_by_the_recipes_env(tmp_path, monkeypatch, no_wandb_login):
    gpus(monkeypatch, 0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / TINY}\nreport_to: wandb\nenv:\n  WANDB_MODE: offline\n")
    _, args, _, _ = parse(["--recipe", str(recipe), "--output_dir", str(tmp_path / "o")], this_machine=True)
    assert args.report_to == ["wandb"]


def test_a_reporting_integration_that_is_not_installed(tmp_path, capsys, no_model_work, monkeypatch):
    gpus(monkeypatch, 0, missing=("tensorboard", "tensorboardX"))
    line = refused(capsys, ["--recipe", TINY, "--report_to", "tensorboard"], tmp_path)
    assert "report_to tensorboard: tensorboard is not installed" in line and "--report_to none" in line


def test_flag_values_override_the_recipes():
    values = preflight.effective_values(
        {"bf16": True, "use_vllm": True, "report_to": "wandb"},
        ["--bf16=false", "--use-vllm", "--report_to", "none", "--sas_ratio", "0.3"],
    )
    assert values == {"bf16": "false", "use_vllm": True, "report_to": "none"}


def test_parsing_for_validation_alone_checks_no_machine(monkeypatch):
    # `parse` without this_machine (recipe validation, studies) still accepts GPU recipes on a CPU machine.
    gpus(monkeypatch, 0, missing=("vllm",))
    _, args, _, _ = parse(["--recipe", PAPER, "--use_cpu", "true", "--bf16", "false"])
    assert args.use_vllm and args.report_to == ["wandb"]


@pytest.mark.slow
def test_the_paper_recipe_is_refused_in_seconds_in_a_real_process(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CPU-only machine's refusal")
    start = time.perf_counter()
    result = sas_trl("train", "--recipe", "deepscaler_4k", "--output_dir", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "this recipe is written for GPUs" in result.stderr and "--use_cpu true --bf16 false" in result.stderr
    assert time.perf_counter() - start < 60 and not (tmp_path / "out").exists()
