"""A built-in multi-step task a tiny model learns on a CPU: adding a few one-digit numbers, step by step.

    prompt:      "Add 3, 5, 7. Let's think step by step and output the final answer within \\boxed{}."
    completion:  "3 + 5 = 8\\n\\nLet me double-check: 3 + 5 = 8\\n\\n8 + 7 = 15\\n\\n</think>\\boxed{15}"

Steps are separated by "\\n\\n" (the SAS step delimiter) inside the R1 think format, so the completion is
graded by the same math-verify reward as real math. Half the worked solutions carry redundant
"Let me double-check" steps: the length variance that short-context training compresses. Addends are
1..9 on purpose (two-digit addends need carries a 0.5M-parameter model does not learn in minutes).

The tiny chat template (`sas_trl.tiny`) ends the prompt with "\\n<think>\\n"; every piece of a completion
is one token of the tiny tokenizer, except multi-digit numbers (one token per digit).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from datasets import Dataset

from .constants import PROMPT_SUFFIX, THINK_END
from .rewards import accuracy_reward, extract_answer
from .rollouts import is_truncated
from .tiny import build_model

DOUBLE_CHECK = "Let me double-check: "
# A size that learns the task in minutes on one CPU core (tests/test_task.py measures it): 0.45M parameters.
TASK_MODEL_KWARGS = {"hidden_size": 96, "num_layers": 4, "num_heads": 4, "intermediate_size": 256}


@dataclass(frozen=True)
class AdditionTask:
    """Knobs of the problem generator.

    Args:
        min_terms, max_terms: number of addends (a problem with k addends has k - 1 real steps).
        min_value, max_value: range of each addend.
        double_check_traces: fraction of worked solutions that carry redundant double-check steps.
        double_check_prob: for such a solution, the probability of a check after each step is drawn
            uniformly from this range once per solution.
    """

    min_terms: int = 2
    max_terms: int = 8
    min_value: int = 1
    max_value: int = 9
    double_check_traces: float = 0.5
    double_check_prob: tuple[float, float] = (0.3, 1.0)

    def __post_init__(self):
        if not 2 <= self.min_terms <= self.max_terms:
            raise ValueError(f"need 2 <= min_terms <= max_terms, got {self.min_terms}, {self.max_terms}")
        if not 0 <= self.min_value <= self.max_value:
            raise ValueError(f"need 0 <= min_value <= max_value, got {self.min_value}, {self.max_value}")
        low, high = self.double_check_prob
        if not (0 <= self.double_check_traces <= 1 and 0 <= low <= high <= 1):
            raise ValueError("double_check_traces and double_check_prob must lie in [0, 1] (low <= high)")


@dataclass(frozen=True)
class Problem:
    """One problem with its worked solution."""

    terms: tuple[int, ...]
    steps: tuple[str, ...]

    @property
    def answer(self) -> int:
        return sum(self.terms)

    @property
    def question(self) -> str:
        return "Add " + ", ".join(map(str, self.terms)) + "."

    @property
    def prompt(self) -> str:
        """The user message: the question and the paper's prompt suffix."""
        return self.question + PROMPT_SUFFIX

    @property
    def completion(self) -> str:
        """The worked solution after the prompt's "<think>\\n": steps, "</think>", then the boxed answer."""
        return "\n\n".join(self.steps) + f"\n\n{THINK_END}\\boxed{{{self.answer}}}"


def sample_problem(rng: random.Random, task: AdditionTask = AdditionTask()) -> Problem:
    """Draw one problem and a worked solution ("a + b = s" steps, maybe with double-checks)."""
    terms = tuple(
        rng.randint(task.min_value, task.max_value) for _ in range(rng.randint(task.min_terms, task.max_terms))
    )
    check_prob = rng.uniform(*task.double_check_prob) if rng.random() < task.double_check_traces else 0.0
    steps, total = [], terms[0]
    for term in terms[1:]:
        step = f"{total} + {term} = {total + term}"
        steps.append(step)
        if rng.random() < check_prob:
            steps.append(DOUBLE_CHECK + step)
        total += term
    return Problem(terms, tuple(steps))


def plain_solution(terms: tuple[int, ...]) -> Problem:
    """The problem `terms` with its worked solution written without redundancy (no double-checks)."""
    totals = [sum(terms[: i + 1]) for i in range(len(terms))]
    steps = tuple(f"{totals[i - 1]} + {terms[i]} = {totals[i]}" for i in range(1, len(terms)))
    return Problem(tuple(terms), steps)


def sample_problems(n: int, seed: int = 0, task: AdditionTask = AdditionTask()) -> list[Problem]:
    """`n` problems from a seeded generator (same seed, same problems)."""
    rng = random.Random(seed)
    return [sample_problem(rng, task) for _ in range(n)]


def grpo_dataset(n: int, seed: int = 0, task: AdditionTask = AdditionTask()) -> Dataset:
    """GRPO prompts: `prompt` (one user message) and `answer` (str), the columns the reward reads."""
    problems = sample_problems(n, seed, task)
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": p.prompt}] for p in problems],
            "answer": [str(p.answer) for p in problems],
        }
    )


