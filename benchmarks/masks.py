"""Mask computation at paper scale: `segment_steps` + `select_zero_mask` against a per-rollout loop and a floor.

One paper training step masks 128 prompts x 8 rollouts = 1,024 completions of up to 4,096 tokens (~40 "\\n\\n"
steps each) in the DeepScaleR vocabulary. Three ways to get the same answer, or a lower bound on it:

* vectorized: this package's `segment_steps` then `select_zero_mask` (paper count mode, r = 0.3), called the way
  `SASGRPOTrainer` calls them on a CPU: a boundary table built once (`boundary_table`), S read from the data;
  "vectorized_static_slots" is the accelerator call (S = T, nothing read back), timed here on the CPU;
* loop reference: what the public release does, written from its description in docs/release_mode.md: for each
  rollout in Python, decode every token on its own, cut steps where the text contains "\\n\\n", average each
  step's log-probs, sort, zero. Timed on a subset of rollouts and extrapolated linearly (its cost is per rollout);
  the same subset checks that both produce identical masks;
* floor: one masked reduction of the log-prob tensor (`torch.linalg.vecdot` with the mask: reads two (B, T)
  tensors once), the memory-bound minimum for any computation that must read them (it materialises one float32 (B, T)
  product, reused from the heap, which is still faster than the alternatives measured).

Memory is the peak of bytes held by tensors the call allocates (its outputs included), from the allocation events
PyTorch's profiler records in its CPU allocator; inputs built beforehand are not counted.

    .venv/bin/python benchmarks/masks.py [--rollouts 1024] [--length 4096] [--steps 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from sas_trl import segment_steps, select_zero_mask, vocab_tables
from sas_trl.core import boundary_table

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.masks
    from machine import machine_info
except ImportError:  # pragma: no cover
    from benchmarks.machine import machine_info

RATIO = 0.3
DELIMITER = "\n\n"
THINK_END = "</think>"
# Tokens that end a step in real traces (".\n\n" is id 382 in Qwen2); whichever are single tokens of the vocabulary.
BOUNDARY_TEXTS = (".\n\n", "\n\n", ":\n\n", "?\n\n", ")\n\n", "$\n\n", ".\n\n\n")


@dataclass
class Batch:
    """What the trainer holds for one rollout batch: ids, mask (int32, as TRL builds it), log-probs, verdicts."""

    completion_ids: torch.Tensor  # (B, T) int64
    completion_mask: torch.Tensor  # (B, T) int32
    token_logps: torch.Tensor  # (B, T) float32
    is_correct: torch.Tensor  # (B,) bool
    think_end_id: int


def load_tokenizer(vocab: str):
    """The real DeepScaleR vocabulary ("qwen2", 151,650 ids) or the package's ~110-token one ("tiny")."""
    if vocab == "qwen2":
        from sas_trl.vocabularies import qwen2_tokenizer

        return qwen2_tokenizer()
    from sas_trl.tiny import build_tokenizer

    return build_tokenizer()


