"""One GPU, the paper's shape: SAS against GRPO per optimizer step, SAS's masks against the floor, peak memory.

A random-init model of DeepScaleR-1.5B-Preview's architecture (Qwen2, 1.78B parameters, the real Qwen2 vocabulary
with DeepSeek-R1-Distill's tokens and chat template: `sas_trl.vocabularies.save_deepscaler_like`) in bf16, with
activation checkpointing as the paper's recipe sets it, generates 4,096-token completions through TRL's
transformers `generate` backend (no vLLM: the machine has no network). A random-init model never writes EOS or
`</think>`, so every completion is exactly 4,096 tokens and every run does the same work; the learning rate is 0
(the optimizer still runs), so GRPO and SAS sample the same rollouts. A stand-in verifier marks half the rollouts
correct (`hash_verifier`), so SAS does all its work.

* step: after a short untimed warm-up run, runs of `trl.GRPOTrainer` and `SASGRPOTrainer` interleaved (GRPO, SAS;
  then SAS, GRPO with `--runs 2`; ...). Each run makes one generation of `--batch x --steps-per-generation`
  rollouts and trains `--steps-per-generation` optimizer steps on it. Per run: the generating step, the mean of
  the others (loss, backward, update), the time per optimizer step over the run, and the seconds inside SAS's own
  code (`_apply_sas`, `_flush_sas_stats`).
* masks: `segment_steps` + `select_zero_mask` on the GPU for 1,024 rollouts x 4,096 tokens (`benchmarks/masks.py`'s
  batch, the accelerator call with static slots), against the one-pass floor (a masked reduction of the same
  tensors), synchronised, interleaved.
* memory: `torch.cuda.max_memory_allocated` per run and per mask call.

On a lent single-GPU machine (estimated at about 5 minutes with the defaults, dominated by two generations of 32 x
4,096 tokens; `--runs 2` doubles that part):

    python benchmarks/gpu_step.py --out benchmarks/results/gpu_step.json

`--tiny` runs the same code on a CPU at a tiny shape (2 layers, 16-token completions), as the tests do.
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

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.gpu_step
    from machine import machine_info
    from masks import floor_reduction, make_batch, vectorized_mask
    from train_step import timed_trainer
except ImportError:  # pragma: no cover
    from benchmarks.machine import machine_info
    from benchmarks.masks import floor_reduction, make_batch, vectorized_mask
    from benchmarks.train_step import timed_trainer

TINY_ARCHITECTURE = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}
PROBLEMS = [
    "What is the sum of the first 20 positive odd numbers?",
    "Find the remainder when $2^{100}$ is divided by 7.",
    "How many positive divisors does 360 have?",
    "Compute $\\binom{10}{3} + \\binom{10}{4}$.",
]


def hash_verifier(completion_ids: list[list[int]], **kwargs) -> list[float]:
    """1.0 for about half the completions, from a hash of their tokens (a stand-in for a real verifier)."""
    return [float(zlib.crc32(str(ids).encode()) % 2) for ids in completion_ids]


def prompts(n: int) -> Dataset:
    """DeepScaleR-format conversational prompts (the recipe's template: the problem, then the boxed-answer line)."""
    from sas_trl.constants import PROMPT_TEMPLATE

    rows = [
        [{"role": "user", "content": PROMPT_TEMPLATE.replace("{problem}", PROBLEMS[i % len(PROBLEMS)])}]
        for i in range(n)
    ]
    return Dataset.from_dict({"prompt": rows})


def config_fields(output_dir: str, cuda: bool, batch: int, generations: int, per_generation: int, length: int) -> dict:
    """The `GRPOConfig` fields both trainers share: the paper recipe's loss, KL and checkpointing; learning rate 0."""
    return {
        "output_dir": output_dir,
        "max_steps": per_generation,  # one generation, then its optimizer steps
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": per_generation,
        "num_generations": generations,
        "max_completion_length": length,
        "temperature": 1.0,
        "top_p": 1.0,
        "learning_rate": 0.0,
        "loss_type": "dapo",
        "beta": 0.001,
        "gradient_checkpointing": True,
        "bf16": cuda,
        "use_cpu": not cuda,
        "model_init_kwargs": {"dtype": torch.bfloat16 if cuda else torch.float32},
        "seed": 0,
        "report_to": "none",
        "logging_steps": 10**6,
        "save_strategy": "no",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def run_once(kind: str, model_dir: Path, fields: dict, dataset: Dataset, cuda: bool) -> dict:
    """One run of "grpo" (trl.GRPOTrainer) or "sas" (SASGRPOTrainer): its step times, tokens, SAS time, peak memory."""
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer, timer, sas_seconds = timed_trainer(kind, model_dir, fields, dataset, hash_verifier)
    trainer.train()
    seconds = timer.seconds
    result = {
        "step_seconds": seconds,
        "generating_step_s": seconds[0],
        "train_only_step_s": statistics.mean(seconds[1:]) if len(seconds) > 1 else None,
        "per_optimizer_step_s": sum(seconds) / len(seconds),
        "tokens": int(trainer.state.num_input_tokens_seen),
        "sas_own_s_per_step": sum(sas_seconds) / len(seconds) if kind == "sas" else 0.0,
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
    }
    del trainer
    return result


def time_steps(model_dir: Path, fields: dict, runs: int, cuda: bool) -> dict:
    """GRPO and SAS runs interleaved (GRPO, SAS, SAS, GRPO, ...); per kind: every run and the medians over runs."""
    dataset = prompts(
        fields["per_device_train_batch_size"] * fields["steps_per_generation"] // fields["num_generations"]
    )
    run_once("grpo", model_dir, {**fields, "max_completion_length": 16}, dataset, cuda)  # CUDA context, kernels
    out: dict[str, list[dict]] = {"grpo": [], "sas": []}
    for r in range(runs):
        for kind in ("grpo", "sas") if r % 2 == 0 else ("sas", "grpo"):
            out[kind].append(run_once(kind, model_dir, fields, dataset, cuda))
            print(f"  {kind} run {len(out[kind])}: {out[kind][-1]['per_optimizer_step_s']:.2f} s/step", flush=True)
    summary = {}
    for kind, results in out.items():
        summary[kind] = {
            key: statistics.median(r[key] for r in results)
            for key in ("generating_step_s", "per_optimizer_step_s", "sas_own_s_per_step")
        }
        train_only = [r["train_only_step_s"] for r in results if r["train_only_step_s"] is not None]
        summary[kind]["train_only_step_s"] = statistics.median(train_only) if train_only else None
        peaks = [r["peak_memory_bytes"] for r in results if r["peak_memory_bytes"] is not None]
        summary[kind]["peak_memory_bytes"] = max(peaks) if peaks else None
        summary[kind]["runs"] = results
    summary["same_rollouts"] = len({r["tokens"] for rs in out.values() for r in rs}) == 1
    summary["ratio_per_optimizer_step"] = (
        summary["sas"]["per_optimizer_step_s"] / summary["grpo"]["per_optimizer_step_s"]
    )
    if summary["grpo"]["train_only_step_s"]:
        summary["ratio_train_only_step"] = summary["sas"]["train_only_step_s"] / summary["grpo"]["train_only_step_s"]
    return summary


def time_masks(rollouts: int, length: int, steps: int, repeats: int, device: torch.device) -> dict:
    """SAS's masks on `device` (static slots, as the trainer calls them on accelerators) against the one-pass floor."""
    from sas_trl.core import boundary_table
    from sas_trl.vocabularies import qwen2_tokenizer

    tokenizer = qwen2_tokenizer()
    batch = make_batch(tokenizer, rollouts, length, steps)
    for name in ("completion_ids", "completion_mask", "token_logps", "is_correct"):
        setattr(batch, name, getattr(batch, name).to(device))
    weights = batch.completion_mask.float()
    table = boundary_table(tokenizer, len(tokenizer), device=device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    contenders = {
        "floor": lambda: floor_reduction(batch, weights),
        "vectorized": lambda: vectorized_mask(batch, tokenizer, table, num_slots=length),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    peaks: dict[str, int | None] = {}
    for name, fn in contenders.items():  # warm-up, and each one's peak memory above what the inputs hold
        sync()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        fn()
        sync()
        peaks[name] = torch.cuda.max_memory_allocated() - before if cuda else None
    names = list(contenders)
    for r in range(repeats):
        for name in names[r % 2 :] + names[: r % 2]:
            sync()
            start = time.perf_counter()
            contenders[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    floor = min(times["floor"])
    results = {
        name: {
            "min_s": min(ts),
            "median_s": statistics.median(ts),
            "x_floor": min(ts) / floor,
            "peak_bytes": peaks[name],
        }
        for name, ts in times.items()
    }
    return {"rollouts": rollouts, "length": length, "target_steps": steps, "repeats": repeats, "results": results}


def run(args: argparse.Namespace) -> dict:
    """Build the model, time the steps and the masks; return the JSON-ready result."""
    from sas_trl.vocabularies import DEEPSCALER_ARCHITECTURE, save_deepscaler_like

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda:
        torch.set_num_threads(1)
    shrink = TINY_ARCHITECTURE if args.tiny else {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        dtype = torch.bfloat16 if cuda else torch.float32
        model_dir = save_deepscaler_like(Path(tmp) / "deepscaler-like", dtype=dtype, **shrink)
        build_s = time.perf_counter() - start
        print(f"model saved in {build_s:.0f} s; timing GRPO and SAS steps", flush=True)
        fields = config_fields(
            str(Path(tmp) / "out"), cuda, args.batch, args.generations, args.steps_per_generation, args.length
        )
        steps = time_steps(model_dir, fields, args.runs, cuda)
    print("timing the masks", flush=True)
    masks = time_masks(
        args.mask_rollouts, args.mask_length, args.mask_steps, args.repeats, torch.device("cuda" if cuda else "cpu")
    )
    machine = machine_info()
    if cuda:
        machine["gpu"] = torch.cuda.get_device_name()
        machine["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        machine["cuda"] = torch.version.cuda
    import transformers
    import trl

    machine.update(transformers=transformers.__version__, trl=trl.__version__)
    return {
        "benchmark": "gpu_step",
        "machine": machine,
        "config": {
            "device": "cuda" if cuda else "cpu",
            "dtype": str(dtype),
            "architecture": {**DEEPSCALER_ARCHITECTURE, **shrink},
            "runs_each": args.runs,
            "per_device_train_batch_size": args.batch,
            "num_generations": args.generations,
            "steps_per_generation": args.steps_per_generation,
            "max_completion_length": args.length,
            "generation": "TRL's transformers generate backend (no vLLM)",
            "sas": "SASConfig defaults (ratio 0.3, both, paper count mode)",
            "model_build_s": build_s,
        },
        "steps": steps,
        "masks": masks,
    }


def print_table(result: dict) -> None:
    """The human-readable summary of a `run` result."""
    cfg, steps, masks = result["config"], result["steps"], result["masks"]
    print(
        f"\n{result['machine'].get('gpu', cfg['device'])}: {cfg['per_device_train_batch_size']} rollouts of "
        f"{cfg['max_completion_length']} tokens per optimizer step, {cfg['steps_per_generation']} steps per "
        f"generation, {cfg['runs_each']} interleaved runs each"
    )
    print(f"{'':20} {'s/opt step':>11} {'generating s':>13} {'train-only s':>13} {'SAS code s':>11} {'peak GiB':>9}")
    for kind, label in (("grpo", "trl.GRPOTrainer"), ("sas", "SASGRPOTrainer")):
        s = steps[kind]
        peak = f"{s['peak_memory_bytes'] / 2**30:9.1f}" if s["peak_memory_bytes"] else f"{'-':>9}"
        train_only = f"{s['train_only_step_s']:13.3f}" if s["train_only_step_s"] else f"{'-':>13}"
        print(
            f"{label:20} {s['per_optimizer_step_s']:11.3f} {s['generating_step_s']:13.3f} {train_only} "
            f"{s['sas_own_s_per_step']:11.4f} {peak}"
        )
    print(f"SAS / GRPO per optimizer step: {steps['ratio_per_optimizer_step']:.3f}", end="")
    if "ratio_train_only_step" in steps:
        print(f"; train-only steps: {steps['ratio_train_only_step']:.3f}", end="")
    print(f"; same rollouts: {steps['same_rollouts']}")
    res = masks["results"]
    print(f"masks, {masks['rollouts']} x {masks['length']} tokens: ", end="")
    print(
        f"floor {1e3 * res['floor']['min_s']:.2f} ms, SAS {1e3 * res['vectorized']['min_s']:.2f} ms "
        f"({res['vectorized']['x_floor']:.1f}x the floor)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on the CPU, small defaults (tests)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each trainer (default 1; tiny 1)")
    parser.add_argument("--batch", type=int, default=None, help="rollouts per optimizer step (default 8; tiny 4)")
    parser.add_argument("--generations", type=int, default=None, help="rollouts per prompt (default 8; tiny 4)")
    parser.add_argument("--steps-per-generation", type=int, default=None, help="default 4; tiny 2")
    parser.add_argument("--length", type=int, default=None, help="completion tokens (default 4096; tiny 16)")
    parser.add_argument("--mask-rollouts", type=int, default=None, help="default 1024; tiny 16")
    parser.add_argument("--mask-length", type=int, default=None, help="default 4096; tiny 256")
    parser.add_argument("--mask-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=None, help="mask timings (default 20; tiny 3)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_step.json"))
    args = parser.parse_args()
    defaults = {
        "runs": (1, 1),
        "batch": (8, 4),
        "generations": (8, 4),
        "steps_per_generation": (4, 2),
        "length": (4096, 16),
        "mask_rollouts": (1024, 16),
        "mask_length": (4096, 256),
        "repeats": (20, 3),
    }
    for name, (full, tiny) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    if args.tiny:
        args.mask_steps = min(args.mask_steps, 8)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
