"""`sas-trl train --dry_run`: the paper's recipe checked as on its 8 GPUs and described, on a CPU, without model work.

The machine is simulated where it matters (no CUDA, the Hub unreachable); the parameter count is checked against
the architecture's own module on the meta device (no memory, no weights).
"""

from __future__ import annotations

import time

import pytest
import torch
from cli_helpers import ROOT, sas_trl, trip_model_work

from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.training import estimates, preflight

PAPER = "recipes/deepscaler_4k.yaml"  # bf16, vLLM, wandb, DeepSpeed ZeRO-2 on 8 GPUs
DEEPSCALER_PARAMETERS = 1_777_088_000  # Qwen2 1.5B, untied: see test_the_paper_models_parameters_by_hand


@pytest.fixture(autouse=True)
def cpu_machine_offline(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(preflight, "cuda_devices", lambda: 0)
    monkeypatch.setattr(preflight, "hub_dataset_unreachable", lambda name: "ConnectError: no network")
    trip_model_work(monkeypatch, extra=("load_train_dataset",))


def dry(capsys, argv: list[str], tmp_path) -> str:
    """`sas-trl train ARGV --dry_run`: exit 0, its report (stdout), nothing written."""
    out = tmp_path / "out"
    code = main(["train", *argv, "--output_dir", str(out), "--dry_run"])
    captured = capsys.readouterr()
    assert code == 0 and not out.exists(), captured.err
    return captured.out


def test_the_paper_recipe_on_a_cpu(capsys, tmp_path):
    report = dry(capsys, ["--recipe", PAPER], tmp_path)
    # checked as on 8 GPUs: this machine's CUDA refusal is named as skipped, its other needs listed
    assert "skipped: this machine's CUDA checks" in report and "no CUDA device (bf16, use_vllm" in report
    assert "use_vllm: true needs vLLM" in report or "vllm" not in report.split("skipped")[1]
    assert "Hub dataset agentica-org/DeepScaleR-Preview-Dataset cannot be reached" in report
    # the resolved settings: the recipe's values, not the CPU build's
    assert "\n  bf16: true\n" in report and "use_cpu" not in report.split("resolved settings")[1].split("launch")[0]
    assert f"output_dir: {tmp_path / 'out'}\n" in report
    # the launch command
    launch = report.split("launch command (8 processes, DeepSpeed ZeRO-2):\n  ")[1].splitlines()[0]
    assert "-m accelerate.commands.launch --config_file recipes/accelerate/zero2.yaml -m sas_trl.cli train" in launch
    assert "--dry_run" not in launch and f"--recipe {PAPER}" in launch
    # 16 rollouts x 4 accumulation per GPU, x 8 GPUs; 8 generations per prompt
    assert "per GPU: 8 prompts x 8 generations = 64 rollouts" in report
    assert "in all:  64 prompts x 8 generations = 512 rollouts (8 process(es))" in report
    assert "each generation: 128 prompts x 8 generations = 1,024 rollouts, used for 2 optimizer step(s)" in report
    # parameters without weights, disk and memory, each an estimate
    assert f"model parameters: {DEEPSCALER_PARAMETERS:,} (1.777B" in report
    one = DEEPSCALER_PARAMETERS * (2 + 12 + 2)  # safetensors bf16, DeepSpeed's fp32 state, its bf16 copy
    assert f"disk, estimate (one checkpoint under DeepSpeed ZeRO-2): {one / 1e9:.1f} GB" in report
    total = 2 * one + 2 * DEEPSCALER_PARAMETERS  # save_total_limit 2, plus the final weights
    assert f"disk for the whole run, estimate: {total / 1e9:.1f} GB (2 of 10 checkpoint(s) kept" in report
    memory = report.split("GPU memory per device, estimate (DeepSpeed ZeRO-2, 8 process(es), AdamW):")[1]
    assert f"weights (bf16): {2 * DEEPSCALER_PARAMETERS / 1e9:.1f} GB" in memory
    assert f"optimizer state (fp32 master + AdamW, 12 bytes/param, sharded): {12 * 1.777088 / 8:.1f} GB" in memory
    assert "reference model (bf16)" in memory and "activations (checkpointed; rough: 16 x 5,120 tokens)" in memory
    assert "completion logits" in memory and "total, estimate:" in memory
    assert "vllm_gpu_memory_utilization 0.4" in memory


def test_zero3_by_name_shards_the_weights(capsys, tmp_path):
    report = dry(capsys, ["--recipe", "deepscaler_4k", "--accelerate_config", "zero3"], tmp_path)
    assert "launch command (8 processes, DeepSpeed ZeRO-3)" in report
    assert "--config_file " + str(ROOT / "sas_trl" / "recipes" / "accelerate" / "zero3.yaml") in report
    memory = report.split("GPU memory per device")[1]
    assert f"weights (bf16, sharded): {2 * 1.777088 / 8:.1f} GB" in memory
    assert "reference model (bf16, sharded)" in memory


def test_a_cpu_recipe_runs_in_one_process_and_fsdp_and_ddp_estimates(capsys, tmp_path):
    report = dry(capsys, ["--config", "recipes/tiny_cpu.yaml"], tmp_path)
    assert "launch command (one process):" in report and "train --config recipes/tiny_cpu.yaml" in report
    assert "the built-in model's settings" in report and "(none would refuse)" in report
    assert "memory per process (a CPU run), estimate (one process" in report and "GPU memory" not in report
    report = dry(capsys, ["--recipe", PAPER, "--accelerate_config", "fsdp", "--num_processes", "4"], tmp_path)
    assert "launch command (4 processes, FSDP (full sharding))" in report and "--num_processes 4" in report
    assert "in all:  32 prompts x 8 generations = 256 rollouts (4 process(es))" in report
    report = dry(capsys, ["--recipe", PAPER, "--accelerate_config", "ddp", "--save_total_limit", "null"], tmp_path)
    assert "(10 of 10 checkpoint(s) kept, no save_total_limit" in report and "(DDP, 8 process(es)" in report


def test_a_recipe_a_start_would_refuse_on_its_target_is_refused(capsys, tmp_path):
    # 64 rollouts per generation pass one process's check but not 8 processes of 16 rollouts each
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / PAPER}\nsteps_per_generation: null\ngeneration_batch_size: 64\n")
    code = main(["train", "--recipe", str(recipe), "--output_dir", str(tmp_path / "o"), "--dry_run"])
    err = capsys.readouterr().err
    assert code == 2 and "generation_batch_size=64 is not a multiple of" in err and "16 x 8" in err
    assert dry(capsys, ["--recipe", str(recipe), "--num_processes", "4"], tmp_path)  # 64 = 16 x 4: fine
    code = main(["train", "--recipe", PAPER, "--sas_ratio", "2", "--dry_run"])
    assert code == 2 and "sas_ratio" in capsys.readouterr().err  # the recipe's own checks run as usual
    assert main(["train", "--recipe", PAPER, "--dry_run=maybe"]) == 2
    assert "--dry_run=maybe: expected true or false" in capsys.readouterr().err


