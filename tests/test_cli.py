"""`sas-trl`: recipes, validation errors, overrides, end-to-end runs, launching, resuming, Hub and wandb."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sas_trl import __version__
from sas_trl.cli import main
from sas_trl.launch import LAUNCHED_ENV, launch_command
from sas_trl.recipes import RecipeError, RunArguments, load_recipe, parse

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml")) + sorted((ROOT / "recipes" / "ablations").glob("*.yaml"))
GPU_RECIPES = [r for r in RECIPES if r.name != "tiny_cpu.yaml"]
CPU_OVERRIDES = ["--use_cpu", "true", "--bf16", "false"]  # GPU recipes validated on a CPU machine
# Short versions of the built-in default, for tests.
QUICK = [
    "--sft_warmup_steps",
    "2",
    "--max_steps",
    "2",
    "--per_device_train_batch_size",
    "8",
    "--num_generations",
    "4",
    "--builtin_num_problems",
    "64",
    "--logging_steps",
    "1",
    "--disable_tqdm",
    "true",
]


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def sas_trl(*args, timeout=600, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sas_trl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--sas_ratio" in out and "--model_name_or_path" in out and "--dataset_name" in out


def test_console_script_is_installed():
    result = subprocess.run([Path(sys.executable).parent / "sas-trl", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"sas-trl {__version__}"


# --------------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------------


def test_all_recipes_are_shipped():
    names = {r.relative_to(ROOT / "recipes").as_posix() for r in RECIPES}
    expected = {"deepscaler_4k.yaml", "grpo_4k.yaml", "deepscaler_4k_lora.yaml", "tiny_cpu.yaml"}
    expected |= {
        f"ablations/{n}.yaml"
        for n in (
            "only_correct",
            "random_selection",
            "token_level",
            "std_ranking",
            "release_counting",
            "failed_truncated_only",
        )
    }
    expected |= {f"ablations/ratio_0.{r}.yaml" for r in range(1, 10)}
    assert expected <= names
    for config in ("ddp", "zero2", "zero3", "fsdp"):
        assert (ROOT / "recipes" / "accelerate" / f"{config}.yaml").is_file()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_every_recipe_parses_and_validates(recipe):
    extra = [] if recipe.name == "tiny_cpu.yaml" else CPU_OVERRIDES
    run_args, args, model_args, resolved = parse(["--recipe", str(recipe), *extra])
    raw = load_recipe(recipe)
    for key, value in raw.items():  # every recipe value reached its field
        if key not in ("bf16", "use_cpu"):
            assert resolved[key] == value
            got = getattr(run_args, key, getattr(args, key, getattr(model_args, key, None)))
            if key != "report_to":  # normalised to a list by transformers
                assert getattr(got, "value", got) == value, key


def test_the_paper_recipe_has_the_papers_values():
    run_args, args, model_args, _ = parse(["--recipe", "recipes/deepscaler_4k.yaml", *CPU_OVERRIDES])
    assert model_args.model_name_or_path == "agentica-org/DeepScaleR-1.5B-Preview"
    assert run_args.dataset_name == "agentica-org/DeepScaleR-Preview-Dataset"
    assert (run_args.max_prompt_tokens, args.max_completion_length, args.num_generations) == (1024, 4096, 8)
    processes = 8  # the recipe's accelerate config
    assert yaml.safe_load(Path(run_args.accelerate_config).read_text())["num_processes"] == processes
    rollouts_per_optimizer_step = args.per_device_train_batch_size * processes * args.gradient_accumulation_steps
    rollouts_per_generation = args.per_device_train_batch_size * processes * args.steps_per_generation
    assert rollouts_per_generation == 128 * 8 and rollouts_per_generation // rollouts_per_optimizer_step == 2
    assert (args.learning_rate, args.lr_scheduler_type.value, args.weight_decay, args.max_grad_norm) == (
        1e-6,
        "constant",
        0.01,
        1.0,
    )
    assert (args.beta, args.temperature, args.max_steps, args.save_steps) == (0.001, 1.0, 1000, 100)
    assert (args.sas_ratio, args.sas_strategy, args.use_vllm) == (0.3, "both", True)


def test_baseline_and_ablations_change_only_their_keys():
    base = load_recipe(ROOT / "recipes" / "deepscaler_4k.yaml")
    naming = {"output_dir", "run_name"}
    assert {
        k
        for k in base.keys() | load_recipe(ROOT / "recipes" / "grpo_4k.yaml").keys()
        if base.get(k) != load_recipe(ROOT / "recipes" / "grpo_4k.yaml").get(k)
    } == naming | {"sas_ratio", "sas_strategy"}
    for path in sorted((ROOT / "recipes" / "ablations").glob("*.yaml")):
        recipe = load_recipe(path)
        changed = {k for k in base.keys() | recipe.keys() if base.get(k) != recipe.get(k)} - naming
        assert len(changed) <= 1 and changed <= {k for k in recipe if k.startswith("sas_")}, path.name


def test_flags_override_the_recipe_and_env_is_set(tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model_name_or_path: builtin:tiny\nsas_ratio: 0.5\nmax_steps: 7\nuse_cpu: true\n"
        "bf16: false\nenv:\n  SAS_TRL_TEST_VAR: hello\n"
    )
    monkeypatch.delenv("SAS_TRL_TEST_VAR", raising=False)
    _, args, _, resolved = parse(["--recipe", str(recipe), "--sas_ratio", "0.7", "--output_dir", str(tmp_path)])
    assert args.sas_ratio == 0.7  # the flag wins
    assert args.max_steps == 7  # the recipe still applies elsewhere
    assert resolved["sas_ratio"] == 0.7 and resolved["output_dir"] == str(tmp_path)
    assert os.environ["SAS_TRL_TEST_VAR"] == "hello"


# --------------------------------------------------------------------------------------------------
# Recipe errors: named, before anything is loaded, exit code 2, no traceback
# --------------------------------------------------------------------------------------------------


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
        (BASE + "dataset_name: data/missing.jsonl\n", [], ["dataset_name", "data/missing.jsonl", "does not exist"]),
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


# --------------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------------


def test_launch_commands(monkeypatch):
    monkeypatch.delenv(LAUNCHED_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    argv = ["--recipe", "r.yaml"]
    assert launch_command(RunArguments(), argv, cuda=False) is None  # one process: run in place
    cpu = launch_command(RunArguments(num_processes=2), argv, cuda=False)
    assert cpu[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    assert cpu[-4:] == ["sas_trl.cli", "train", *argv]
    gpu = launch_command(RunArguments(accelerate_config="recipes/accelerate/zero2.yaml"), argv, cuda=True)
    assert gpu[1:5] == ["-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/zero2.yaml"]
    with pytest.raises(RecipeError, match="DEEPSPEED, which needs GPUs"):
        launch_command(RunArguments(accelerate_config="recipes/accelerate/zero2.yaml"), argv, cuda=False)
    monkeypatch.setenv(LAUNCHED_ENV, "1")
    assert launch_command(RunArguments(num_processes=2), argv, cuda=False) is None  # never relaunch twice


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_cpu_recipe_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recipe resolved" in printed and "sas_ratio: 0.3" in printed
    assert "step 2/2" in printed and "zeroed" in printed and "reward" in printed
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        "recipe.yaml",
        "resolved_recipe.yaml",
        "train_metrics.json",
        "run_info.json",
        "base_model/config.json",
    ):
        assert (out / name).is_file(), name
    info = json.loads((out / "run_info.json").read_text())
    assert (info["num_processes"], info["global_step"]) == (1, 2)
    card = (out / "README.md").read_text()
    assert "sas_ratio" in card and "`0.3`" in card and "sas/zeroed_frac" in card and "base_model: builtin:tiny" in card
    assert "model_name_or_path: builtin:tiny" in card
    # The saved resolved recipe is itself a valid recipe that reproduces the run's settings.
    _, args, _, resolved = parse(["--recipe", str(out / "resolved_recipe.yaml")])
    assert args.max_steps == 2 and resolved["output_dir"] == str(out)


@pytest.mark.slow
def test_two_processes_through_the_cli(tmp_path):
    out = tmp_path / "run"
    result = sas_trl(
        "train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--num_processes", "2", "--output_dir", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.distributed.run" in result.stdout
    info = json.loads((out / "run_info.json").read_text())
    assert info["num_processes"] == 2 and "MULTI_CPU" in info["distributed_type"]
    assert info["global_step"] == 2


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_save(tmp_path):
    out = tmp_path / "run"
    args = [*QUICK, "--max_steps", "40", "--save_steps", "2", "--output_dir", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "sas_trl.cli", "train", "--recipe", "recipes/tiny_cpu.yaml", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (out / "checkpoint-4" / "trainer_state.json").is_file():
        assert process.poll() is None and time.time() < deadline, "the run ended before its 4th step"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # a crash: no chance to clean up, maybe in the middle of a save
    process.wait()
    # A checkpoint is complete once its trainer_state.json is written (last); a half-written one is skipped.
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    assert saved and saved[-1] >= 4

    result = sas_trl(
        "train",
        "--recipe",
        "recipes/tiny_cpu.yaml",
        *args,
        "--max_steps",
        str(saved[-1] + 2),
        "--resume_from_checkpoint",
        "last",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / f"checkpoint-{saved[-1] + 2}" / "trainer_state.json").read_text())
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps[-2:] == [saved[-1] + 1, saved[-1] + 2]  # continued after the last save, lost nothing before it


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    from sas_trl.train import resolve_resume

    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert resolve_resume("last", tmp_path) == str(tmp_path / "checkpoint-4")
    assert resolve_resume("last", tmp_path / "missing") is None
    assert resolve_resume(None, tmp_path) is None
    with pytest.raises(RecipeError, match="checkpoint-6"):
        resolve_resume(str(tmp_path / "checkpoint-6"), tmp_path)


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
    import sas_trl.hub as hub

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


def test_push_command_checks_the_folder(tmp_path, capsys):
    assert main(["push", "--output_dir", str(tmp_path), "--hub_model_id", "me/x"]) == 2
    assert "holds no saved model" in capsys.readouterr().err


@pytest.mark.slow
def test_wandb_offline_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--recipe",
                "recipes/tiny_cpu.yaml",
                *QUICK,
                "--output_dir",
                str(out),
                "--report_to",
                "wandb",
                "--run_name",
                "tiny-wandb-test",
            ]
        )
        == 0
    )
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # An offline run is one protobuf log; its metric names, config keys and run name are stored as plain bytes.
    log = next(runs[0].glob("*.wandb")).read_bytes()
    for needle in (
        b"train/sas/zeroed_frac",
        b"train/sas/steps_per_rollout",
        b"train/reward",
        b"sas_ratio",
        b"tiny-wandb-test",
    ):
        assert needle in log, needle


def test_a_flag_can_switch_off_the_recipes_launch_config():
    run_args, *_ = parse(["--recipe", "recipes/deepscaler_4k.yaml", *CPU_OVERRIDES, "--accelerate_config", "null"])
    assert run_args.accelerate_config is None
    assert launch_command(run_args, [], cuda=True) is None  # one GPU: run in place


def test_eval_table_goes_into_the_model_card(tmp_path):
    from types import SimpleNamespace

    from sas_trl.hub import add_eval_table, write_card

    args = SimpleNamespace(
        max_steps=2,
        max_completion_length=32,
        num_generations=4,
        learning_rate=1e-4,
        beta=0.0,
        **{name: 0.3 for name in __import__("sas_trl.hub").hub.SAS_FIELDS},
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