def sft_dataset(n: int, seed: int = 0, task: AdditionTask = AdditionTask(), tokenizer=None) -> Dataset:
    """SFT examples: `prompt` (text after the chat template, ending "<think>\\n") and `completion` (text).

    Plain strings rather than messages, so the completion continues the templated prompt exactly (TRL's
    SFTTrainer appends EOS to a prompt-completion example). Without a tokenizer the tiny template is used.
    """
    problems = sample_problems(n, seed, task)
    return Dataset.from_dict(
        {
            "prompt": [render_prompt(p, tokenizer) for p in problems],
            "completion": [p.completion for p in problems],
            "answer": [str(p.answer) for p in problems],
        }
    )


def render_prompt(problem: Problem, tokenizer=None) -> str:
    """The prompt text a model sees: the chat template applied to the user message, generation prompt on."""
    if tokenizer is None or tokenizer.chat_template is None:
        return problem.prompt + "\n<think>\n"  # the tiny chat template's output
    messages = [{"role": "user", "content": problem.prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_task_model(tokenizer, seed: int = 0, **overrides):
    """A tiny Llama of the size that learns this task in minutes (`TASK_MODEL_KWARGS`, 0.45M parameters)."""
    return build_model(tokenizer, seed=seed, **{**TASK_MODEL_KWARGS, **overrides})


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (one thread is fastest for tiny models on shared cores)."""
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sft_batch(problems: list[Problem], tokenizer) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` (B, T) and `labels` (B, T; -100 outside completions)."""
    prompts = tokenizer([render_prompt(p, tokenizer) for p in problems], add_special_tokens=False)["input_ids"]
    completions = tokenizer([p.completion for p in problems], add_special_tokens=False)["input_ids"]
    rows = [(p, c + [tokenizer.eos_token_id]) for p, c in zip(prompts, completions, strict=True)]
    width = max(len(p) + len(c) for p, c in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        input_ids[i, :n] = torch.tensor(p + c)
        labels[i, len(p) : n] = torch.tensor(c)  # loss on the completion (and its EOS) only
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def sft_warmup(
    model,
    tokenizer,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup_steps: int | None = None,
    seed: int = 0,
    task: AdditionTask = AdditionTask(),
    num_threads: int | None = 1,
    log_every: int = 0,
    callback: Callable[[int, float], None] | None = None,
):
    """Supervised warm-up on fresh problems every batch; returns the trained model (in eval mode).

    AdamW, linear warm-up (default 5% of steps) then cosine decay to 0, gradient clipping at 1.0, loss on
    completion tokens only. `callback(step, loss)` is called after every step; `log_every` > 0 prints.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    warmup = max(1, steps // 20) if warmup_steps is None else warmup_steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    start = time.perf_counter()
    with torch_threads(num_threads):
        for step in range(steps):
            batch = sft_batch([sample_problem(rng, task) for _ in range(batch_size)], tokenizer)
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if callback is not None:
                callback(step, loss.item())
            if log_every and (step + 1) % log_every == 0:
                print(
                    f"step {step + 1}/{steps}  loss {loss.item():.4f}  {time.perf_counter() - start:.0f}s", flush=True
                )
    return model.eval()


@dataclass(frozen=True)
class TaskEval:
    """Accuracy on fresh problems, with the length facts short-context training changes."""

    accuracy: float
    mean_tokens: float  # completion tokens, EOS included
    truncated: float  # fraction cut by max_new_tokens (sas_trl.rollouts.is_truncated)
    double_checks: float  # "Let me double-check" steps per completion
    no_answer: float  # fraction without "</think>" and a closed box


@torch.no_grad()
def evaluate(
    model,
    tokenizer,
    n: int = 200,
    seed: int = 12345,
    greedy: bool = True,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    batch_size: int = 100,
    task: AdditionTask = AdditionTask(),
    reward: Callable | None = None,
    num_threads: int | None = 1,
) -> TaskEval:
    """Generate for `n` fresh problems (greedy, or sampled at `temperature` with no top-k/top-p) and grade
    them with the math-verify reward (`accuracy_reward` unless `reward` is given)."""
    problems = sample_problems(n, seed, task)
    reward = reward or accuracy_reward
    texts, lengths, cut = [], [], []
    model.eval()
    with torch_threads(num_threads):
        for start in range(0, n, batch_size):
            chunk = problems[start : start + batch_size]
            enc = tokenizer([render_prompt(p, tokenizer) for p in chunk], return_tensors="pt", padding=True)
            enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature}
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                top_k=None,
                top_p=None,
                **sampling,
                pad_token_id=tokenizer.pad_token_id,
            )
            for row in out[:, enc["input_ids"].shape[1] :].tolist():
                ended = tokenizer.eos_token_id in row
                ids = row[: row.index(tokenizer.eos_token_id) + 1] if ended else row
                texts.append(tokenizer.decode(ids, skip_special_tokens=True))
                lengths.append(len(ids))
                cut.append(is_truncated(ids, tokenizer.eos_token_id, tokenizer.pad_token_id))
    scores = reward(texts, answer=[str(p.answer) for p in problems])
    return TaskEval(
        accuracy=sum(s or 0.0 for s in scores) / n,
        mean_tokens=sum(lengths) / n,
        truncated=sum(cut) / n,
        double_checks=sum(t.count(DOUBLE_CHECK) for t in texts) / n,
        no_answer=sum(extract_answer(t) is None for t in texts) / n,
    )