def test_the_paper_models_parameters_by_hand():
    h, layers, inter, vocab, heads, kv = 1536, 28, 8960, 151936, 12, 2
    d = h // heads  # 128
    attention = (h * h + h) + 2 * (h * kv * d + kv * d) + h * h  # q with bias, k and v with bias, o
    per_layer = attention + 3 * h * inter + 2 * h  # gated MLP, two RMSNorms
    expected = layers * per_layer + 2 * vocab * h + h  # embedding and an untied LM head, final norm
    assert expected == DEEPSCALER_PARAMETERS
    size = estimates.model_size("agentica-org/DeepScaleR-1.5B-Preview")
    assert size.parameters == DEEPSCALER_PARAMETERS and size.dtype_bytes == 2
    tied = dict(estimates.KNOWN_CONFIGS["agentica-org/DeepScaleR-1.5B-Preview"], tie_word_embeddings=True)
    assert estimates.count_parameters(tied) == 1_543_714_304  # Qwen2-1.5B, whose embedding is tied


@pytest.mark.parametrize(
    ("model_type", "extra"),
    [
        ("qwen2", {}),
        ("llama", {"attention_bias": True, "mlp_bias": True}),
        ("qwen3", {"head_dim": 24}),
        ("mistral", {}),
    ],
)
def test_the_count_matches_the_architecture(model_type, extra):
    from transformers import AutoConfig, AutoModelForCausalLM

    numbers = {
        "hidden_size": 64,
        "num_hidden_layers": 3,
        "intermediate_size": 160,
        "vocab_size": 1000,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "tie_word_embeddings": False,
        **extra,
    }
    config = AutoConfig.for_model(model_type, **numbers)
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = AutoModelForCausalLM.from_config(config)
    assert estimates.count_parameters({"model_type": model_type, **numbers}) == model.num_parameters()


