"""The verl recipes' reward: DeepScaleR's grading, each calling thread in its own grading process with a deadline."""

from __future__ import annotations

import threading

from sas_trl.integrations import verl_reward


def test_each_thread_grades_in_its_own_process_with_the_trl_paths_deadline():
    graders, scores = {}, {}

    def call(name: str, answer: str) -> None:
        scores[name] = verl_reward.compute_score("math", f"So.\n\n</think>\n\\boxed{{{answer}}}", "4")
        graders[name] = verl_reward.reward()

    threads = [threading.Thread(target=call, args=(name, answer)) for name, answer in (("a", "4"), ("b", "5"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert scores == {"a": 1.0, "b": 0.0}
    first, second = graders["a"], graders["b"]
    assert first is not second and first.pool is not None and second.pool is not None  # no inline grading
    assert first.pool.timeout == verl_reward.TIMEOUT == 10.0 and first.format == "r1"
    for grader in (first, second):
        grader.close()


def test_a_list_cell_read_back_from_parquet_is_several_accepted_answers():
    import numpy as np

    text = "So.\n\n</think>\n\\boxed{5}"
    assert verl_reward.compute_score("math", text, np.array(["4", "5"], dtype=object)) == 1.0
    assert verl_reward.compute_score("math", text, "4") == 0.0
    assert verl_reward.compute_score("math", "no think end \\boxed{4}", "4") == 0.0
