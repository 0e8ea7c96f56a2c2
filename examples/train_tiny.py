"""A short SAS run on a tiny random-init model, on CPU, in seconds: shows the trainer working end to end.

    python examples/train_tiny.py

The model is built locally (no download); the reward is 1.0 when a rollout contains a "\\n\\n"-delimited
step, so both correct and failed rollouts appear from the first step.
"""

import tempfile

import torch
from datasets import Dataset

from sas_trl import SASConfig, SASGRPOTrainer
from sas_trl.tiny import save_tiny_model


def has_steps(completions, **kwargs):
    return [float("\n\n" in c) for c in completions]


def main(max_steps: int = 5) -> SASGRPOTrainer:
    torch.set_num_threads(1)  # fastest for a tiny model on shared cores
    workdir = tempfile.mkdtemp(prefix="sas-tiny-")
    model_dir = save_tiny_model(f"{workdir}/model")
    prompts = Dataset.from_list([{"prompt": f"Add {a}, {b}.\n<think>\n"} for a in range(1, 10) for b in range(1, 10)])
    args = SASConfig(
        output_dir=f"{workdir}/run",
        per_device_train_batch_size=8,
        num_generations=8,
        max_completion_length=32,
        max_steps=max_steps,
        learning_rate=1e-3,
        sas_ratio=0.3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
    )
    trainer = SASGRPOTrainer(model=str(model_dir), reward_funcs=has_steps, args=args, train_dataset=prompts)
    trainer.train()
    print(f"{'step':>4} {'loss':>8} {'reward':>7} {'zeroed':>7} {'zeroed|correct':>15} {'zeroed|failed':>14}")
    for log in trainer.state.log_history:
        if "loss" in log:
            print(
                f"{log['step']:>4} {log['loss']:>8.4f} {log['reward']:>7.3f} {log.get('sas/zeroed_frac', 0):>7.3f}"
                f" {log.get('sas/zeroed_frac_correct', float('nan')):>15.3f}"
                f" {log.get('sas/zeroed_frac_failed', float('nan')):>14.3f}"
            )
    return trainer


if __name__ == "__main__":
    main()
