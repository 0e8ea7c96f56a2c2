"""The baseline recipes (recipes/baselines/): validation, SAS's "correct" under a length reward, tiny runs, stages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import CPU_OVERRIDES, LATER_STAGES, QUICK, RECIPES, ROOT, kill_when, sas_trl
from datasets import Dataset

from sas_trl import SASConfig, SASGRPOTrainer
from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.rewards import L1Reward, MathVerifyReward
from sas_trl.training.recipes import load_recipe, parse

BASELINES = ROOT / "recipes" / "baselines"
TINY = [r for r in RECIPES if r.parent == BASELINES / "tiny_cpu"]


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_every_baseline_and_its_tiny_variant_is_shipped():
    methods = {"l1_exact", "l1_max", "sas_plus_l1_max", "lapo_stage1", "lapo_stage2", "dapo_overlong"}
    methods |= {"grpo_overlong_filter", "sas_overlong_filter"}
    assert {p.stem for p in BASELINES.glob("*.yaml")} == methods | {"thinkprune_4k", "thinkprune_3k", "thinkprune_2k"}
    assert {p.stem for p in (BASELINES / "tiny_cpu").glob("*.yaml")} == methods - {"lapo_stage2"} | {
        "lapo_stage2",
        "thinkprune_stage1",
        "thinkprune_stage2",
    }


@pytest.mark.parametrize("recipe", LATER_STAGES, ids=lambda p: p.relative_to(BASELINES).as_posix())
def test_later_stages_need_and_accept_the_earlier_stages_output(recipe, tmp_path, monkeypatch, tiny_model_dir):
    raw = load_recipe(recipe)
    with pytest.raises(RecipeError, match=r"does not exist|not found"):
        parse(["--recipe", str(recipe), *CPU_OVERRIDES])
    # Where the earlier stage has run, the recipe validates unchanged.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    previous = tmp_path / raw["model_name_or_path"]
    shutil.copytree(tiny_model_dir, previous)  # a saved model: an empty folder is refused, naming config.json
    if "lapo_target" in raw.get("transform_params", {}):
        (previous / "lapo_targets.json").write_text(json.dumps({"a prompt": 120}))
    run_args, args, model_args, _ = parse(["--recipe", str(recipe), *CPU_OVERRIDES])
    assert model_args.model_name_or_path == raw["model_name_or_path"]
    assert args.output_dir != raw["model_name_or_path"]


def load_train_prompts(name: str) -> list:
    """The prompts the recipe's transforms make of one problem (its system prompt names its own cap)."""
    from sas_trl.transforms import apply_transforms

    run_args, args, *_ = parse(["--recipe", str(BASELINES / name), *CPU_OVERRIDES])
    problem = Dataset.from_list([{"prompt": [{"role": "user", "content": "Add 1, 2."}], "answer": "3"}])
    return apply_transforms(problem, run_args, args)["prompt"]


def test_dapo_weights_give_dapos_advantages():
    # DAPO: reward = (+1 / -1 correctness) + punishment. The recipe: 2 * (1 / 0 correctness) + punishment, which is
    # DAPO's + 1 for every rollout; the group mean removes it, so the advantages are DAPO's (hand values below).
    from sas_trl.rewards.length import get_dapo_overlong_reward
    from sas_trl.rewards.params import RunContext
    from sas_trl.rewards.registry import reward_params

    run_args, args, *_ = parse(["--recipe", str(BASELINES / "dapo_overlong.yaml"), *CPU_OVERRIDES])
    params = reward_params(run_args.reward_funcs, run_args.reward_params)["dapo_overlong"]
    punish = get_dapo_overlong_reward(params, RunContext(max_completion_length=args.max_completion_length))
    lengths, correct = [1000, 3686, 4096, 3277], [1.0, 1.0, 0.0, 0.0]
    # 0 up to 4096 - 819 = 3277 tokens, then (3277 - n) / 819 down to -1 at the cap.
    expected_punishment = [0.0, -409 / 819, -1.0, 0.0]
    assert punish(completion_ids=[[0] * n for n in lengths]) == pytest.approx(expected_punishment)
    weights = torch.tensor(args.reward_weights)
    ours = torch.stack([torch.tensor(correct), torch.tensor(expected_punishment)], 1) @ weights
    dapo = torch.tensor([1.0 - 0.0, 1.0 - 409 / 819, -1.0 - 1.0, -1.0 + 0.0])
    assert ours.tolist() == pytest.approx((dapo + 1).tolist())
    for scale in (True, False):  # scale_rewards "group" and "none": the same advantages as DAPO's reward
        ours_adv, dapo_adv = ours - ours.mean(), dapo - dapo.mean()
        if scale:
            ours_adv, dapo_adv = ours_adv / ours.std(), dapo_adv / dapo.std()
        assert ours_adv.tolist() == pytest.approx(dapo_adv.tolist())