def decode_one(tokenizer, token_id: int) -> str:
    """A token's own text, decoded the way `sas_trl.core.vocab_tables` does it."""
    return tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def make_batch(tokenizer, rollouts: int, length: int, steps: int, seed: int = 0) -> Batch:
    """A synthetic but realistic rollout batch.

    Lengths are uniform in [T/2, T]; 20% of rollouts hit the limit (no `</think>`, always failed); the others end
    their reasoning 8-64 tokens before their end with `</think>`, then answer and EOS. Reasoning holds about
    `steps` steps, cut by boundary tokens at random places; every other token is a random vocabulary token whose
    text holds no "\\n\\n". Log-probs are -Exponential(mean 0.5); half the finished rollouts are correct.
    """
    gen = torch.Generator().manual_seed(seed)
    think_end_id = tokenizer.convert_tokens_to_ids(THINK_END)
    boundary_ids = [ids[0] for ids in (tokenizer.encode(t, add_special_tokens=False) for t in BOUNDARY_TEXTS)]
    boundary_ids = sorted(
        {i for i, t in zip(boundary_ids, BOUNDARY_TEXTS, strict=True) if decode_one(tokenizer, i) == t}
    )
    specials = set(tokenizer.all_special_ids) | {think_end_id}
    candidates = torch.randperm(len(tokenizer), generator=gen)[:20_000].tolist()
    filler = [i for i in candidates if i not in specials and DELIMITER not in decode_one(tokenizer, i)]
    filler_ids, boundary_ids_t = torch.tensor(filler), torch.tensor(boundary_ids)

    positions = torch.arange(length)
    lengths = torch.randint(length // 2, length + 1, (rollouts,), generator=gen)
    truncated = torch.rand(rollouts, generator=gen) < 0.2
    lengths[truncated] = length
    think_end_at = (lengths - torch.randint(8, 65, (rollouts,), generator=gen)).clamp(min=1)
    think_end_at[truncated] = length  # past the end: no </think>
    reasoning = positions < think_end_at.unsqueeze(1)

    ids = filler_ids[torch.randint(len(filler_ids), (rollouts, length), generator=gen)]
    rate = (steps / think_end_at.clamp(max=length).float()).unsqueeze(1)
    is_boundary = (torch.rand(rollouts, length, generator=gen) < rate) & reasoning
    ids[is_boundary] = boundary_ids_t[torch.randint(len(boundary_ids_t), (int(is_boundary.sum()),), generator=gen)]
    done = ~truncated
    ids[done, think_end_at[done]] = think_end_id
    ids[done, lengths[done] - 1] = tokenizer.eos_token_id
    valid = positions < lengths.unsqueeze(1)
    ids[~valid] = tokenizer.pad_token_id

    logps = -torch.empty(rollouts, length).exponential_(2.0, generator=gen)
    is_correct = (torch.rand(rollouts, generator=gen) < 0.5) & done
    return Batch(ids, valid.int(), logps, is_correct, think_end_id)


# --------------------------------------------------------------------------------------------------
# The three contenders
# --------------------------------------------------------------------------------------------------


def vectorized_mask(
    batch: Batch, tokenizer, table: torch.Tensor | None = None, num_slots: int | None = None
) -> torch.Tensor:
    """(B, T) bool: this package, as `SASGRPOTrainer` calls it in paper mode (`table`: its prebuilt boundary table;
    `num_slots`: its static S on accelerators)."""
    step_ids = segment_steps(batch.completion_ids, batch.completion_mask, tokenizer, DELIMITER, THINK_END, table=table)
    return select_zero_mask(step_ids, batch.token_logps, batch.is_correct, RATIO, num_slots=num_slots)


def loop_reference_mask(batch: Batch, tokenizer, rows: range) -> torch.Tensor:
    """(len(rows), T) bool: the release's algorithm, one rollout and one decoded token at a time.

    Step confidence is the float32 mean accumulated left to right, the arithmetic the vectorized code does, so the
    two agree bit for bit instead of differing on near-ties.
    """
    out = torch.zeros(len(rows), batch.completion_ids.size(1), dtype=torch.bool)
    for out_row, b in enumerate(rows):
        ids, mask = batch.completion_ids[b].tolist(), batch.completion_mask[b].tolist()
        logps = batch.token_logps[b].numpy()
        steps: list[list[int]] = [[]]
        for t, (token, valid) in enumerate(zip(ids, mask, strict=True)):
            if not valid:
                continue
            if token == batch.think_end_id:
                break
            steps[-1].append(t)
            if DELIMITER in decode_one(tokenizer, token):
                steps.append([])
        steps = [s for s in steps if s]
        confidence = [np.cumsum(logps[s], dtype=np.float32)[-1] / np.float32(len(s)) for s in steps]
        n = len(steps)
        if batch.is_correct[b]:
            k = math.ceil(round(RATIO * n, 9))  # the least confident steps
            order = sorted(range(n), key=lambda j: (confidence[j], j))
        else:
            k = n - math.ceil(round((1 - RATIO) * n, 9))  # the most confident steps
            order = sorted(range(n), key=lambda j: (-confidence[j], j))
        for j in order[:k]:
            out[out_row, steps[j]] = True
    return out


def floor_reduction(batch: Batch, weights: torch.Tensor) -> torch.Tensor:
    """(B,) masked log-prob sums: one read of two (B, T) tensors, the least any mask computation must do."""
    return torch.linalg.vecdot(batch.token_logps, weights)


# --------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes held by tensors allocated during `fn()` (outputs included), from the profiler's allocator events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
        del result
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def interleaved_times(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, run round-robin (rotating the order) after one warm-up call each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


def run(vocab: str, rollouts: int, length: int, steps: int, loop_rollouts: int, repeats: int, seed: int) -> dict:
    """Build the batch, check agreement, time and measure everything; return the JSON-ready result."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    tokenizer = load_tokenizer(vocab)
    tokenizer_s = time.perf_counter() - start
    start = time.perf_counter()
    ends_step, _ = vocab_tables(tokenizer, DELIMITER, THINK_END)  # decodes every id once; cached per tokenizer
    table_s = time.perf_counter() - start

    batch = make_batch(tokenizer, rollouts, length, steps, seed)
    weights = batch.completion_mask.float()
    table = boundary_table(tokenizer, len(tokenizer), DELIMITER, THINK_END)  # the trainer builds it once
    subset = range(min(loop_rollouts, rollouts))

    start = time.perf_counter()
    reference = loop_reference_mask(batch, tokenizer, subset)
    loop_subset_s = time.perf_counter() - start
    ours = vectorized_mask(batch, tokenizer, table)
    mismatched = int((ours[: len(subset)] != reference).any(dim=1).sum())
    static_ok = torch.equal(ours, vectorized_mask(batch, tokenizer, table, num_slots=length))

    step_ids = segment_steps(batch.completion_ids, batch.completion_mask, tokenizer, table=table)
    times = interleaved_times(
        {
            "floor": lambda: floor_reduction(batch, weights),
            "vectorized": lambda: vectorized_mask(batch, tokenizer, table),
            "vectorized_static_slots": lambda: vectorized_mask(batch, tokenizer, table, num_slots=length),
            "segment_steps": lambda: segment_steps(
                batch.completion_ids, batch.completion_mask, tokenizer, table=table
            ),
            "select_zero_mask": lambda: select_zero_mask(step_ids, batch.token_logps, batch.is_correct, RATIO),
        },
        repeats,
    )
    peaks = {
        "floor": peak_allocated_bytes(lambda: floor_reduction(batch, weights)),
        "vectorized": peak_allocated_bytes(lambda: vectorized_mask(batch, tokenizer, table)),
    }

    tokens = rollouts * length
    floor_min = min(times["floor"])
    loop_s = loop_subset_s * rollouts / len(subset)
    results = {
        name: {"min_s": min(ts), "median_s": statistics.median(ts), "x_floor": min(ts) / floor_min}
        for name, ts in times.items()
    }
    results["loop_reference"] = {
        "min_s": loop_s,
        "median_s": loop_s,
        "x_floor": loop_s / floor_min,
        "measured_rollouts": len(subset),
        "measured_s": loop_subset_s,
        "extrapolated": len(subset) < rollouts,
    }
    for name, peak in peaks.items():
        results[name]["peak_bytes"] = peak
    bt = {"int64": tokens * 8, "float32": tokens * 4}
    return {
        "benchmark": "masks",
        "machine": machine_info(),
        "config": {
            "vocab": vocab,
            "vocab_size": len(tokenizer),
            "step_ending_tokens": int(ends_step.sum()),
            "rollouts": rollouts,
            "length": length,
            "target_steps": steps,
            "valid_tokens": int(batch.completion_mask.sum()),
            "mean_steps": float(_mean_steps(batch, tokenizer)),
            "ratio": RATIO,
            "count_mode": "paper",
            "repeats": repeats,
            "seed": seed,
            "torch_threads": torch.get_num_threads(),
        },
        "one_time": {"build_tokenizer_s": tokenizer_s, "vocab_tables_s": table_s},
        "agreement": {"rollouts_checked": len(subset), "rollouts_mismatched": mismatched},
        "static_slots_identical": static_ok,
        "results": results,
        "speedup_vs_loop": loop_s / results["vectorized"]["min_s"],
        "peak_extra_in_BT_tensors": {dtype: peaks["vectorized"] / size for dtype, size in bt.items()},
    }


def _mean_steps(batch: Batch, tokenizer) -> float:
    step_ids = segment_steps(batch.completion_ids, batch.completion_mask, tokenizer)
    return float((step_ids.max(dim=1).values + 1).float().mean())


def print_table(result: dict) -> None:
    """The human-readable summary of a `run` result."""
    cfg, res = result["config"], result["results"]
    print(
        f"masks: {cfg['rollouts']} rollouts x {cfg['length']} tokens ({cfg['valid_tokens']:,} valid), "
        f"{cfg['mean_steps']:.1f} steps/rollout, vocab {cfg['vocab']} ({cfg['vocab_size']:,} ids), "
        f"{cfg['torch_threads']} thread(s)"
    )
    print(f"{'':28} {'min ms':>10} {'median ms':>10} {'x floor':>9} {'peak MiB':>9}")
    for name in (
        "floor",
        "vectorized",
        "vectorized_static_slots",
        "segment_steps",
        "select_zero_mask",
        "loop_reference",
    ):
        r = res[name]
        peak = f"{r['peak_bytes'] / 2**20:9.1f}" if "peak_bytes" in r else f"{'':>9}"
        label = name + (f" (x{cfg['rollouts'] / r['measured_rollouts']:.0f} extrap.)" if r.get("extrapolated") else "")
        print(f"{label:28} {1e3 * r['min_s']:10.2f} {1e3 * r['median_s']:10.2f} {r['x_floor']:9.1f} {peak}")
    agree = result["agreement"]
    print(
        f"loop / vectorized: {result['speedup_vs_loop']:.0f}x; "
        f"agreement on {agree['rollouts_checked']} rollouts: {agree['rollouts_mismatched']} mismatched; "
        f"peak extra = {result['peak_extra_in_BT_tensors']['int64']:.2f} (B, T) int64 tensors "
        f"({result['peak_extra_in_BT_tensors']['float32']:.2f} float32); "
        f"one-time vocab table {result['one_time']['vocab_tables_s']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--vocab", choices=("qwen2", "tiny"), default="qwen2")
    parser.add_argument("--rollouts", type=int, default=1024)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=40, help="mean steps per rollout")
    parser.add_argument("--loop-rollouts", type=int, default=32, help="rollouts the loop reference runs on")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/masks.json"))
    args = parser.parse_args()

    result = run(args.vocab, args.rollouts, args.length, args.steps, args.loop_rollouts, args.repeats, args.seed)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    if result["agreement"]["rollouts_mismatched"]:
        raise SystemExit("the loop reference and the vectorized masks disagree")
    if not result["static_slots_identical"]:
        raise SystemExit("static step slots (S = T) changed the mask")


if __name__ == "__main__":
    main()
