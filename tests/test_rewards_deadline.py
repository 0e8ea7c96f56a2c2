"""sas_trl.rewards.deadline: a user's reward that never returns fails, naming the reward and its deadline."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from cli_helpers import QUICK, ROOT

from sas_trl.rewards.deadline import RewardTimeoutError, with_deadline


def busy_loop(completions, **kwargs):
    while True:
        pass


def spins_then_returns(completions, **kwargs):
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        pass
    return [1.0] * len(completions)


def test_a_reward_that_never_returns_fails_naming_it_and_its_deadline():
    reward = with_deadline(busy_loop, "my_rewards.busy_loop", 0.3)
    start = time.monotonic()
    with pytest.raises(RewardTimeoutError) as err:
        reward(["a"])
    assert time.monotonic() - start < 5
    assert "reward 'my_rewards.busy_loop' did not return within its deadline of 0.3 s (reward_timeout: 0.3)" in str(
        err.value
    )


def test_a_reward_in_time_is_its_own_function_with_no_watchdog_left_behind():
    reward = with_deadline(spins_then_returns, "my_rewards.spins", 5)
    assert reward.__name__ == "spins_then_returns" and reward.__wrapped__ is spins_then_returns
    threads = threading.active_count()
    assert reward(["a", "b"]) == [1.0, 1.0]
    fast = with_deadline(lambda completions, **kwargs: [0.0] * len(completions), "my_rewards.fast", 5)
    start = time.perf_counter()
    for _ in range(200):
        fast(["a"])
    assert (time.perf_counter() - start) / 200 < 0.01  # a timer started and cancelled: well under 10 ms a call
    time.sleep(0.1)
    assert threading.active_count() <= threads  # every watchdog stopped


def test_an_error_inside_the_reward_is_its_own():
    def broken(completions, **kwargs):
        raise KeyError("gold")

    with pytest.raises(KeyError, match="gold"):
        with_deadline(broken, "my_rewards.broken", 5)(["a"])


def test_a_reward_called_from_another_thread_is_stopped_there():
    reward = with_deadline(busy_loop, "my_rewards.busy_loop", 0.3)
    caught = []

    def call():
        try:
            reward(["a"])
        except RewardTimeoutError as err:
            caught.append(str(err))

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and "my_rewards.busy_loop" in caught[0]


def test_an_async_reward_past_its_deadline_fails_naming_it():
    import inspect

    async def judge(completions, **kwargs):
        await asyncio.sleep(30)

    async def quick_judge(completions, **kwargs):
        return [0.5] * len(completions)

    reward = with_deadline(judge, "my_rewards.judge", 0.3)
    assert inspect.iscoroutinefunction(reward)  # TRL still runs it on its event loop
    with pytest.raises(RewardTimeoutError, match="reward 'my_rewards.judge' did not return within .* 0.3 s"):
        asyncio.run(reward(["a"]))
    assert asyncio.run(with_deadline(quick_judge, "my_rewards.quick", 5)(["a"])) == [0.5]


def test_a_reward_stuck_where_no_exception_reaches_ends_the_process_with_the_message():
    script = textwrap.dedent(
        """
        import threading
        import sas_trl.rewards.deadline as deadline
        deadline.STUCK_GRACE_S = 0.5
        def waits_forever(completions, **kwargs):
            threading.Event().wait()  # a blocking call without a timeout
        deadline.with_deadline(waits_forever, "my_rewards.waits_forever", 0.5)(["a"])
        """
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and time.monotonic() - start < 30
    assert "reward 'my_rewards.waits_forever' did not return within its deadline of 0.5 s" in done.stderr
    assert "still running 0.5 s later, where it cannot be interrupted" in done.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "reward_timeout=0.0 is not valid; allowed values: a number of seconds > 0"),
        ("-1", "reward_timeout=-1.0 is not valid; allowed values: a number of seconds > 0"),
        ("nan", "reward_timeout=nan is not valid; allowed values: finite numbers"),
        ("inf", "reward_timeout=inf is not valid; allowed values: finite numbers"),
        ("soon", "reward_timeout"),
    ],
)
def test_reward_timeout_must_be_a_positive_number_of_seconds(value, message):
    from sas_trl.errors import RecipeError
    from sas_trl.training.recipes import parse

    with pytest.raises(RecipeError) as err:
        parse(["--recipe", str(ROOT / "recipes" / "tiny_cpu.yaml"), "--reward_timeout", value])
    assert message in str(err.value)


USER_REWARDS = """
import time

def hangs(completions, **kwargs):
    while True:
        time.sleep(0.01)
"""


@pytest.fixture
def hanging_reward(tmp_path, monkeypatch):
    (tmp_path / "sas_hanging_rewards.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sas_hanging_rewards", raising=False)
    monkeypatch.chdir(ROOT)
    yield "sas_hanging_rewards.hangs"
    sys.modules.pop("sas_hanging_rewards", None)


def test_the_recipes_reward_timeout_reaches_the_users_reward(hanging_reward):
    from sas_trl.rewards import get_reward_funcs
    from sas_trl.training.recipes import parse

    run_args, args, _, resolved = parse(
        ["--recipe", "recipes/tiny_cpu.yaml", "--reward_funcs", "accuracy", hanging_reward, "--reward_timeout", "0.5"]
    )
    accuracy, hangs = get_reward_funcs(run_args, args)
    accuracy.close()
    assert not hasattr(accuracy, "reward_timeout")  # the built-in grader keeps its own per-answer deadline
    assert hangs.reward_timeout == 0.5 and resolved["reward_timeout"] == 0.5
    with pytest.raises(RewardTimeoutError, match="reward 'sas_hanging_rewards.hangs' did not return"):
        hangs(["a"])


@pytest.mark.slow
def test_training_with_a_reward_that_hangs_fails_naming_it(hanging_reward, tmp_path, capsys):
    from sas_trl.cli import main

    argv = ["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--output_dir", str(tmp_path / "run")]
    argv += ["--reward_funcs", "accuracy", hanging_reward, "--reward_timeout", "2"]
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 300
    err = capsys.readouterr().err
    assert "sas-trl train: error: reward 'sas_hanging_rewards.hangs' did not return within its deadline of 2 s" in err
