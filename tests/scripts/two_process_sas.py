"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`: a short SAS run that records, per process,
every micro-batch it trained on and the zero mask it applied."""

import sys
from pathlib import Path

import torch
from datasets import Dataset

from sas_trl import SASConfig, SASGRPOTrainer

torch.set_num_threads(1)
model_dir, out_dir = sys.argv[1], Path(sys.argv[2])


def parity_reward(completions, **kwargs):
    return [float(len(c) % 2 == 0) for c in completions]


class RecordingTrainer(SASGRPOTrainer):
    records: list = []

    def _apply_sas(self, inputs, token_logps, policy_logps=None):
        before = inputs["advantages"].clone()
        super()._apply_sas(inputs, token_logps, policy_logps)
        keys = ("completion_ids", "completion_mask", "sas_is_correct", "sas_is_truncated")
        record = {k: inputs[k].clone() for k in keys}
        record.update(logps=token_logps.clone(), advantages=before, masked=inputs["advantages"].clone())
        self.records.append(record)


prompts = [f"Add {a}, {b}." for a in range(1, 9) for b in range(1, 3)]
args = SASConfig(
    output_dir=str(out_dir / "run"),
    per_device_train_batch_size=4,
    num_generations=4,
    max_completion_length=20,
    max_steps=2,
    learning_rate=1e-3,
    sas_ratio=0.5,
    report_to="none",
    use_cpu=True,
    bf16=False,
    seed=0,
    save_strategy="no",
)
trainer = RecordingTrainer(
    model=model_dir,
    reward_funcs=parity_reward,
    args=args,
    train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
)
trainer.train()
acc = trainer.accelerator
torch.save(
    {
        "num_processes": acc.num_processes,
        "distributed_type": str(acc.distributed_type),
        "records": trainer.records,
        "log_history": trainer.state.log_history,
    },
    out_dir / f"rank{acc.process_index}.pt",
)