@pytest.mark.parametrize("targets", [None, ["q_proj", "k_proj", "down_proj"], "all-linear"])
def test_the_lora_count_matches_peft(targets):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    numbers = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 160,
        "vocab_size": 1000,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen2", **numbers))
        trainable, _ = get_peft_model(model, LoraConfig(r=8, target_modules=targets)).get_nb_trainable_parameters()
    assert estimates.lora_parameters({"model_type": "qwen2", **numbers}, 8, targets) == trainable


def test_the_lora_recipe(capsys, tmp_path):
    report = dry(capsys, ["--recipe", "deepscaler_4k_lora"], tmp_path)
    adapter = 28 * 64 * (2 * (1536 + 1536) + 2 * (1536 + 256) + 3 * (1536 + 8960))  # r 64, all seven projections
    assert f"LoRA adapter parameters: {adapter:,}" in report
    assert f"disk, estimate (one checkpoint under DDP): {12 * adapter / 1e9:.1f} GB" in report  # fp32 + AdamW
    memory = report.split("GPU memory per device")[1]
    assert f"LoRA adapter (fp32 weights, gradients, AdamW: 16 bytes/param): {16 * adapter / 1e9:.1f} GB" in memory
    assert "reference model" not in memory  # the base with the adapter off is the reference


def test_the_model_size_from_a_folder_or_unknown(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "intermediate_size": 16, '
        '"vocab_size": 10, "num_attention_heads": 2, "tie_word_embeddings": true, "torch_dtype": "float32"}'
    )
    size = estimates.model_size(str(tmp_path))
    assert size.parameters == 8 * 8 * 4 + 3 * 8 * 16 + 2 * 8 + 10 * 8 + 8 and size.dtype_bytes == 4
    assert estimates.model_size(str(tmp_path), dtype="bfloat16").dtype_bytes == 2  # the recipe's dtype wins
    unknown = estimates.model_size("nobody/no-such-model")
    assert unknown.parameters is None and "not a known model" in unknown.source


def test_an_unknown_model_says_so(capsys, tmp_path):
    report = dry(capsys, ["--recipe", PAPER, "--model_name_or_path", "nobody/no-such-model"], tmp_path)
    assert "model parameters: unknown (no config.json here or in the Hugging Face cache" in report
    assert "no disk or memory estimate" in report and "GPU memory per device" not in report


def test_accelerate_configs_by_name():
    from sas_trl.training.packaged import PACKAGED, accelerate_names, resolve_accelerate_config

    assert resolve_accelerate_config("zero2") == str(PACKAGED / "accelerate" / "zero2.yaml")
    assert resolve_accelerate_config("zero1").endswith("trl/accelerate_configs/zero1.yaml")  # TRL's own
    assert resolve_accelerate_config("recipes/accelerate/ddp.yaml") == "recipes/accelerate/ddp.yaml"  # a path
    assert {"ddp", "fsdp", "zero2", "zero3", "zero1", "multi_gpu"} <= set(accelerate_names())
    with pytest.raises(RecipeError, match=r"accelerate_config 'zer2' is neither a file nor a known .*zero2, zero3"):
        resolve_accelerate_config("zer2")


@pytest.mark.slow
def test_the_paper_recipe_dry_run_in_a_real_process_takes_seconds(tmp_path):
    for extra in ([], ["--accelerate_config", "zero3"]):
        start = time.perf_counter()
        out = tmp_path / "out"
        result = sas_trl("train", "--recipe", "deepscaler_4k", "--dry_run", "--output_dir", str(out), *extra)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        for piece in ("launch command", "effective batch", "disk for the whole run, estimate", "GPU memory per"):
            assert piece in result.stdout
        assert time.perf_counter() - start < 60 and not out.exists()


def test_the_dry_run_prints_no_credential(capsys, tmp_path):
    secret = "hf_dryRunT0kenNeverPrinted"
    report = dry(capsys, ["--recipe", PAPER, "--hub_token", secret], tmp_path)
    assert secret not in report and "launch command" in report
