"""User rewards by dotted path that cannot work: what can be seen when the reward is loaded (an import that
fails, a signature TRL cannot call) is refused when the recipe is parsed; what shows only when it runs (it
raises, returns the wrong length, NaN, text) is one error from the first training step. Every message names the
reward, its module's file and the line."""

from __future__ import annotations

import sys
import textwrap

import pytest
from cli_helpers import QUICK, ROOT, trip_model_work

from sas_trl.cli import main
from sas_trl.errors import UserError
from sas_trl.rewards import get_reward_funcs
from sas_trl.training.recipes import parse

TINY = "recipes/tiny_cpu.yaml"


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write a module of rewards (its name unique per test) on sys.path; returns a function making its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(ROOT)
    written = []

    def write(source: str) -> str:
        name = f"sas_hardening_rewards_{len(written)}_{abs(hash(str(tmp_path))) % 10**6}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


# source, the function's name, what the message says, the line it names
AT_LOAD = {
    "no **kwargs": ("def f(completions):\n    return [0.0] * len(completions)\n", "f", "has no **kwargs", 1),
    "named columns but no **kwargs": (
        "\n\ndef f(prompts, completions, answer):\n    return [0.0] * len(completions)\n",
        "f",
        "has no **kwargs",
        3,
    ),
    "positional-only": (
        "def f(completions, /, **kwargs):\n    return [0.0] * len(completions)\n",
        "f",
        "positional-only",
        1,
    ),
    "a syntax error": ("def f(completions, **kwargs)\n    return []\n", "f", "has a syntax error", 1),
    "an indentation error": (
        "def f(completions, **kwargs):\n    x = 1\n      return []\n",
        "f",
        "has a syntax error",
        3,
    ),
    "an error while importing": ("import math\nVALUE = 1 / 0\n", "f", "raised ZeroDivisionError", 2),
    "an unknown name at import": ("\nf = undefined_thing\n", "f", "raised NameError", 2),
}


@pytest.mark.parametrize("case", list(AT_LOAD))
def test_a_reward_that_cannot_load_is_refused_when_the_recipe_is_parsed(module, tmp_path, capsys, monkeypatch, case):
    source, function, says, line = AT_LOAD[case]
    name = module(source)
    trip_model_work(monkeypatch, extra=("load_train_dataset",))
    out = tmp_path / "out"
    code = main(
        ["train", "--recipe", TINY, "--reward_funcs", "accuracy", f"{name}.{function}", "--output_dir", str(out)]
    )
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if "Warning" not in x and "warnings.warn(" not in x]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"'{name}.{function}'" in lines[0] and says in lines[0]
    assert f"{tmp_path / name}.py, line {line}" in lines[0] and not out.exists()


def rewards_of(name: str):
    run_args, args, _, _ = parse(["--recipe", TINY, "--reward_funcs", "accuracy", name])
    return get_reward_funcs(run_args, args)[1]


CALL = {"prompts": ["p1", "p2"], "completions": ["a", "bb"], "completion_ids": [[1], [2, 3]], "answer": ["1", "2"]}

# body of f(completions, **kwargs), what the message says
AT_RUN = {
    "it raises": ("    return [1 / 0 for _ in completions]\n", "raised ZeroDivisionError: division by zero"),
    "it raises KeyError on a column it expects": ("    return kwargs['solution']\n", "raised KeyError: 'solution'"),
    "too few rewards": ("    return [0.0]\n", "returned 1 rewards for 2 completions"),
    "too many rewards": ("    return [0.0, 1.0, 2.0]\n", "returned 3 rewards for 2 completions"),
    "NaN": ("    return [float('nan'), 1.0]\n", "returned NaN for completion 0; return None"),
    "strings": ("    return ['1.0', '0.0']\n", "returned '1.0' (str) for completion 0"),
    "a dict": ("    return [{'score': 1.0}, 0.0]\n", "returned {'score': 1.0} (dict) for completion 0"),
    "one number, not a list": ("    return 1.0\n", "returned float, not a list of floats"),
    "a string, not a list": ("    return 'ab'\n", "returned str, not a list of floats"),
    "nothing": ("    pass\n", "returned NoneType, not a list of floats"),
}


@pytest.mark.parametrize("case", list(AT_RUN))
def test_what_a_reward_does_wrong_when_called_is_named_with_its_line(module, tmp_path, case):
    body, says = AT_RUN[case]
    name = module("\n\ndef f(completions, **kwargs):\n" + body)
    reward = rewards_of(f"{name}.f")
    assert reward.__name__ == "f"  # TRL logs the reward under its own name
    with pytest.raises(UserError) as caught:
        reward(**CALL)
    message = str(caught.value)
    assert f"reward '{name}.f' ({tmp_path / name}.py, line 3)" in message and says in message
    assert "\n" not in message


def test_what_trl_accepts_passes_unchanged(module):
    import numpy as np

    name = module(
        "import numpy as np\n\n"
        "def f(completions, **kwargs):\n    return [None, np.float32(0.5)]\n\n"
        "def g(prompts, completions, completion_ids, **kwargs):\n    return [1, True]\n\n"
        "async def h(completions, **kwargs):\n    return [0.0, 1.0]\n"
    )
    assert rewards_of(f"{name}.f")(**CALL) == [None, np.float32(0.5)]
    assert rewards_of(f"{name}.g")(**CALL) == [1, True]
    import asyncio
    import inspect

    async_reward = rewards_of(f"{name}.h")
    assert inspect.iscoroutinefunction(async_reward)  # TRL runs it with its other async rewards
    assert asyncio.run(async_reward(**CALL)) == [0.0, 1.0]


@pytest.mark.slow
def test_a_reward_failing_in_the_first_training_step_is_one_line(module, tmp_path, capsys):
    name = module("\n\ndef f(completions, **kwargs):\n    return [c.missing for c in completions]\n")
    out = tmp_path / "out"
    argv = ["train", "--recipe", TINY, *QUICK, "--reward_funcs", "accuracy", f"{name}.f", "--output_dir", str(out)]
    assert main([*argv, "--reward_weights", "1.0", "0.5"]) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("sas-trl train: error:")]
    assert len(line) == 1 and "Traceback" not in err, err
    assert f"reward '{name}.f' ({tmp_path / name}.py, line 3) raised AttributeError" in line[0]
