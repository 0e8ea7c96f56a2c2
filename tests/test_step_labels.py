import pytest

from sas_trl.step_labels import CORRECT, REDUNDANT, WRONG, label_steps, parse_terms, reasoning_correct, thinking_steps
from sas_trl.task import AdditionTask, sample_problems


@pytest.mark.parametrize(
    ("terms", "completion", "labels"),
    [
        ((3, 5, 7), "3 + 5 = 8\n\n8 + 7 = 15\n\n</think>\\boxed{15}", (CORRECT, CORRECT)),
        ((3, 5, 7), "3 + 5 = 8\n\nLet me double-check: 3 + 5 = 8\n\n8 + 7 = 15\n\n</think>", (1, 3, 1)),
        ((3, 5, 7), "3 + 5 = 8\n\n3 + 5 = 8\n\n8 + 7 = 15\n\n</think>", (1, 3, 1)),  # a verbatim repeat
        ((3, 5, 7), "3 + 5 = 9\n\n9 + 7 = 16\n\n</think>", (WRONG, WRONG)),  # wrong sum, then a wrong total
        ((3, 5, 7), "3 + 7 = 10\n\n10 + 5 = 15\n\n</think>", (WRONG, WRONG)),  # addends out of order
        ((3, 5, 7), "3 + 5 = 8\n\n8 + 7 = 15\n\n15 + 1 = 16\n\n</think>", (1, 1, WRONG)),  # an addend too many
        ((3, 5, 7), "3 + 5 = 8\n\nLet me double-check: 8 + 7 = 15\n\n</think>", (1, WRONG)),  # checks an untaken step
        ((3, 5, 7, 2), "3 + 5 = 8\n\n8 + 7 =", (1, CORRECT)),  # cut by the budget inside a correct step
        ((3, 5, 7, 2), "3 + 5 = 8\n\nLet me double", (1, REDUNDANT)),  # cut inside a double-check
        ((3, 5, 7, 2), "3 + 5 = 8\n\n8 + 6", (1, WRONG)),  # cut inside a wrong step
        ((3, 5, 7), "3 + 5 = 8\n\n8 + 7 =\n\n</think>", (1, WRONG)),  # a complete step is never a prefix
        ((3, 5), "</think>\\boxed{8}", ()),
    ],
)
def test_label_steps_hand_built(terms, completion, labels):
    assert label_steps(terms, completion) == labels


def test_worked_solutions_are_correct_or_redundant_and_take_every_addend():
    task = AdditionTask(min_terms=2, max_terms=12, double_check_traces=1.0)
    for problem in sample_problems(300, seed=1, task=task):
        labels = label_steps(problem.terms, problem.completion)
        assert len(labels) == len(problem.steps)
        assert labels.count(CORRECT) == len(problem.terms) - 1
        assert labels.count(REDUNDANT) == sum(s.startswith("Let me double-check") for s in problem.steps)
        assert reasoning_correct(labels)


def test_thinking_steps_and_terms():
    assert thinking_steps("a\n\nb\n\n</think>x\n\ny") == (["a", "b"], True)
    assert thinking_steps("a\n\nb") == (["a", "b"], False)
    assert thinking_steps("a\n\n") == (["a"], True)
    assert parse_terms("Add 3, 5, 17. Let's think") == (3, 5, 17)
    assert parse_terms("What is 2 + 2?") is None
    assert not reasoning_correct(()) and not reasoning_correct((CORRECT, WRONG))