def test_the_method_defining_values():
    def get(name):
        run_args, args, model_args, _ = parse(["--recipe", str(BASELINES / name), *CPU_OVERRIDES])
        return run_args, args

    run_args, args = get("l1_exact.yaml")
    assert run_args.reward_funcs == ["accuracy", "l1"] and args.reward_weights == [0.0, 1.0]
    assert run_args.reward_params == {"l1": {"alpha": 0.0003}}
    assert run_args.transform_params == {"l1_budget": {"budget_range": [100, 4000], "max_fraction": 0.0}}
    assert args.sas_strategy == "none" and args.max_completion_length == 4096
    run_args, args = get("l1_max.yaml")
    assert run_args.reward_params == {
        "l1": {"alpha": 0.000333333333, "max_alpha": 0.002, "max_form": "multiplicative"}
    }
    assert run_args.transform_params == {"l1_budget": {"budget_range": [100, 4000], "max_fraction": 0.5}}
    run_args, args = get("sas_plus_l1_max.yaml")
    assert (
        args.sas_strategy == "both" and run_args.reward_funcs[0] == "accuracy" and args.sas_correct_reward_index == 0
    )
    run_args, args = get("thinkprune_4k.yaml")
    assert (run_args.reward_format, run_args.prompt_transforms, run_args.reward_funcs) == (
        "boxed",
        ["thinkprune_system"],
        ["accuracy"],
    )
    caps = [load_recipe(BASELINES / f"thinkprune_{k}k.yaml").get("max_completion_length") for k in (4, 3, 2)]
    assert caps == [4000, 3000, 2000]  # ThinkPrune's scripts: 4000, then 3000; the third stage an extension
    assert "within 4000 tokens" in str(load_train_prompts("thinkprune_4k.yaml")[0])
    run_args, args = get("lapo_stage1.yaml")
    assert run_args.reward_funcs == ["accuracy", "lapo_band"]
    assert run_args.reward_params == {"lapo_band": {"percentiles": [30.0, 70.0], "margin": 100.0, "weight": 0.7}}
    run_args, args = get("grpo_overlong_filter.yaml")
    assert args.mask_truncated_completions and args.sas_strategy == "none" and args.max_completion_length == 4096
    run_args, args = get("sas_overlong_filter.yaml")
    assert args.mask_truncated_completions and (args.sas_strategy, args.sas_ratio, args.sas_failed_scope) == (
        "both",
        0.3,
        "all",
    )
    with pytest.raises(RecipeError, match="sas_failed_scope='truncated' has nothing to shield"):
        parse(
            [
                "--recipe",
                str(BASELINES / "sas_overlong_filter.yaml"),
                *CPU_OVERRIDES,
                "--sas_failed_scope",
                "truncated",
            ]
        )
    run_args, args = get("dapo_overlong.yaml")
    assert (run_args.reward_params, args.reward_weights) == ({"dapo_overlong": {"cache": 819}}, [2.0, 1.0])


def test_the_shipped_baselines_build_the_same_rewards_and_transforms(tmp_path):
    # What each recipe's parameters build: the values the flat keys gave before they moved to reward_params.
    from sas_trl.rewards.registry import reward_params
    from sas_trl.transforms import transform_params

    def built(name):
        run_args, args, *_ = parse(["--recipe", str(BASELINES / name), *CPU_OVERRIDES])
        rewards = reward_params(run_args.reward_funcs, run_args.reward_params)
        return rewards, transform_params(run_args.prompt_transforms, run_args.transform_params)

    rewards, transforms = built("l1_exact.yaml")
    assert (rewards["l1"].alpha, rewards["l1"].max_form) == (0.0003, "multiplicative")
    assert (transforms["l1_budget"].budget_range, transforms["l1_budget"].max_fraction) == ((100, 4000), 0.0)
    rewards, transforms = built("l1_max.yaml")
    assert (rewards["l1"].alpha, rewards["l1"].max_alpha, rewards["l1"].max_form) == (
        pytest.approx(1 / 3000),
        0.002,
        "multiplicative",
    )
    assert (transforms["l1_budget"].budget_range, transforms["l1_budget"].max_fraction) == ((100, 4000), 0.5)
    band = built("lapo_stage1.yaml")[0]["lapo_band"]
    assert (band.percentiles, band.margin, band.weight) == ((30.0, 70.0), 100.0, 0.7)
    assert built("dapo_overlong.yaml")[0]["dapo_overlong"].cache == 819
    tiny = BASELINES / "tiny_cpu"
    rewards, transforms = built(tiny / "l1_max.yaml")
    assert (rewards["l1"].alpha, rewards["l1"].max_alpha) == (0.01, 0.05)
    assert (transforms["l1_budget"].budget_range, transforms["l1_budget"].max_fraction) == ((8, 32), 0.5)
    assert built(tiny / "lapo_stage1.yaml")[0]["lapo_band"].margin == 5.0
    assert built(tiny / "dapo_overlong.yaml")[0]["dapo_overlong"].cache == 8


