"""The paper's recipe itself trains on a CPU: `recipes/deepscaler_4k.yaml` with only scale and hardware changed.

The model is a random-init Qwen2 of DeepScaleR-1.5B-Preview's architecture shrunk to 2 layers (the real Qwen2
vocabulary, DeepSeek-R1-Distill's tokens and chat template), the data DeepScaleR-format fixture rows. Everything
else is the recipe's: its prompt format, the R1 reward, the dapo loss, KL (beta 0.001), activation
checkpointing, SAS at r = 0.3.
"""

from __future__ import annotations

import json

import pytest
from cli_helpers import ROOT

from sas_trl.cli import main
from sas_trl.constants import PROMPT_SUFFIX

# Scale: a 2-layer model, 4 rollouts of 4 prompts, 24 tokens, 2 steps. Hardware: CPU, fp32, no vLLM, one
# process, no wandb.
SCALE = {
    "max_completion_length": "24",
    "num_generations": "4",
    "per_device_train_batch_size": "8",
    "gradient_accumulation_steps": "1",
    "steps_per_generation": "1",
    "max_steps": "2",
}
HARDWARE = {
    "use_cpu": "true",
    "bf16": "false",
    "dtype": "float32",
    "use_vllm": "false",
    "accelerate_config": "null",
    "report_to": "none",
}


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipe names paths relative to the repository


@pytest.fixture(scope="module")
def deepscaler_like(tmp_path_factory):
    from sas_trl.vocabularies import save_deepscaler_like

    shrink = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4)
    return save_deepscaler_like(tmp_path_factory.mktemp("deepscaler-like"), **shrink)


@pytest.mark.slow
def test_paper_recipe_trains_two_steps_on_cpu(tmp_path, deepscaler_like, monkeypatch):
    from sas_trl.trainer import SASGRPOTrainer
    from sas_trl.training.recipes import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "deepscaler_4k.yaml")
    assert recipe["beta"] == 0.001 and recipe["gradient_checkpointing"] and recipe["reward_format"] == "r1"
    seen = []
    compute_loss = SASGRPOTrainer._compute_loss

    def spy(self, model, inputs):  # what each loss call ran with
        seen.append(
            {
                "prompt": self.processing_class.decode(inputs["prompt_ids"][0][inputs["prompt_mask"][0].bool()]),
                "checkpointing": self.model.is_gradient_checkpointing,
                "beta": self.beta,
                "ref_model": self.ref_model is not None,
                "loss_type": self.loss_type,
                "sas": self.args.sas_rule.settings(),
                "rewards": [getattr(f, "__name__", type(f).__name__) for f in self.reward_funcs],
            }
        )
        return compute_loss(self, model, inputs)

    monkeypatch.setattr(SASGRPOTrainer, "_compute_loss", spy)
    out = tmp_path / "run"
    overrides = {**SCALE, **HARDWARE}
    argv = ["train", "--recipe", "recipes/deepscaler_4k.yaml", "--model_name_or_path", str(deepscaler_like)]
    argv += ["--dataset_name", "tests/fixtures/deepscaler.jsonl", "--output_dir", str(out)]
    argv += [arg for key, value in overrides.items() for arg in (f"--{key}", value)]
    assert main(argv) == 0

    assert len(seen) == 2  # one micro-batch per optimizer step
    first = seen[0]
    # The recipe's prompt format, through DeepSeek-R1-Distill's chat template.
    assert first["prompt"].startswith("<｜begin▁of▁sentence｜><｜User｜>")
    assert first["prompt"].endswith(f"{PROMPT_SUFFIX}<｜Assistant｜><think>\n")
    assert first["checkpointing"] and first["beta"] == 0.001 and first["ref_model"] and first["loss_type"] == "dapo"
    assert first["sas"]["sas_ratio"] == 0.3 and first["sas"]["sas_strategy"] == "both"
    info = json.loads((out / "run_info.json").read_text())
    assert info["global_step"] == 2
    card = (out / "README.md").read_text()
    assert "\n# deepscaler_4k_sas\n" in card and "Step-level Advantage Selection** (SAS" in card
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert "kl" in metrics and "sas/zeroed_frac" in metrics  # KL computed against the reference model; SAS ran
    assert any(key.startswith("rewards/") for key in metrics)  # the R1-format accuracy reward ran
