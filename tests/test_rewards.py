"""Tests for sas_trl.rewards: the graded table, format rules, robustness, the registry."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch

from sas_trl.errors import RecipeError
from sas_trl.rewards import (
    MathVerifyReward,
    accuracy_reward,
    extract_answer,
    failed_by_truncation,
    get_reward_funcs,
    gold_strings,
    last_boxed,
)

T = "Let me think.\n\n3 + 4 = 7\n\n</think>"  # a finished R1 thinking part

# (completion, gold, expected reward) graded with the R1 format.
CASES = [
    # fractions vs decimals
    (T + r"\boxed{\frac{1}{2}}", "0.5", 1.0),
    (T + r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
    (T + r"\boxed{\dfrac{3}{4}}", "0.75", 1.0),
    (T + r"\boxed{3/4}", r"\frac34", 1.0),
    (T + r"\boxed{\frac{1}{2}}", "1/2", 1.0),
    (T + r"\boxed{0.333}", r"\frac{1}{3}", 0.0),
    (T + r"\boxed{4.6667}", r"\frac{14}{3}", 0.0),
    (T + r"\boxed{\frac{14}{3}}", "4.67", 0.0),
    # numeric gold answers (AMC stores floats such as 142.0)
    (T + r"\boxed{142}", 142.0, 1.0),
    (T + r"\boxed{142.0}", 142, 1.0),
    (T + r"\boxed{141}", 142.0, 0.0),
    (T + r"\boxed{7.0}", 7, 1.0),
    (T + r"\boxed{-7}", "7", 0.0),
    # multiple-choice letters
    (T + r"\boxed{\text{(C)}}", "C", 1.0),
    (T + r"\boxed{C}", r"\text{(C)}", 1.0),
    (T + r"\boxed{(C)}", "C", 1.0),
    (T + r"\boxed{\textbf{(C) } 42}", "C", 1.0),
    (T + r"\boxed{D}", "C", 0.0),
    (T + r"The answer is \boxed{B}.", "B", 1.0),
    # several boxed answers: the last one after </think> counts
    (T + r"\boxed{3}, no wait: \boxed{5}", "5", 1.0),
    (T + r"\boxed{3}, no wait: \boxed{5}", "3", 0.0),
    (r"\boxed{6}" + "\n\n</think>" + r"\boxed{7}", "7", 1.0),
    (r"\boxed{7}</think>no box", "7", 0.0),
    (T + r"\boxed{\boxed{7}}", "7", 1.0),
    ("</think></think>" + r"\boxed{7}", "7", 1.0),
    # nested braces
    (T + r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", 1.0),
    (T + r"\boxed{\left(3, \frac{\pi}{2}\right)}", r"(3,\frac{\pi}{2})", 1.0),
    (T + r"\boxed{\{1, 2\}}", r"\{1,2\}", 1.0),
    (T + r"\boxed{\frac{1}{\sqrt{2}}}", r"$\frac{\sqrt{2}}{2}$", 1.0),
    (T + r"\boxed{" + "{" * 50 + "7" + "}" * 50 + "}", "7", 0.0),  # parser gives up (timeout): 0, not a hang
    # missing </think>, no box, truncated
    ("3 + 4 = 7\n\n" + r"\boxed{7}", "7", 0.0),
    ("", "7", 0.0),
    ("</think>", "7", 0.0),
    (T + "The answer is 7.", "7", 0.0),
    (T + r"\boxed{12", "12", 0.0),
    ("Step 1\n\n3 + 4 = ", "7", 0.0),
    # box spellings
    (T + r"\fbox{7}", "7", 1.0),
    (T + r"\boxed {7}", "7", 1.0),
    # OlympiadBench-style lists: any element may match
    (T + r"\boxed{2}", ["$2$"], 1.0),
    (T + r"\boxed{-3}", ["$3$", "$-3$"], 1.0),
    (T + r"\boxed{(2, 1)}", ["$(1,2)$", "$(2,1)$"], 1.0),
    (T + r"\boxed{3}", ["$1$", "$2$"], 0.0),
    (T + r"\boxed{12}", [12, "twelve"], 1.0),
    # symbolic equivalence, units, sets, intervals, text
    (T + r"\boxed{2\sqrt{2}}", r"\sqrt{8}", 1.0),
    (T + r"\boxed{x^2 + 2x + 1}", "(x+1)^2", 1.0),
    (T + r"\boxed{10\%}", "10", 1.0),
    (T + r"\boxed{\$5}", "5", 1.0),
    (T + r"\boxed{5 \text{ cm}}", "5", 1.0),
    (T + r"\boxed{x = 5}", "5", 1.0),
    (T + r"\boxed{\infty}", r"\infty", 1.0),
    (T + r"\boxed{(-\infty, 2]}", r"(-\infty,2]", 1.0),
    (T + r"\boxed{2, 3}", "3, 2", 1.0),
    (T + r"\boxed{\text{Monday}}", r"\text{Monday}", 1.0),
    (T + r"\boxed{\text{Tuesday}}", r"\text{Monday}", 0.0),
    (T + r"\boxed{@#$%^&}", "7", 0.0),
]


@pytest.fixture(scope="module")
def reward():
    grader = MathVerifyReward()
    yield grader
    grader.close()


@pytest.mark.parametrize(("completion", "gold", "expected"), CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_graded_table(reward, completion, gold, expected):
    assert reward([completion], answer=[gold]) == [expected]


def test_table_is_large_and_mixed():
    assert len(CASES) >= 40
    assert 10 <= sum(expected == 0.0 for *_, expected in CASES) <= len(CASES) - 10


def test_batch_matches_one_by_one(reward):
    completions, golds, expected = zip(*CASES[:20], strict=True)
    assert reward(list(completions), answer=list(golds)) == list(expected)


def test_plain_format_grades_the_whole_completion():
    plain = MathVerifyReward(format="plain", workers=0)
    completions = ["3 + 4 = 7\n\n" + r"\boxed{7}", r"The answer is $\frac{1}{2}$.", r"\boxed{8}", "no idea"]
    assert plain(completions, answer=["7", "0.5", "7", "7"]) == [1.0, 1.0, 0.0, 0.0]


def test_chat_message_completions(reward):
    messages = [[{"role": "assistant", "content": T + r"\boxed{7}"}], [{"role": "assistant", "content": "7"}]]
    assert reward(messages, answer=["7", "7"]) == [1.0, 0.0]


def test_unparseable_gold_is_skipped_with_a_counted_warning(caplog):
    grader = MathVerifyReward(workers=0)
    completions = [T + r"\boxed{1}", "no think tag", T + r"\boxed{1}"]
    with caplog.at_level(logging.WARNING, logger="sas_trl.rewards"):
        rewards = grader(completions, answer=["}{", "}{", "1"])
    assert rewards == [None, None, 1.0]  # the same gold gives None whatever the completion
    assert grader.num_skipped == 2
    assert "Skipped 2 rollouts" in caplog.text and "2 so far" in caplog.text
    grader(completions[:1], answer=[""])
    assert grader.num_skipped == 3


def test_parser_hang_is_cut_by_math_verify_timeout():
    grader = MathVerifyReward(timeout=6, math_verify_timeout=1)
    start = time.monotonic()
    assert grader([T + r"\boxed{9^{9^{9}}}", T + r"\boxed{4}"], answer=["3", "4"]) == [0.0, 1.0]
    assert time.monotonic() - start < 10
    assert grader.pool.num_killed == 0
    grader.close()


def test_stuck_worker_is_killed_and_replaced():
    # math-verify's own timeout set far beyond the hard limit: only the watchdog can stop this answer.
    grader = MathVerifyReward(timeout=1.5, math_verify_timeout=60)
    completions = [T + r"\boxed{1}", T + r"\boxed{9^{9^{9}}}", T + r"\boxed{3}"]
    start = time.monotonic()
    assert grader(completions, answer=["1", "3", "3"]) == [1.0, 0.0, 1.0]
    assert time.monotonic() - start < 15
    assert grader.pool.num_killed == 1
    grader.pool._workers[0].proc.kill()  # a worker that died between calls is replaced too
    assert grader([T + r"\boxed{2}"], answer=["2"]) == [1.0]
    grader.close()


def test_garbage_and_huge_text_give_zero_quickly(reward):
    rng = torch.Generator().manual_seed(0)
    garbage = "".join(chr(c) for c in torch.randint(32, 127, (200_000,), generator=rng).tolist())
    completions = [
        garbage,
        T + garbage,
        T + r"\boxed{" + "{" * 100_000 + "1" + "}" * 100_000 + "}",  # too long to be an answer: not parsed
        T + r"\boxed{" + "\\" * 10_001,
        "</think>" * 50_000 + r"\boxed{}",
        T + "\x00\udcff\U0001f600" + r"\boxed{\x}",
    ]
    start = time.monotonic()
    assert reward(completions, answer=["7"] * len(completions)) == [0.0] * len(completions)
    assert time.monotonic() - start < 15


def test_grading_off_the_main_thread(reward):
    out = {}

    def work():
        out["rewards"] = reward([T + r"\boxed{\frac{1}{2}}", T + r"\boxed{9^{9^{9}}}"], answer=["0.5", "1"])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert out["rewards"] == [1.0, 0.0]


def test_trl_style_call():
    grader = MathVerifyReward(workers=0)
    rewards = grader(
        prompts=["p", "p", "p"],
        completions=[T + r"\boxed{7}", "cut in the middle", T + r"\boxed{6}"],
        completion_ids=[[5, 6, 0], [5, 6, 7, 8], [1, 2, 3, 4]],
        answer=["7", "7", "7"],
        trainer_state=None,
        log_metric=lambda *a: pytest.fail("the correctness reward logs no metric of its own"),
        log_extra=lambda *a: None,
    )
    assert rewards == [1.0, 0.0, 0.0]


def test_missing_answer_column_and_bad_format():
    with pytest.raises(KeyError, match="'answer'.*solution"):
        MathVerifyReward(workers=0)(["x"], solution=["1"])
    with pytest.raises(ValueError, match="format"):
        MathVerifyReward(format="xml")


def test_accuracy_reward_function():
    assert accuracy_reward.__name__ == "accuracy_reward"
    assert accuracy_reward([T + r"\boxed{7}", r"\boxed{7}"], answer=["7", "7"]) == [1.0, 0.0]


def test_last_boxed_and_extract_answer():
    assert last_boxed(r"\boxed{1} and \boxed{\frac{2}{3}}") == r"\frac{2}{3}"
    assert last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"  # escaped braces do not close the box
    assert last_boxed(r"\boxed{1} then \boxed{2") is None  # an unclosed last box is no answer
    assert last_boxed("no box") is None
    assert extract_answer(r"\boxed{1}</think>\boxed{2}") == "2"
    assert extract_answer(r"\boxed{1}") is None
    assert extract_answer(r"\boxed{1}", format="plain") == "1"


def test_gold_strings():
    assert gold_strings(142.0) == ["142"]
    assert gold_strings(0.5) == ["0.5"]
    assert gold_strings([1, " 2 ", ["3"]]) == ["1", "2", "3"]
    assert gold_strings(None) == []


def test_failed_by_truncation():
    assert failed_by_truncation("3 + 4 = 7\n\n3 + ", truncated=True)  # cut before </think>
    assert failed_by_truncation(T + r"\boxed{1", truncated=True)  # cut inside the box
    assert not failed_by_truncation(T + r"\boxed{8}", truncated=True)  # answered (wrongly): not the cut's fault
    assert not failed_by_truncation("3 + 4 = 7\n\n3 + ", truncated=False)  # stopped on its own
    assert failed_by_truncation("3 + 4 = ", truncated=True, format="plain")


def test_registry_builds_named_rewards_correctness_first():
    from types import SimpleNamespace

    rewards = get_reward_funcs(SimpleNamespace(reward_funcs=["accuracy"], reward_format="plain"))
    assert len(rewards) == 1 and isinstance(rewards[0], MathVerifyReward) and rewards[0].format == "plain"
    rewards[0].close()
    with pytest.raises(RecipeError, match="unknown reward 'lenght'.*accuracy"):
        get_reward_funcs(SimpleNamespace(reward_funcs=["accuracy", "lenght"], reward_format="r1"))
    with pytest.raises(RecipeError, match="non-empty list"):
        get_reward_funcs(SimpleNamespace(reward_funcs=[], reward_format="r1"))