def test_l1_max_scores_each_kind_of_row_with_its_own_alpha():
    # The shipped l1_max.yaml, N = 1000: a correct 2,000-token answer on an Exact row scores 1 - 1000 / 3000 = +0.67
    # (above a wrong 1,000-token answer's 0), on a Max row clip(0.5 + 0.001 * (1000 - 2000), 0, 1) * 1 = 0.
    from sas_trl.rewards.length import get_l1_reward
    from sas_trl.rewards.params import RunContext
    from sas_trl.rewards.registry import reward_params

    run_args, *_ = parse(["--recipe", str(BASELINES / "l1_max.yaml"), *CPU_OVERRIDES])
    reward = get_l1_reward(reward_params(run_args.reward_funcs, run_args.reward_params)["l1"], RunContext())
    right, wrong = "</think>\\boxed{5}", "</think>\\boxed{6}"
    scores = reward(
        completions=[right, wrong, right, right],
        completion_ids=[[1] * 2000, [1] * 1000, [1] * 2000, [1] * 750],
        answer=["5"] * 4,
        l1_budget=[1000, 1000, -1000, -1000],
    )
    assert scores == pytest.approx([2 / 3, 0.0, 0.0, 0.75])  # Max row at 750 tokens: 0.5 + 0.001 * 250
    reward.close()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--prompt_transforms", "l1_budgett"], "prompt_transforms: unknown transform 'l1_budgett'"),
        (["--reward_funcs", "accuracy", "l1"], "'l1' needs prompt_transforms to include 'l1_budget'"),
        (["--reward_funcs", "l1"], "the first reward must grade correctness"),
        (["--reward_params", "{l1: {max_form: product}}"], "reward_params.l1.max_form='product' is not valid"),
        (["--reward_params", "{l1: {alpha: 0}}"], r"reward_params.l1.alpha=0.0 is not valid; allowed values: > 0"),
        (
            ["--transform_params", "{l1_budget: {budget_range: [500, 100]}}"],
            r"transform_params.l1_budget.budget_range=\[500, 100\] is not valid",
        ),
        (["--transform_params", "{l1_budget: {max_fraction: 1.5}}"], "transform_params.l1_budget.max_fraction=1.5 is"),
        (["--reward_params", "{lapo_band: {percentiles: [70, 30]}}"], "reward_params.lapo_band.percentiles=.* is not"),
        (["--reward_params", "{lapo_target: {sigma: -1}}"], r"reward_params.lapo_target.sigma=-1.0 is not valid"),
        (["--prompt_transforms", "lapo_target"], "transform_params.lapo_target.targets is required"),
        (
            ["--reward_funcs", "accuracy", "dapo_overlong", "--reward_params", "{dapo_overlong: {cache: 33}}"],
            r"reward_params.dapo_overlong.cache=33 is not valid; allowed values: <= max_completion_length \(32\)",
        ),
        (["--l1_alpha", "0.01"], r"l1_alpha moved to reward_params: \{l1: \{alpha: \.\.\.\}\} \(in the command line"),
    ],
)
def test_bad_baseline_keys_fail_when_the_recipe_is_parsed(flags, message):
    with pytest.raises(RecipeError, match=message):
        parse(["--recipe", "recipes/tiny_cpu.yaml", *flags])


