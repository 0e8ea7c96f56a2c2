"""The testbed's sweep: warm up the built-in model at a few settings and measure section 1's criteria on each.

For each setting (addends, share of traces with double-checks, supervised steps) the model is warmed up as
`sas-trl train` does (`sas_trl.task.sft_warmup`, seed 0, one thread), then sampled at temperature 1 at the long
budget, `--n` samples per problem (a GRPO group), and every rollout is cut at each short budget and graded again.
Printed per setting and short budget (one JSON line): Pass@1 at the long budget, median "\\n\\n" steps, the
mislabel rate (correct at long, failed when cut), the share of mislabelled rollouts in mixed groups, the share of
redundant steps (`sas_trl.step_labels`), the longest solution without redundancy against the short budget, and the
time.

    python scripts/testbed_sweep.py --terms 8,10 --checks 0.3,0.5 --sft 300,600 --short 80,104 --long 160

Each short budget in `--short` is cut from the same samples. `--curve K` also measures the criteria every K
supervised steps along each warm-up (a checkpoint of the run's own cosine schedule, not a shorter warm-up);
`--save DIR` keeps each warmed-up model in DIR/<setting>.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch

from sas_trl.evaluation.testbed import mixed_group_share
from sas_trl.rewards import accuracy_reward
from sas_trl.step_labels import REDUNDANT, label_steps, thinking_steps
from sas_trl.task import AdditionTask, Problem, build_task_model, render_prompt, sample_problems, sft_warmup
from sas_trl.tiny import build_tokenizer


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def plain_tokens(problem: Problem, tokenizer) -> int:
    """Tokens of the problem's solution written without redundancy (EOS included)."""
    plain = Problem(problem.terms, tuple(s for s in problem.steps if not s.startswith("Let me")))
    return len(tokenizer(plain.completion, add_special_tokens=False)["input_ids"]) + 1


@torch.no_grad()
def sample(model, tokenizer, problems: list[Problem], n: int, max_new_tokens: int, seed: int) -> list[list[int]]:
    """`n` completions (token ids, EOS kept) per problem at temperature 1, grouped problem by problem."""
    torch.manual_seed(seed)
    prompts = [render_prompt(p) for p in problems for _ in range(n)]
    rows = []
    for start in range(0, len(prompts), 128):
        enc = tokenizer(prompts[start : start + 128], return_tensors="pt", padding=True)
        out = model.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=1.0,
            top_k=None,
            top_p=None,
            pad_token_id=tokenizer.pad_token_id,
        )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            ended = tokenizer.eos_token_id in row
            rows.append(row[: row.index(tokenizer.eos_token_id) + 1] if ended else row)
    return rows


def measure(model, tokenizer, task: AdditionTask, args) -> list[dict]:
    """The criteria at each short budget in `args.short`, all cut from the same samples at the long budget."""
    problems = sample_problems(args.problems, seed=12345, task=task)
    rows = sample(model, tokenizer, problems, args.n, args.long, seed=1)
    answers = [str(p.answer) for p in problems for _ in range(args.n)]
    long_texts = [tokenizer.decode(r, skip_special_tokens=True) for r in rows]
    long_ok = [s == 1.0 for s in accuracy_reward(long_texts, answer=answers)]
    labels = [label_steps(problems[i // args.n].terms, t) for i, t in enumerate(long_texts)]
    steps = [len(thinking_steps(t)[0]) for t in long_texts]
    all_labels = [x for lab in labels for x in lab]
    plain = [plain_tokens(p, tokenizer) for p in sample_problems(5000, seed=7, task=task)]
    common = {
        "pass@1": sum(long_ok) / len(rows),
        "median_steps": statistics.median(steps),
        "redundant_steps": sum(x == REDUNDANT for x in all_labels) / max(1, len(all_labels)),
        "cut_long": sum(len(r) >= args.long and tokenizer.eos_token_id not in r for r in rows) / len(rows),
        "mean_tokens": statistics.fmean(len(r) for r in rows),
        "max_plain_tokens": max(plain),
    }
    groups = [i // args.n for i in range(len(rows))]  # each problem's samples are one group
    points = []
    for short in args.short:
        short_texts = [tokenizer.decode(r[:short], skip_special_tokens=True) for r in rows]
        short_ok = [s == 1.0 for s in accuracy_reward(short_texts, answer=answers)]
        mislabelled = [a and not b for a, b in zip(long_ok, short_ok, strict=True)]
        points.append(
            {"short": short, **common}
            | {
                "mislabel": sum(mislabelled) / max(1, sum(long_ok)),
                "mixed": mixed_group_share(groups, mislabelled, short_ok),
                "cut_short": sum(len(r) > short for r in rows) / len(rows),
            }
        )
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--terms", type=ints, default=[8, 10], help="MIN,MAX addends")
    parser.add_argument("--checks", type=floats, default=[0.3, 0.5], help="shares of traces with double-checks")
    parser.add_argument("--sft", type=ints, default=[300, 600], help="supervised warm-up steps")
    parser.add_argument("--short", type=ints, default=[80], help="short budgets, each cut from the same samples")
    parser.add_argument("--long", type=int, default=160)
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--curve", type=int, default=0, help="also measure every K warm-up steps")
    parser.add_argument("--save", help="a folder to keep the warmed-up models in")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    for checks, steps in itertools.product(args.checks, args.sft):
        task = AdditionTask(min_terms=args.terms[0], max_terms=args.terms[1], double_check_traces=checks)
        row = {"terms": args.terms, "checks": checks, "sft_steps": steps, "long": args.long}
        model = build_task_model(tokenizer, seed=0)

        def checkpoint(step: int, loss: float, row=row, model=model, task=task) -> None:
            if args.curve and (step + 1) % args.curve == 0 and step + 1 < row["sft_steps"]:
                rng = torch.get_rng_state()  # sampling must not change the warm-up that follows
                for point in measure(model, tokenizer, task, args):
                    print(json.dumps({**row, "at_step": step + 1, "loss": round(loss, 4)} | point), flush=True)
                torch.set_rng_state(rng)
                model.train()  # measure() samples in eval mode

        start = time.perf_counter()
        model = sft_warmup(model, tokenizer, steps, seed=0, task=task, callback=checkpoint)
        warm = time.perf_counter() - start
        points = measure(model, tokenizer, task, args)
        row |= {"sft_seconds": round(warm, 1), "total_seconds": round(time.perf_counter() - start, 1)}
        for point in points:
            print(json.dumps(row | point), flush=True)
        if args.save:
            folder = f"{args.save}/terms{args.terms[0]}-{args.terms[1]}_checks{checks}_sft{steps}"
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)


if __name__ == "__main__":
    main()
