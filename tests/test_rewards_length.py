"""sas_trl.rewards.length: L1, LAPO and DAPO-overlong rewards against hand-computed values."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace

import pytest

from sas_trl.errors import RecipeError
from sas_trl.rewards import REWARDS, MathVerifyReward, RunContext, get_reward_funcs, register_reward
from sas_trl.rewards.lapo import LAPOBandParams, LAPOBandReward, LAPOTargetParams, LAPOTargetReward, lapo_band_scores
from sas_trl.rewards.length import (
    DAPOOverlongParams,
    L1Params,
    L1Reward,
    split_groups,
)
from sas_trl.rewards.registry import reward_params
from sas_trl.training.recipes import RunArguments

RIGHT, WRONG = "</think>\\boxed{5}", "</think>\\boxed{6}"


class StubGrader:
    """Stands in for MathVerifyReward: a completion is correct when it ends with its gold answer ("bad": None)."""

    def gold_answers(self, kwargs):
        return kwargs["answer"]

    def grade_batch(self, completions, answers):
        return [None if a == "bad" else float(c.endswith(a)) for c, a in zip(completions, answers, strict=True)]

    def close(self):
        pass


def ids(n: int) -> list[int]:
    return [7] * n


# --------------------------------------------------------------------------------------------------
# L1
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grader():
    return MathVerifyReward(workers=0)  # real grading, inline


def call_l1(reward, rows):
    """rows: (completion, budget, length)."""
    return reward(
        prompts=["p"] * len(rows),
        completions=[c for c, _, _ in rows],
        completion_ids=[ids(n) for _, _, n in rows],
        answer=["5"] * len(rows),
        l1_budget=[b for _, b, _ in rows],
    )


def test_l1_exact_against_hand_values(grader):
    reward = L1Reward(grader, alpha=0.0003)
    rows = [
        (RIGHT, 1000, 1500),  # over the budget: 1 - 0.0003 * 500
        (WRONG, 1000, 1500),  # wrong: -0.15, unclipped
        (RIGHT, 1000, 1000),  # exactly at the budget
        (RIGHT, 1000, 400),  # under: |N - n| = 600
        (RIGHT, 0, 200),  # budget 0: 1 - 0.0003 * 200
    ]
    assert call_l1(reward, rows) == pytest.approx([0.85, -0.15, 1.0, 0.82, 0.94])


@pytest.mark.parametrize(
    "form, expected",
    [
        # s = clip(0.5 + 0.001 * (1000 - n), 0, 1): n=1000 -> 0.5, 500 -> 1.0, 1250 -> 0.25, 1500 -> 0, 2000 -> 0.
        ("multiplicative", [0.5, 1.0, 0.25, 0.0, 0.0, 0.0]),
        ("additive", [1.5, 2.0, 1.25, 1.0, 1.0, 0.25]),
    ],
)
def test_l1_max_both_forms(grader, form, expected):
    reward = L1Reward(grader, alpha=0.5, max_alpha=0.002, max_form=form)  # Max rows read max_alpha only
    rows = [(RIGHT, -1000, n) for n in (1000, 500, 1250, 1500, 2000)] + [(WRONG, -1000, 1250)]
    assert call_l1(reward, rows) == pytest.approx(expected)


def test_l1_exact_rows_keep_the_exact_form_in_max_data(grader):
    # A negative budget is a Max row; a budget >= 0 in the same batch is still scored as Exact, with its own alpha
    # (L1's March 2025 release: 1/3000 for Exact rows, 1/500 for Max rows).
    reward = L1Reward(grader, alpha=1 / 3000, max_alpha=0.002, max_form="multiplicative")
    # Exact: 1 - 250 / 3000; Max: clip(0.5 + 0.001 * (1000 - 1250), 0, 1) = 0.25.
    assert call_l1(reward, [(RIGHT, 1000, 1250), (RIGHT, -1000, 1250)]) == pytest.approx([1 - 250 / 3000, 0.25])
    # N = 1000: a correct 2,000-token answer scores 1 - 1000 / 3000 = +0.67, above a wrong 1,000-token one (0);
    # with the Max alpha on this Exact row it would score 1 - 0.002 * 1000 = -1.0, below it.
    assert call_l1(reward, [(RIGHT, 1000, 2000), (WRONG, 1000, 1000)]) == pytest.approx([2 / 3, 0.0])


def test_l1_unusable_gold_is_none_and_a_missing_budget_column_names_it():
    reward = L1Reward(StubGrader())
    out = reward(completions=["x5", "x5"], completion_ids=[ids(3), ids(3)], answer=["5", "bad"], l1_budget=[3, 3])
    assert out == [1.0, None]
    with pytest.raises(KeyError, match="l1_budget"):
        reward(completions=["x5"], completion_ids=[ids(3)], answer=["5"])


def test_length_reward_reuses_the_correctness_verdict(monkeypatch):
    accuracy, l1 = MathVerifyReward(workers=0), L1Reward(MathVerifyReward(workers=0))
    calls = []
    original = MathVerifyReward.grade
    monkeypatch.setattr(MathVerifyReward, "grade", lambda self, c, a: calls.append(len(c)) or original(self, c, a))
    completions = [RIGHT, WRONG + " "]
    kwargs = dict(prompts=["p", "p"], completions=completions, completion_ids=[ids(3), ids(3)], answer=["5", "5"])
    assert accuracy(**kwargs) == [1.0, 0.0]
    assert l1(**kwargs, l1_budget=[3, 3]) == [1.0, 0.0]
    assert calls == [2]  # graded once for both rewards
    accuracy(**{**kwargs, "completions": [WRONG, RIGHT + " "]})
    assert calls == [2, 2]  # a different batch is graded again


# --------------------------------------------------------------------------------------------------
# LAPO stage 1
# --------------------------------------------------------------------------------------------------


def test_lapo_band_all_correct():
    # Correct lengths 100..400: 30th percentile 190, 70th 310 (linear interpolation); 100 and 400 are 90 outside.
    scores, median = lapo_band_scores([True] * 4, [100, 200, 300, 400])
    assert scores == pytest.approx([0.1, 1.0, 1.0, 0.1]) and median == 250


def test_lapo_band_mixed_and_far_outside():
    # Correct [100, 300]: band [160, 240], both 60 outside -> 0.4; wrong rollouts score 0.
    scores, median = lapo_band_scores([True, False, True, False], [100, 50, 300, 1000])
    assert scores == pytest.approx([0.4, 0.0, 0.4, 0.0]) and median == 200
    scores, _ = lapo_band_scores([True] * 4, [100, 100, 100, 1000])  # band [100, 190]: 1000 is 810 outside
    assert scores == pytest.approx([1.0, 1.0, 1.0, 0.0])


def test_lapo_band_no_correct_and_a_single_correct():
    assert lapo_band_scores([False] * 4, [10, 20, 30, 40]) == ([0.0] * 4, 0.0)
    # One correct length: the band is empty (low == high), as in LAPO's code: no length score.
    assert lapo_band_scores([False, True, False, False], [10, 20, 30, 40]) == ([0.0] * 4, 20.0)


def band_call(reward, prompts, completions, lengths):
    return reward(
        prompts=[[{"role": "user", "content": p}] for p in prompts],
        completions=completions,
        completion_ids=[ids(n) for n in lengths],
        answer=["5"] * len(prompts),
    )


def test_lapo_band_reward_and_its_targets():
    reward = LAPOBandReward(StubGrader(), num_generations=4)
    prompts = ["A"] * 4 + ["B"] * 4
    completions = ["5", "6", "5", "6"] + ["6"] * 4
    out = band_call(reward, prompts, completions, [100, 50, 300, 1000, 10, 20, 30, 40])
    assert out == pytest.approx([1 + 0.7 * 0.4, 0.0, 1 + 0.7 * 0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert reward.targets == {"A": 200.0, "B": 0.0}
    band_call(reward, ["A"] * 4, ["5"] * 4, [10, 10, 20, 20])
    assert reward.targets["A"] == 15.0  # the last recorded value per prompt is kept


def test_lapo_band_in_evaluation_groups_by_num_generations_eval_and_records_nothing():
    reward = LAPOBandReward(StubGrader(), num_generations=4, num_generations_eval=2)
    band_call(reward, ["A"] * 4, ["5"] * 4, [10, 10, 20, 20])
    before = dict(reward.targets)
    rows = dict(
        prompts=[[{"role": "user", "content": p}] for p in ("A", "A", "B", "B")],
        completions=["5", "5", "6", "5"],
        completion_ids=[ids(n) for n in (10, 30, 5, 7)],
        answer=["5"] * 4,
    )
    # Two groups of 2 (groups of 4 would mix A and B). A: band [16, 24], both 6 tokens outside: 1 + 0.7 * 0.94;
    # B: one correct length, an empty band: accuracy only.
    out = reward(**rows, generation_mode=["eval"] * 4)
    assert out == pytest.approx([1 + 0.7 * 0.94, 1 + 0.7 * 0.94, 0.0, 1.0])
    assert reward.targets == before == {"A": 15.0}  # evaluation prompts are never stage-2 targets
    with pytest.raises(RuntimeError, match="not contiguous"):  # in training, groups of 4
        reward(**rows, generation_mode=["train"] * 4)


def test_lapo_target_in_evaluation_groups_by_num_generations_eval():
    reward = LAPOTargetReward(StubGrader(), num_generations=4, num_generations_eval=2)
    kwargs = dict(generation_mode=["eval"] * 4)
    # Without targets each pair falls back to its own median: A (150, 270) -> 210, B (30 only) -> 30.
    out = reward(
        prompts=["A", "A", "B", "B"],
        completions=["5", "5", "5", "6"],
        completion_ids=[ids(n) for n in (150, 270, 30, 150)],
        answer=["5"] * 4,
        lapo_target=[None] * 4,
        **kwargs,
    )
    assert out == pytest.approx([1 + 0.8 * math.exp(-0.125), 1 + 0.8 * math.exp(-0.125), 1.8, 0.0])


def test_lapo_band_state_reloads_under_newer_targets(tmp_path):
    first = LAPOBandReward(StubGrader(), num_generations=4)
    band_call(first, ["A"] * 4 + ["B"] * 4, ["5"] * 8, [10, 10, 20, 20, 30, 30, 40, 40])
    assert first.save_state(tmp_path) == tmp_path / "lapo_targets.json"
    resumed = LAPOBandReward(StubGrader(), num_generations=4)
    band_call(resumed, ["B"] * 4 + ["C"] * 4, ["5"] * 8, [1, 1, 3, 3, 7, 7, 9, 9])  # seen before the load
    resumed.load_state(tmp_path)
    assert resumed.targets == {"A": 15.0, "B": 2.0, "C": 8.0}  # A kept; B's newer median wins


def test_lapo_groups_must_be_contiguous():
    with pytest.raises(RuntimeError, match="not contiguous"):
        split_groups([("A",), ("B",), ("A",), ("B",)], 2)
    with pytest.raises(RuntimeError, match="num_generations=4"):
        split_groups([("A",)] * 6, 4)


def simulate_processes(make_reward, call, slices):
    """Call one reward object per simulated process in threads; the gather is a barrier, as the collective."""
    world = len(slices)
    barrier, gathered, results = threading.Barrier(world), [None] * world, [None] * world

    def run(rank):
        def gather(rows):
            gathered[rank] = rows
            barrier.wait()
            everything = [row for part in gathered for row in part]
            return everything, sum(len(part) for part in gathered[:rank])

        results[rank] = call(make_reward(gather), *slices[rank])

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_lapo_band_with_a_group_split_across_processes():
    # 3 groups of 4 on 2 processes of 6 rollouts: group B has 2 rollouts on each process.
    prompts = ["A"] * 4 + ["B"] * 4 + ["C"] * 4
    completions = ["5"] * 4 + ["5", "6", "5", "6"] + ["6"] * 4
    lengths = [100, 200, 300, 400, 100, 50, 300, 1000, 1, 2, 3, 4]
    whole = band_call(LAPOBandReward(StubGrader(), 4), prompts, completions, lengths)
    slices = [(prompts[:6], completions[:6], lengths[:6]), (prompts[6:], completions[6:], lengths[6:])]
    rewards = []
    parts = simulate_processes(
        lambda g: rewards.append(LAPOBandReward(StubGrader(), 4, gather=g)) or rewards[-1], band_call, slices
    )
    assert parts[0] + parts[1] == pytest.approx(whole)
    assert parts[0][4:] == pytest.approx([1 + 0.7 * 0.4, 0.0])  # B's first half, scored with its second half
    assert all(r.targets == {"A": 250.0, "B": 200.0, "C": 0.0} for r in rewards)  # every process sees every group


# --------------------------------------------------------------------------------------------------
# LAPO stage 2
# --------------------------------------------------------------------------------------------------


def target_call(reward, completions, lengths, targets, prompts=None):
    return reward(
        prompts=prompts or ["A"] * len(completions),
        completions=completions,
        completion_ids=[ids(n) for n in lengths],
        answer=["5"] * len(completions),
        lapo_target=targets,
    )


GAUSS_120 = 1 + 0.8 * math.exp(-0.5)  # 120 tokens from T with sigma 120


def test_lapo_target_gaussian():
    reward = LAPOTargetReward(StubGrader(), num_generations=4)
    out = target_call(reward, ["5", "5", "5", "6"], [150, 270, 30, 150], [150] * 4)
    assert out == pytest.approx([1.8, GAUSS_120, GAUSS_120, 0.0])


def test_lapo_target_without_a_stage2_target_uses_the_group_median():
    reward = LAPOTargetReward(StubGrader(), num_generations=4)
    # Correct lengths [150, 270, 30] -> median 150, the same values as with T = 150.
    out = target_call(reward, ["5", "5", "5", "6"], [150, 270, 30, 150], [None] * 4)
    assert out == pytest.approx([1.8, GAUSS_120, GAUSS_120, 0.0])
    # No correct rollout and no target: accuracy only.
    assert target_call(reward, ["6"] * 4, [1, 2, 3, 4], [None] * 4) == [0.0] * 4


def test_lapo_target_split_across_processes():
    completions, lengths = ["5", "5", "5", "6"] * 2, [150, 270, 30, 150] * 2
    prompts, targets = ["A"] * 4 + ["B"] * 4, [None] * 4 + [270] * 4
    whole = target_call(LAPOTargetReward(StubGrader(), 4), completions, lengths, targets, prompts)
    slices = [(completions[i:j], lengths[i:j], targets[i:j], prompts[i:j]) for i, j in ((0, 2), (2, 8))]
    parts = simulate_processes(lambda g: LAPOTargetReward(StubGrader(), 4, gather=g), target_call, slices)
    assert parts[0] + parts[1] == pytest.approx(whole)
    assert parts[0] == pytest.approx([1.8, GAUSS_120])  # fallback median 150 needed the other process's rollout
    assert whole[4:] == pytest.approx([GAUSS_120, 1.8, 1 + 0.8 * math.exp(-2.0), 0.0])  # T = 270


# --------------------------------------------------------------------------------------------------
# DAPO overlong and the registry
# --------------------------------------------------------------------------------------------------


def test_dapo_overlong_is_trls_function():
    run_args = RunArguments(reward_funcs=["accuracy", "dapo_overlong"], reward_params={"dapo_overlong": {"cache": 20}})
    [params] = [reward_params(run_args.reward_funcs, run_args.reward_params)["dapo_overlong"]]
    reward = REWARDS["dapo_overlong"].factory(params, RunContext(max_completion_length=100))
    assert (
        reward.__name__ == "soft_overlong_punishment_reward" and type(reward).__module__ == "trl.rewards.other_rewards"
    )
    assert reward(completion_ids=[ids(80), ids(90), ids(100), ids(101)]) == [0.0, -0.5, -1.0, -1.0]
    default = REWARDS["dapo_overlong"].factory(DAPOOverlongParams(), RunContext(max_completion_length=100))
    assert default.soft_punish_cache == 20  # a fifth of the cap


def test_registry_builds_the_baselines_rewards_from_the_recipe_keys():
    run_args = RunArguments(
        reward_funcs=["accuracy", "l1", "lapo_band"],
        reward_params={"l1": {"alpha": 0.01, "max_form": "additive"}, "lapo_band": {"margin": 7}},
        prompt_transforms=["l1_budget"],
    )
    accuracy, l1, band = get_reward_funcs(run_args, SimpleNamespace(num_generations=6))
    assert (l1.alpha, l1.max_form, band.margin, band.num_generations) == (0.01, "additive", 7.0, 6)
    assert band.percentiles == (30.0, 70.0) and band.weight == 0.7  # the defaults of the unset parameters
    assert l1.correctness.format == accuracy.format  # the same grading settings: verdicts are shared
    with pytest.raises(ValueError, match="num_generations"):
        get_reward_funcs(run_args, None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"l1": {"alpha": -1}}, r"reward_params.l1.alpha=-1.0 is not valid; allowed values: > 0"),
        (
            {"l1": {"max_form": "product"}},
            r"reward_params.l1.max_form='product' is not valid; allowed.*multiplicative",
        ),
        ({"l1": {"alpha": "big"}}, r"reward_params.l1.alpha: 'big' is not a valid float"),
        (
            {"l1": {"alpah": 0.1}},
            r"unknown parameter reward_params.l1.alpah; did you mean 'alpha'\? .parameters: alpha",
        ),
        ({"lapo_bnad": {}}, r"reward_params: unknown reward 'lapo_bnad'; did you mean 'lapo_band'"),
        ({"lapo_band": {"weight": 1}}, r"reward_params.lapo_band is set but reward_funcs does not list 'lapo_band'"),
        ({"l1": [0.1]}, r"reward_params.l1 must be a mapping of parameter: value"),
        ("[1, 2]", r"reward_params must be a mapping"),
    ],
)
def test_reward_params_are_checked_naming_the_key(params, message):
    with pytest.raises(RecipeError, match=message):
        RunArguments(reward_funcs=["accuracy", "l1"], prompt_transforms=["l1_budget"], reward_params=params)


def test_each_parameter_is_checked_where_it_is_declared():
    with pytest.raises(RecipeError, match=r"^alpha=0 is not valid; allowed values: > 0$"):
        L1Params(alpha=0)
    with pytest.raises(RecipeError, match=r"percentiles=\[70, 30\] is not valid"):
        LAPOBandParams(percentiles=(70, 30))
    with pytest.raises(RecipeError, match=r"sigma=-1 is not valid"):
        LAPOTargetParams(sigma=-1)
    with pytest.raises(RecipeError, match=r"cache=0 is not valid; allowed values: >= 1"):
        DAPOOverlongParams(cache=0)
    with pytest.raises(RecipeError, match=r"cache=33 is not valid; allowed values: <= max_completion_length \(32\)"):
        DAPOOverlongParams(cache=33).check_context(RunContext(max_completion_length=32))


def test_a_reward_registers_once_with_its_parameters():
    assert (REWARDS["l1"].params, REWARDS["l1"].needs_column, REWARDS["l1"].correctness) == (
        L1Params,
        "l1_budget",
        False,
    )
    assert REWARDS["accuracy"].correctness and REWARDS["lapo_target"].needs_column == "lapo_target"
    with pytest.raises(ValueError, match="'l1' is registered twice"):
        register_reward("l1", params=L1Params)(lambda params, context: None)


def test_the_factories_doctests_hold():
    import doctest

    from sas_trl.rewards import length

    result = doctest.testmod(length)
    assert result.attempted >= 4 and result.failed == 0