def test_a_correct_but_long_rollout_stays_correct_for_sas_under_l1_exact(tmp_path, tiny_model_dir):
    args = SASConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=16,
        reward_weights=[0.0, 1.0],
        report_to="none",
        use_cpu=True,
        bf16=False,
    )
    dataset = Dataset.from_list([{"prompt": "Add 2, 3.", "answer": "5", "l1_budget": 10}])
    accuracy = MathVerifyReward(workers=0)
    trainer = SASGRPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=[accuracy, L1Reward(MathVerifyReward(workers=0), alpha=0.01)],
        args=args,
        train_dataset=dataset,
    )
    long_right, short_wrong = "2 + 3 = 5\n\n" * 20 + "</think>\\boxed{5}", "</think>\\boxed{6}"
    inputs = [{"prompt": "Add 2, 3.", "answer": "5", "l1_budget": 10}] * 2
    rewards = trainer._calculate_rewards(inputs, ["Add 2, 3."] * 2, [long_right, short_wrong], [[1] * 210, [1] * 10])
    # L1-Exact: 1 - 0.01 * |10 - 210| = -1.0 for the right answer, 0 for the wrong one at the budget.
    assert rewards[:, 1].tolist() == pytest.approx([-1.0, 0.0])
    assert rewards[:, 0].tolist() == [1.0, 0.0]
    assert trainer._sas_rollout_flags["sas_is_correct"].tolist() == [True, False]  # the answer, not the sum


