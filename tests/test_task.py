"""Tests for sas_trl.task: the generator, its token mapping, SFT warm-up and the evaluator."""

from __future__ import annotations

import time

import pytest
import torch

from sas_trl.rewards import MathVerifyReward
from sas_trl.task import (
    DOUBLE_CHECK,
    AdditionTask,
    TaskEval,
    build_task_model,
    evaluate,
    grpo_dataset,
    render_prompt,
    sample_problems,
    sft_batch,
    sft_dataset,
    sft_warmup,
)
from sas_trl.tiny import PROMPT_SUFFIX, WORDS, build_model, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def reward():
    grader = MathVerifyReward()
    yield grader
    grader.close()


def test_problems_are_seeded_and_well_formed():
    problems = sample_problems(200, seed=3)
    assert problems == sample_problems(200, seed=3)
    assert problems != sample_problems(200, seed=4)
    for p in problems:
        assert 2 <= len(p.terms) <= 8 and all(1 <= t <= 9 for t in p.terms)
        real = [s for s in p.steps if not s.startswith(DOUBLE_CHECK)]
        assert len(real) == len(p.terms) - 1
        assert real[-1].endswith(f"= {p.answer}")
        assert p.question == "Add " + ", ".join(map(str, p.terms)) + "."
        assert p.prompt == p.question + PROMPT_SUFFIX
        assert p.completion == "\n\n".join(p.steps) + f"\n\n</think>\\boxed{{{p.answer}}}"
    with_checks = sum(any(s.startswith(DOUBLE_CHECK) for s in p.steps) for p in problems)
    assert 0.25 * len(problems) < with_checks < 0.55 * len(problems)  # half the traces, p(check) in [0.3, 1]


def test_example_completion():
    (problem,) = [p for p in sample_problems(50, seed=0) if len(p.terms) == 3 and len(p.steps) == 3][:1]
    a, b, c = problem.terms
    assert problem.steps[0] == f"{a} + {b} = {a + b}"
    assert DOUBLE_CHECK + problem.steps[0] in problem.steps or DOUBLE_CHECK + problem.steps[1] in problem.steps


def test_double_check_knobs():
    none = sample_problems(50, seed=1, task=AdditionTask(double_check_traces=0.0))
    assert not any(DOUBLE_CHECK in p.completion for p in none)
    every = sample_problems(50, seed=1, task=AdditionTask(double_check_traces=1.0, double_check_prob=(1.0, 1.0)))
    assert all(len(p.steps) == 2 * (len(p.terms) - 1) for p in every)
    fixed = sample_problems(50, seed=1, task=AdditionTask(min_terms=4, max_terms=4))
    assert {len(p.terms) for p in fixed} == {4}
    with pytest.raises(ValueError, match="min_terms"):
        AdditionTask(min_terms=1)
    with pytest.raises(ValueError, match="double_check"):
        AdditionTask(double_check_prob=(0.8, 0.2))


