"""Training-step time: `SASGRPOTrainer` against TRL's own `GRPOTrainer`, same model, data, seed and settings.

Both trainers start from the same saved tiny model (`sas_trl.tiny.save_tiny_model`) with the same `GRPOConfig`
fields and seed. The learning rate is 0 (the optimizer still runs its full update): otherwise the two policies
drift apart after the first step, sample rollouts of different lengths, and generation time, not SAS, decides the
ratio. With it, both trainers sample exactly the same rollouts (checked: equal token counts) and SAS only adds its
mask to each loss. Runs alternate (GRPO, SAS,
SAS, GRPO, ...) so drifting machine load hits both alike. A run's step time is the median over its steps after
`--warmup` steps; the table gives the min and median over runs and SAS / GRPO ratios of both.

The stand-in verifier marks a rollout correct from a hash of its text (half of them, deterministically): the
random-init model never solves anything, and SAS must see both correct and failed rollouts to do all its work.

    .venv/bin/python benchmarks/train_step.py [--runs 5] [--steps 12] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainerCallback

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.train_step
    from machine import machine_info
except ImportError:  # pragma: no cover
    from benchmarks.machine import machine_info


def hash_verifier(completions: list[str], **kwargs) -> list[float]:
    """1.0 for about half the completions, deterministically (a stand-in for a real verifier)."""
    return [float(zlib.crc32(text.encode()) % 2) for text in completions]


def prompts(n: int) -> Dataset:
    """Addition prompts in the tiny model's format."""
    from sas_trl.tiny import PROMPT_SUFFIX

    return Dataset.from_dict({"prompt": [f"Add {i % 9 + 1}, {(i * 7) % 9 + 1}.{PROMPT_SUFFIX}" for i in range(n)]})


class StepTimer(TrainerCallback):
    """Wall-clock seconds of every optimizer step (generation, loss, backward and update)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def config_fields(output_dir: str, steps: int, batch: int, generations: int, completion_length: int) -> dict:
    """The `GRPOConfig` fields both trainers share."""
    return {
        "output_dir": output_dir,
        "max_steps": steps,
        "per_device_train_batch_size": batch,
        "num_generations": generations,
        "max_completion_length": completion_length,
        "learning_rate": 0.0,
        "beta": 0.0,
        "seed": 0,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "logging_steps": 10**6,
        "save_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def timed_trainer(kind: str, model_dir: Path, fields: dict, dataset: Dataset, reward):
    """A "grpo" (trl.GRPOTrainer) or "sas" (SASGRPOTrainer) trainer that times its steps, and, for SAS, the seconds
    inside SAS's own code (`_apply_sas`, `_flush_sas_stats`). Returns (trainer, StepTimer, SAS seconds list)."""
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from sas_trl import SASConfig, SASGRPOTrainer

    timer, sas_seconds = StepTimer(), []
    trainer_class, config_class = (GRPOTrainer, GRPOConfig) if kind == "grpo" else (SASGRPOTrainer, SASConfig)
    trainer = trainer_class(
        str(model_dir), [reward], args=config_class(**fields), train_dataset=dataset, callbacks=[timer]
    )
    if kind == "sas":
        for name in ("_apply_sas", "_flush_sas_stats"):
            setattr(trainer, name, _timed(getattr(trainer, name), sas_seconds))
    trainer.remove_callback(PrinterCallback)
    return trainer, timer, sas_seconds


def run_once(kind: str, model_dir: Path, fields: dict, dataset: Dataset) -> tuple[list[float], int, float]:
    """Train with "grpo" (trl.GRPOTrainer) or "sas" (SASGRPOTrainer).

    Returns seconds per step, tokens trained on, and the seconds per step spent inside SAS's own code (`_apply_sas`:
    the masks and metric counts; `_flush_sas_stats`: their one reduction per logging step), a direct measure of the
    overhead that machine noise cannot hide.
    """
    trainer, timer, sas_seconds = timed_trainer(kind, model_dir, fields, dataset, hash_verifier)
    trainer.train()
    own = sum(sas_seconds) / len(timer.seconds)
    return timer.seconds, int(trainer.state.num_input_tokens_seen), own


def _timed(method, seconds: list[float]):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        method(*args, **kwargs)
        seconds.append(time.perf_counter() - start)

    return timed


