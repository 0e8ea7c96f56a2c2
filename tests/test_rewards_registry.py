"""sas_trl.rewards.registry: names and dotted import paths in `reward_funcs`, checked when the recipe is parsed."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from cli_helpers import QUICK, ROOT

from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.rewards import get_reward_funcs, reward_spec
from sas_trl.training.recipes import parse

MODULE = "sas_user_rewards"  # a module only these tests write (tmp_path, put on sys.path)
USER_REWARDS = '''
def brevity(completions, completion_ids, **kwargs):
    """Shorter is better: -n / 100."""
    return [-len(ids) / 100 for ids in completion_ids]


def exact_match(completions, answer, **kwargs):
    """1.0 when the text after </think> is the boxed gold answer."""
    text = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(t.rsplit("</think>", 1)[-1].strip() == "\\\\boxed{" + a + "}") for t, a in zip(text, answer)]


exact_match.sas_correctness = True  # grades correctness: may be the first reward
NOT_CALLABLE = 3


class AClass:
    pass
'''


@pytest.fixture
def user_rewards(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(USER_REWARDS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.chdir(ROOT)
    yield MODULE
    sys.modules.pop(MODULE, None)


def test_a_dotted_path_names_the_users_reward_function(user_rewards):
    run_args, args, _, resolved = parse(
        ["--recipe", "recipes/tiny_cpu.yaml", "--reward_funcs", "accuracy", f"{MODULE}.brevity"]
    )
    assert resolved["reward_funcs"] == ["accuracy", f"{MODULE}.brevity"]
    accuracy, brevity = get_reward_funcs(run_args, args)
    assert brevity.__wrapped__ is sys.modules[MODULE].brevity and brevity(["a"], [[1, 2, 3]]) == [-0.03]
    accuracy.close()
    assert not reward_spec(f"{MODULE}.brevity").correctness  # not a correctness reward unless it says so
    assert reward_spec(f"{MODULE}.exact_match").correctness  # it says so: sas_correctness = True
    # ... so it may come first (it then defines SAS's "correct").
    run_args, *_ = parse(["--recipe", "recipes/tiny_cpu.yaml", "--reward_funcs", f"{MODULE}.exact_match"])
    assert run_args.reward_funcs == [f"{MODULE}.exact_match"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--reward_funcs", "accuracy", "no_such_package.rewards.brevity"],
            r"cannot import 'no_such_package.rewards'",
        ),
        (["--reward_funcs", "accuracy", f"{MODULE}.brevityy"], f"module '{MODULE}' has no attribute 'brevityy'"),
        (
            ["--reward_funcs", "accuracy", f"{MODULE}.NOT_CALLABLE"],
            r"NOT_CALLABLE' is not a reward function .* type int",
        ),
        (["--reward_funcs", "accuracy", f"{MODULE}.AClass"], r"AClass' is not a reward function .* type type"),
        (["--reward_funcs", f"{MODULE}.brevity"], r"first reward must grade correctness.*sas_correctness = True"),
        (
            ["--reward_funcs", "accuracy", f"{MODULE}.brevity", "--reward_params", f"{{{MODULE}.brevity: {{k: 1}}}}"],
            "a dotted-path reward takes no parameters",
        ),
        (
            ["--reward_funcs", "accuracy", f"{MODULE}.brevity", "--sas_correct_reward_index", "1"],
            f"names reward '{MODULE}.brevity', which does not grade correctness",
        ),
        (
            ["--reward_funcs", "acuracy"],
            "unknown reward 'acuracy'; known rewards: .*or a dotted path.*; did you mean 'accuracy'",
        ),
    ],
)
def test_bad_dotted_paths_fail_when_the_recipe_is_parsed(user_rewards, flags, message):
    with pytest.raises(RecipeError, match=message):
        parse(["--recipe", "recipes/tiny_cpu.yaml", *flags])


@pytest.mark.slow
def test_tiny_recipe_trains_with_a_dotted_path_reward(user_rewards, tmp_path):
    out = tmp_path / "run"
    flags = ["--reward_funcs", "accuracy", f"{MODULE}.brevity", "--reward_weights", "1.0", "0.5"]
    argv = ["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, *flags, "--output_dir", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "run_info.json").read_text())["global_step"] == 2
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["rewards/brevity/mean"] < 0  # every completion has a length: the user's reward was computed
    assert "rewards/accuracy/mean" in metrics
