"""Grading throughput of the math-verify reward on a paper-sized batch.

A paper training step grades 128 prompts x 8 rollouts = 1,024 completions of ~3,400 tokens (~13K
characters) each. This builds such a batch synthetically (long "\\n\\n"-separated reasoning, then
`</think>` and a boxed answer; a mix of correct, wrong, truncated and unboxed rollouts over realistic
answer types) and times `MathVerifyReward` for several worker counts, against the paper's 279 s step.

    .venv/bin/python benchmarks/reward_throughput.py [--rollouts 1024] [--workers 0 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

from sas_trl.rewards import MathVerifyReward


def answer_forms(k: int) -> tuple[str, str, str]:
    """(gold, a correct rendering, a wrong one) for prompt number k: the answer types of AIME, AMC, MATH and
    OlympiadBench, with values that differ per prompt so no gold answer is parsed twice in a batch."""
    forms = [
        (f"{k}", f"{k}", f"{k + 1}"),
        (f"{k}.0", f"{k}", f"{k - 1}"),
        (f"\\frac{{{k}}}{{{k + 1}}}", f"\\frac{{{2 * k}}}{{{2 * k + 2}}}", f"\\frac{{{k + 1}}}{{{k}}}"),
        (f"\\frac{{\\sqrt{{3}}}}{{{k}}}", f"\\frac{{\\sqrt3}}{{{k}}}", f"\\sqrt{{{k}}}"),
        (f"{k}\\sqrt{{5}}", f"\\sqrt{{{5 * k * k}}}", f"{k}\\sqrt{{2}}"),
        (f"({k}, \\frac{{\\pi}}{{2}})", f"\\left({k}, \\frac{{\\pi}}{{2}}\\right)", f"({k}, \\pi)"),
        (f"(-\\infty, {k}]", f"(-\\infty,{k}]", f"(-\\infty, {k})"),
        (f"\\text{{({'ABCDE'[k % 5]})}}", "ABCDE"[k % 5], "ABCDE"[(k + 1) % 5]),
        (f"x^2+{2 * k}x+{k * k}", f"(x+{k})^2", f"x^2+{k}"),
        (f"\\{{{k}, {k + 1}\\}}", f"\\{{{k + 1},{k}\\}}", f"\\{{{k}\\}}"),
    ]
    return forms[k % len(forms)]


PARAGRAPH = (
    r"Let $a_n$ denote the number of valid sequences of length $n$. Then $a_{n+1} = 2a_n + a_{n-1}$, "
    r"so with $a_1 = 3$ and $a_2 = 7$ we get $a_3 = 17$. Wait, let me double-check the recurrence: "
    r"\frac{a_{n+1}}{a_n} \to 1 + \sqrt{2}, which matches the growth we expect."
)


def make_batch(rollouts: int, chars: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Completions and golds: 8 rollouts per prompt; 55% correct, 25% wrong, 15% truncated, 5% unboxed."""
    rng = random.Random(seed)
    completions, golds = [], []
    for i in range(rollouts):
        gold, right, wrong = answer_forms(seed * rollouts + i // 8 + 2)
        thinking = "\n\n".join(PARAGRAPH for _ in range(chars // (len(PARAGRAPH) + 2)))
        roll = rng.random()
        if roll < 0.55:
            text = thinking + f"\n\n</think>\nSo the answer is $\\boxed{{{right}}}$."
        elif roll < 0.80:
            text = thinking + f"\n\n</think>\nSo the answer is $\\boxed{{{wrong}}}$."
        elif roll < 0.95:
            text = thinking[: rng.randrange(chars // 2, chars)]  # cut by the length limit
        else:
            text = thinking + "\n\n</think>\nThe answer is as computed above."
        completions.append(text)
        golds.append(gold)
    return completions, golds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--rollouts", type=int, default=1024)
    parser.add_argument("--chars", type=int, default=13_000, help="characters per completion (~3,400 tokens)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="0 = inline in this process")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reward_throughput.json"))
    args = parser.parse_args()

    batches = [make_batch(args.rollouts, args.chars, seed) for seed in range(args.repeats)]
    rows = []
    for workers in args.workers:
        reward = MathVerifyReward(workers=workers)
        start = time.perf_counter()
        reward(["</think>\\boxed{1}"], answer=["1"])  # start the workers (paid once per training run)
        startup = time.perf_counter() - start
        times = []
        for completions, golds in batches:  # new gold answers every batch, as in training
            start = time.perf_counter()
            rewards = reward(completions, answer=golds)
            times.append(time.perf_counter() - start)
        reward.close()
        best = min(times)
        rows.append(
            {
                "workers": workers,
                "rollouts": args.rollouts,
                "chars_per_rollout": args.chars,
                "startup_s": round(startup, 3),
                "seconds": round(best, 3),
                "ms_per_rollout": round(1000 * best / args.rollouts, 3),
                "rollouts_per_s": round(args.rollouts / best, 1),
                "share_of_279s_step": round(best / 279, 5),
                "mean_reward": round(sum(r or 0 for r in rewards) / len(rewards), 3),
            }
        )

    columns = ("workers", "rollouts", "startup s", "batch s", "ms/rollout", "rollouts/s", "% of step")
    print(" ".join(f"{c:>10}" for c in columns))
    for r in rows:
        print(
            f"{r['workers']:>10} {r['rollouts']:>10} {r['startup_s']:>10.2f} {r['seconds']:>10.2f} "
            f"{r['ms_per_rollout']:>10.2f} {r['rollouts_per_s']:>10.0f} {100 * r['share_of_279s_step']:>9.2f}%"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