def run(runs: int, steps: int, warmup: int, batch: int, generations: int, completion_length: int) -> dict:
    """Alternate GRPO and SAS runs; return the JSON-ready result."""
    from sas_trl.tiny import save_tiny_model

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny_model(Path(tmp) / "tiny")
        fields = config_fields(str(Path(tmp) / "out"), steps, batch, generations, completion_length)
        dataset = prompts(steps * batch)
        run_once("grpo", model_dir, {**fields, "max_steps": 2}, dataset)  # warm imports and caches
        per_run: dict[str, list[float]] = {"grpo": [], "sas": []}
        all_steps: dict[str, list[list[float]]] = {"grpo": [], "sas": []}
        tokens: set[int] = set()
        sas_own: list[float] = []
        for r in range(runs):
            for kind in ("grpo", "sas") if r % 2 == 0 else ("sas", "grpo"):
                seconds, num_tokens, own = run_once(kind, model_dir, fields, dataset)
                if kind == "sas":
                    sas_own.append(own)
                all_steps[kind].append(seconds)
                per_run[kind].append(statistics.median(seconds[warmup:]))
                tokens.add(num_tokens)

    # Identical rollouts make step s of every run the same work: the fastest run of each step is the least disturbed
    # by other processes, and summing those per-step minima is the steadiest comparison a shared machine allows.
    paired = {
        kind: sum(min(step) for step in zip(*(run[warmup:] for run in runs_), strict=True))
        for kind, runs_ in all_steps.items()
    }
    summary = {
        kind: {"min_s": min(values), "median_s": statistics.median(values), "run_medians_s": values}
        for kind, values in per_run.items()
    }
    return {
        "benchmark": "train_step",
        "machine": machine_info(),
        "config": {
            "model": "sas_trl.tiny.save_tiny_model() defaults",
            "runs_each": runs,
            "steps_per_run": steps,
            "warmup_steps_dropped": warmup,
            "per_device_train_batch_size": batch,
            "num_generations": generations,
            "max_completion_length": completion_length,
            "torch_threads": torch.get_num_threads(),
            "sas": "SASConfig defaults (ratio 0.3, both, paper count mode)",
        },
        "results": summary,
        "same_rollouts": len(tokens) == 1,
        "tokens_per_run": sorted(tokens),
        "sas_own_seconds_per_step": statistics.median(sas_own),
        "ratio_per_step_min": paired["sas"] / paired["grpo"],
        "ratio_min": summary["sas"]["min_s"] / summary["grpo"]["min_s"],
        "ratio_median": summary["sas"]["median_s"] / summary["grpo"]["median_s"],
        "step_seconds": all_steps,
    }


def print_table(result: dict) -> None:
    """The human-readable summary of a `run` result."""
    cfg, res = result["config"], result["results"]
    print(
        f"train step: tiny model, {cfg['per_device_train_batch_size']} completions of <= "
        f"{cfg['max_completion_length']} tokens per step, {cfg['runs_each']} interleaved runs x "
        f"{cfg['steps_per_run']} steps each"
    )
    print(f"{'':28} {'min ms':>10} {'median ms':>10}")
    for kind, label in (("grpo", "trl.GRPOTrainer"), ("sas", "SASGRPOTrainer")):
        print(f"{label:28} {1e3 * res[kind]['min_s']:10.1f} {1e3 * res[kind]['median_s']:10.1f}")
    print(f"{'SAS / GRPO':28} {result['ratio_min']:10.3f} {result['ratio_median']:10.3f}")
    print(f"SAS / GRPO, sum of per-step minima over runs: {result['ratio_per_step_min']:.3f}")
    own = result["sas_own_seconds_per_step"]
    print(
        f"time inside SAS's own code: {1e3 * own:.2f} ms/step ({100 * own / res['grpo']['median_s']:.2f}% of a step)"
    )
    print(f"same rollouts in every run: {result['same_rollouts']} (tokens per run: {result['tokens_per_run']})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each trainer")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps of each run left out")
    parser.add_argument("--batch", type=int, default=16, help="completions per step")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_step.json"))
    args = parser.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run(args.runs, args.steps, args.warmup, args.batch, args.generations, args.completion_length)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