def test_every_piece_is_one_tiny_token(tokenizer):
    problem = sample_problems(1, seed=0, task=AdditionTask(double_check_traces=1.0, double_check_prob=(1, 1)))[0]
    ids = tokenizer(problem.completion, add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert "".join(pieces) == problem.completion
    allowed = set(WORDS) | set("0123456789}")
    assert set(pieces) <= allowed
    assert pieces[-4:-2] == ["</think>", "\\boxed{"] or pieces[-5:-3] == ["</think>", "\\boxed{"]
    prompt_ids = tokenizer(render_prompt(problem, tokenizer), add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode([i]) for i in prompt_ids[-4:]] == [PROMPT_SUFFIX, "\n", "<think>", "\n"]
    assert "</think>" not in tokenizer.all_special_tokens  # TRL would erase it from decoded completions


def test_completions_are_graded_by_the_reward(reward):
    problems = sample_problems(20, seed=5)
    right = [p.completion for p in problems]
    wrong = [p.completion.replace(f"\\boxed{{{p.answer}}}", f"\\boxed{{{p.answer + 1}}}") for p in problems]
    answers = [str(p.answer) for p in problems]
    assert reward(right + wrong, answer=answers + answers) == [1.0] * 20 + [0.0] * 20


def test_grpo_and_sft_datasets(tokenizer):
    grpo = grpo_dataset(10, seed=2)
    problems = sample_problems(10, seed=2)
    assert grpo.column_names == ["prompt", "answer"]
    assert grpo[0]["prompt"] == [{"role": "user", "content": problems[0].prompt}]
    assert grpo["answer"] == [str(p.answer) for p in problems]
    rendered = tokenizer.apply_chat_template(grpo[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert rendered == problems[0].prompt + "\n<think>\n"
    sft = sft_dataset(10, seed=2, tokenizer=tokenizer)
    assert sft.column_names == ["prompt", "completion", "answer"]
    assert sft[0]["prompt"] == rendered and sft[0]["completion"] == problems[0].completion
    assert sft_dataset(10, seed=2)["prompt"] == sft["prompt"]  # the tiny template without a tokenizer


def test_sft_batch_masks_the_prompt(tokenizer):
    problems = sample_problems(4, seed=0)
    batch = sft_batch(problems, tokenizer)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    for i, p in enumerate(problems):
        labels = batch["labels"][i]
        target = labels[labels != -100].tolist()
        assert target[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(target[:-1]) == p.completion
        n = int(batch["attention_mask"][i].sum())
        assert tokenizer.decode(batch["input_ids"][i, :n].tolist()).startswith(p.prompt)


def test_sft_warmup_lowers_the_loss_quickly(tokenizer):
    model = build_model(tokenizer, seed=0)
    losses = []
    trained = sft_warmup(
        model, tokenizer, steps=30, batch_size=16, lr=3e-3, callback=lambda s, loss: losses.append(loss)
    )
    assert trained is model and not model.training
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert torch.get_num_threads() >= 1


def test_evaluate_untrained_model(tokenizer, reward):
    model = build_model(tokenizer, seed=0)
    result = evaluate(model, tokenizer, n=6, max_new_tokens=8, reward=reward, batch_size=4)
    assert isinstance(result, TaskEval)
    assert result.accuracy == 0.0 and result.no_answer == 1.0
    assert 0 < result.mean_tokens <= 8
    assert result.mean_tokens < 8 or result.truncated == 1.0  # no EOS within 8 tokens means truncated


@pytest.mark.slow
def test_tiny_model_learns_the_task_on_cpu(tokenizer, reward):
    """The task with 2..4 addends (so it fits a test budget), the 0.45M-parameter task model, one thread.

    Measured on the 2-core machine: these 250 steps (batch 64, lr 3e-3 cosine) take 66 s alone (~3 min with the
    other core busy) and reach 0.775 greedy accuracy on 200 fresh problems (300 steps: 0.905); the test
    asserts 0.6 (random init: 0.0). The default 2..8 addends need more steps: 240 gave 0.08, 300 gave 0.31.
    """
    task = AdditionTask(max_terms=4)
    model = build_task_model(tokenizer, seed=0)
    start = time.perf_counter()
    sft_warmup(model, tokenizer, steps=250, batch_size=64, lr=3e-3, seed=0, task=task)
    seconds = time.perf_counter() - start
    result = evaluate(model, tokenizer, n=200, seed=999, task=task, reward=reward)
    print(f"SFT 250 steps in {seconds:.0f}s: {result}")
    assert result.accuracy >= 0.6
    assert result.no_answer <= 0.05  # the format is learned long before the arithmetic


@pytest.mark.slow
def test_reward_inside_trl_grpo_step(tmp_path, tokenizer):
    from trl import GRPOConfig, GRPOTrainer

    grader = MathVerifyReward()
    config = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        max_steps=1,
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=build_model(tokenizer, seed=0),
        reward_funcs=[grader],
        args=config,
        train_dataset=grpo_dataset(8, seed=0),
        processing_class=tokenizer,
    )
    trainer.train()
    logs = trainer.state.log_history[0]
    assert logs["rewards/accuracy/mean"] == 0.0  # an untrained model cannot box a sum in 12 tokens
    # Most random rollouts run to the 12-token limit (TRL's clipped ratio is the project's truncation rule).
    assert logs["completions/clipped_ratio"] >= 0.5
    grader.close()


def test_the_solution_without_redundancy_of_a_problem():
    from sas_trl.task import plain_solution

    problem = plain_solution((3, 5, 7))
    assert problem.completion == "3 + 5 = 8\n\n8 + 7 = 15\n\n</think>\\boxed{15}" and problem.answer == 15