def train(recipe, out: Path, *flags) -> dict:
    assert main(["train", "--recipe", str(recipe), *QUICK, "--output_dir", str(out), *flags]) == 0
    return json.loads((out / "run_info.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("recipe", TINY, ids=lambda p: p.stem)
def test_tiny_variant_trains(recipe, tmp_path):
    info = train(recipe, tmp_path / "run")
    assert info["global_step"] == 2
    raw = load_recipe(recipe)
    names = [{"dapo_overlong": "soft_overlong_punishment_reward"}.get(n, n) for n in raw.get("reward_funcs", [])]
    metrics = json.loads((tmp_path / "run" / "train_metrics.json").read_text())
    for name in names:  # every reward was computed and logged
        assert f"rewards/{name}/mean" in metrics, name
    if raw.get("reward_weights") == [0.0, 1.0]:  # the trained reward is the method's alone
        assert metrics["reward"] == pytest.approx(metrics[f"rewards/{names[1]}/mean"])
    reward_names = raw.get("reward_funcs", [])
    if "lapo_band" in reward_names:
        targets = json.loads((tmp_path / "run" / "lapo_targets.json").read_text())
        assert targets and all(key.endswith("\\boxed{}.") and value >= 0 for key, value in targets.items())


@pytest.mark.slow
def test_thinkprune_two_stages_end_to_end(tmp_path):
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    train(BASELINES / "tiny_cpu" / "thinkprune_stage1.yaml", stage1)
    info = train(BASELINES / "tiny_cpu" / "thinkprune_stage2.yaml", stage2, "--model_name_or_path", str(stage1))
    assert info["model"] == str(stage1) and info["global_step"] == 2
    resolved = (stage2 / "resolved_recipe.yaml").read_text()
    assert "max_completion_length: 24" in resolved and "reward_format: boxed" in resolved
    assert not (stage2 / "base_model").exists()  # started from stage 1's model, not a fresh built-in one
    from safetensors.torch import load_file

    # Two steps of an untrained model answer nothing right: every advantage is 0, so stage 2 ends where it started,
    # with stage 1's weights (a fresh built-in model would differ).
    first, second = load_file(stage1 / "model.safetensors"), load_file(stage2 / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_lapo_two_stages_end_to_end(tmp_path):
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    train(BASELINES / "tiny_cpu" / "lapo_stage1.yaml", stage1)
    targets = json.loads((stage1 / "lapo_targets.json").read_text())
    assert len(targets) == 4  # 2 steps x 2 prompts (8 rollouts, 4 per prompt)
    # A 2-step model answers nothing right, so every median is 0 ("no statistic"); give two prompts one.
    for key in list(targets)[:2]:
        targets[key] = 21.5
    (stage1 / "lapo_targets.json").write_text(json.dumps(targets))
    flags = [
        "--model_name_or_path",
        str(stage1),
        "--transform_params",
        json.dumps({"lapo_target": {"targets": str(stage1)}}),
    ]
    assert train(BASELINES / "tiny_cpu" / "lapo_stage2.yaml", stage2, *flags)["global_step"] == 2


@pytest.mark.slow
def test_lapo_stage1_with_a_group_split_across_two_processes(tmp_path):
    # One prompt x 8 rollouts per step, 4 on each process: every group is split, and without the gather the
    # reward raises ("4 rollouts do not form groups of num_generations=8").
    out = tmp_path / "run"
    flags = [*QUICK, "--num_generations", "8", "--per_device_train_batch_size", "4", "--generation_batch_size", "8"]
    flags += ["--num_processes", "2"]
    result = sas_trl(
        "train", "--recipe", str(BASELINES / "tiny_cpu" / "lapo_stage1.yaml"), *flags, "--output_dir", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "run_info.json").read_text())
    assert info["num_processes"] == 2 and info["global_step"] == 2
    assert len(json.loads((out / "lapo_targets.json").read_text())) == 2  # one prompt per step


def test_lapo_state_is_saved_with_each_checkpoint_and_reloaded_on_resume(tmp_path):
    from types import SimpleNamespace

    from sas_trl.rewards.lapo import LAPOBandReward
    from sas_trl.training.lapo import RewardStateCallback

    reward = LAPOBandReward(MathVerifyReward(workers=0), num_generations=4)
    reward.targets = {"A": 15.0, "B": 2.0}
    (tmp_path / "checkpoint-3").mkdir()
    callback = RewardStateCallback(reward, tmp_path)
    callback.on_save(None, SimpleNamespace(is_world_process_zero=True, global_step=3), None)
    assert json.loads((tmp_path / "checkpoint-3" / "lapo_targets.json").read_text()) == reward.targets
    reward.targets = {"B": 4.0, "C": 1.0}  # later steps, then the run is killed before its next save
    resumed = LAPOBandReward(MathVerifyReward(workers=0), num_generations=4)
    RewardStateCallback(resumed, tmp_path).on_train_begin(None, SimpleNamespace(global_step=3), None)
    assert resumed.targets == {"A": 15.0, "B": 2.0}  # the state of the checkpoint it resumes from
    fresh = LAPOBandReward(MathVerifyReward(workers=0), num_generations=4)
    RewardStateCallback(fresh, tmp_path).on_train_begin(None, SimpleNamespace(global_step=0), None)
    assert fresh.targets == {}  # a run from step 0 reads nothing


def test_lapo_targets_reach_the_checkpoint_before_the_trainer_writes_it(tmp_path):
    # A run killed between the trainer's checkpoint and the reward's state must not leave a checkpoint that
    # resumes without it: the state is written when the step ends, before the trainer's trainer_state.json.
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback

    from sas_trl.rewards.lapo import LAPOBandReward
    from sas_trl.training.lapo import RewardStateCallback

    reward = LAPOBandReward(MathVerifyReward(workers=0), num_generations=4)
    reward.targets = {"A": 15.0}
    args = TrainingArguments(output_dir=str(tmp_path), save_strategy="steps", save_steps=2, report_to=[])
    handler = CallbackHandler([DefaultFlowCallback, RewardStateCallback(reward, tmp_path)], None, None, None, None)
    state = TrainerState(max_steps=10, save_steps=2, is_world_process_zero=True)
    for step in (1, 2):
        state.global_step = step
        control = handler.on_step_end(args, state, TrainerControl())
    assert control.should_save and not (tmp_path / "checkpoint-1").exists()  # no save at step 1, nothing written
    assert json.loads((tmp_path / "checkpoint-2" / "lapo_targets.json").read_text()) == reward.targets
    assert not (tmp_path / "checkpoint-2" / "trainer_state.json").exists()  # ahead of the trainer's own files


@pytest.mark.slow
def test_lapo_stage1_killed_and_resumed_keeps_every_target(tmp_path):
    out = tmp_path / "run"
    recipe = str(BASELINES / "tiny_cpu" / "lapo_stage1.yaml")
    args = [*QUICK, "--max_steps", "40", "--save_steps", "1", "--output_dir", str(out)]
    done = out / "checkpoint-2" / "lapo_targets.json"
    kill_when(["train", "--recipe", recipe, *args], done, "the run ended before its 2nd step")
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    assert all((out / f"checkpoint-{step}" / "lapo_targets.json").is_file() for step in saved)
    last = saved[-1]
    before = json.loads((out / f"checkpoint-{last}" / "lapo_targets.json").read_text())
    assert len(before) == 2 * last  # 2 prompts per step (8 rollouts, 4 per prompt)

    result = sas_trl(
        "train", "--recipe", recipe, *args, "--max_steps", str(last + 2), "--resume_from_checkpoint", "last"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads((out / "lapo_targets.json").read_text())
    assert before.keys() <= after.keys() and len(after) == 2 * (last + 2)  # nothing seen before the kill is lost
