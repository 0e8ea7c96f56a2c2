"""The oracle selections (ground-truth step labels): their masks on hand-built cases, the rule's routing and
refusals, the label metrics, and short trainings with each oracle on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from cli_helpers import ROOT, trip_model_work
from test_trainer import COMPLETIONS, PROMPTS, handmade_inputs, make_args, make_trainer

from sas_trl import SASGRPOTrainer
from sas_trl.cli import main as cli_main
from sas_trl.core import SASRule, SASRuleError, select_zero_mask
from sas_trl.errors import RecipeError
from sas_trl.sas_metrics import BatchCounts, label_counts, metrics_of
from sas_trl.selection import (
    SELECTIONS,
    batch_labels,
    labels_of,
    oracle_rollout,
    oracle_step,
    pad_labels,
    reasoning_correct_rows,
    token_labels,
)
from sas_trl.step_labels import CORRECT as C
from sas_trl.step_labels import REDUNDANT as R
from sas_trl.step_labels import WRONG as W
from sas_trl.training.recipes import parse

T, F = True, False
# Four rollouts, 7 token positions; -1 outside steps (the answer part, padding).
STEP_IDS = torch.tensor(
    [
        [0, 0, 1, 1, 2, -1, -1],  # correct: correct, redundant, wrong steps, then the answer
        [0, 1, 1, 2, 2, 2, 2],  # failed, truncated, reasoning correct so far: mislabelled by the budget
        [0, 0, 1, 2, 2, -1, -1],  # failed, truncated, a wrong step
        [0, 1, 2, -1, -1, -1, -1],  # failed, not truncated, reasoning correct (a wrong answer after it)
    ]
)
LABELS = torch.tensor([[C, R, W], [C, C, R], [C, W, C], [C, C, C]])
IS_CORRECT = torch.tensor([T, F, F, F])
IS_TRUNCATED = torch.tensor([F, T, T, F])


def test_oracle_step_zeroes_correct_steps_of_failed_and_useless_steps_of_correct_rollouts():
    expected = torch.tensor(
        [
            [F, F, T, T, T, F, F],  # redundant + wrong steps of the correct rollout
            [T, T, T, F, F, F, F],  # ... failed rollouts: their correct steps only
            [T, T, F, T, T, F, F],
            [T, T, T, F, F, F, F],
        ]
    )
    assert torch.equal(oracle_step(STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED), expected)
    # the verdict decides which labels are zeroed, not truncation
    flipped = oracle_step(STEP_IDS, LABELS, ~IS_CORRECT, ~IS_TRUNCATED)
    assert torch.equal(
        flipped, torch.tensor([[T, T, F, F, F, F, F], [F, F, F, T, T, T, T], [F, F, T, F, F, F, F]] + [[F] * 7])
    )


def test_oracle_rollout_zeroes_exactly_the_mislabelled_rollouts_whole():
    expected = torch.zeros(4, 7, dtype=torch.bool)
    expected[1] = True
    assert torch.equal(oracle_rollout(STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED), expected)
    # the same rollout counted correct, or not truncated, is left alone
    assert not oracle_rollout(STEP_IDS, LABELS, torch.tensor([T, T, F, F]), IS_TRUNCATED).any()
    assert not oracle_rollout(STEP_IDS, LABELS, IS_CORRECT, torch.tensor([F, F, T, F])).any()


def test_token_labels_and_rows_read_padding_and_steps_past_the_labels_as_outside():
    step_ids = torch.tensor([[0, 1, 2, 3, -1], [0, 0, -1, -1, -1]])
    labels = torch.tensor([[C, R, W], [R, 0, 0]])
    assert torch.equal(token_labels(step_ids, labels), torch.tensor([[C, R, W, 0, 0], [R, R, 0, 0, 0]]))
    assert torch.equal(
        reasoning_correct_rows(torch.tensor([[C, R, 0], [C, W, 0], [0, 0, 0]])), torch.tensor([T, F, F])
    )
    assert torch.equal(pad_labels([(C, R), (), (W,)]), torch.tensor([[C, R], [0, 0], [W, 0]]))
    assert pad_labels([]).shape == (0, 1)


def test_labels_of_reads_chat_messages_and_refuses_other_prompts():
    text = "3 + 4 = 7\n\nLet me double-check: 3 + 4 = 7\n\n7 + 5 = 13\n\n</think>\\boxed{13}"
    assert labels_of([{"role": "user", "content": "Add 3, 4, 5."}], [{"role": "assistant", "content": text}]) == (
        C,
        R,
        W,
    )
    assert labels_of("What is 2 + 2?", text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 + 4 = 7\n\n\n\n7 + 5 = 12\n\n</think>\\boxed{12}", (C, 0, C)),  # a doubled delimiter: a step of its own
        ("\n\n3 + 4 = 7\n\n7 + 5", (0, C, C)),  # a leading one; a cut step that can still become correct
        ("3 + 4 = 7</think>\\boxed{7}\n\n", (C,)),
    ],
)
def test_labels_are_aligned_with_sas_steps(text, expected):
    from sas_trl.tiny import build_tokenizer

    tok = build_tokenizer()
    ids = torch.tensor([tok(text)["input_ids"]])
    step_ids = SASRule().segment(ids, torch.ones_like(ids), tok)
    assert labels_of("Add 3, 4, 5.", text) == expected
    assert int(step_ids.max()) + 1 == len(expected)


# --------------------------------------------------------------------------------------------------
# The rule: registered, routed, refused where it cannot apply
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["oracle_rollout", "oracle_step"])
def test_oracles_are_registered_selections_that_read_labels(name):
    assert SELECTIONS[name].needs_labels and not SELECTIONS["confidence"].needs_labels
    rule = SASRule(selection=name, ratio=0.0)
    assert rule.needs_labels and rule.enabled  # an oracle reads no ratio
    assert not SASRule(selection=name, strategy="none").enabled
    with pytest.raises(SASRuleError, match="sas_granularity='token' is not valid with sas_selection"):
        SASRule(selection=name, granularity="token")
    logps = torch.zeros(STEP_IDS.shape)
    with pytest.raises(ValueError, match=f"sas_selection='{name}' needs step labels"):
        select_zero_mask(STEP_IDS, logps, IS_CORRECT, selection=name, is_truncated=IS_TRUNCATED)


def test_the_rule_routes_to_the_oracle_within_its_strategy_and_min_steps():
    logps = torch.randn(STEP_IDS.shape)
    full = oracle_step(STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED)
    mask = select_zero_mask(
        STEP_IDS, logps, IS_CORRECT, selection="oracle_step", is_truncated=IS_TRUNCATED, labels=LABELS
    )
    assert torch.equal(mask, full)  # confidence plays no part
    only_correct = select_zero_mask(
        STEP_IDS, logps, IS_CORRECT, selection="oracle_step", strategy="correct_only", is_truncated=IS_TRUNCATED,
        labels=LABELS,
    )  # fmt: skip
    assert torch.equal(only_correct, full & IS_CORRECT.unsqueeze(1))
    four_steps = select_zero_mask(
        STEP_IDS, logps, IS_CORRECT, selection="oracle_step", min_steps=4, is_truncated=IS_TRUNCATED, labels=LABELS
    )
    assert not four_steps.any()  # every rollout has 3 steps


def test_training_refuses_an_oracle_off_the_built_in_tasks_before_model_work(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    data = tmp_path / "problems.jsonl"
    data.write_text('{"problem": "What is 2 + 2?", "answer": "4"}\n')
    recipe = ["--recipe", "recipes/tiny_cpu.yaml", "--sas_selection", "oracle_step"]
    _, args, _, _ = parse(recipe)  # on the built-in task: accepted
    assert args.sas_rule.needs_labels
    with pytest.raises(
        RecipeError, match=r"sas_selection='oracle_step' needs ground-truth step labels.*dataset_name="
    ):
        parse([*recipe, "--dataset_name", str(data)])
    trip_model_work(monkeypatch)
    code = cli_main(["train", *recipe, "--dataset_name", str(data), "--output_dir", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["inspect", "--benchmarks", "math500"], "--benchmarks math500"),
        (["inspect", "--prompt", "What is 2 + 2?"], "--prompt 'What is 2 + 2?'"),
        (["analyze-truncation", "--benchmarks", "addition,aime24"], "--benchmarks aime24"),
    ],
)
def test_inspect_and_analyze_truncation_refuse_an_oracle_off_the_built_in_tasks(tmp_path, capsys, command, named):
    argv = [*command, "--model", str(tmp_path / "no-model"), "--sas_selection", "oracle_rollout"]
    assert cli_main([*argv, "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sas_selection='oracle_rollout' needs ground-truth step labels" in err and named in err
    assert not (tmp_path / "out").exists()


def test_analyze_truncation_refuses_an_oracle_on_the_built_in_task_too(tmp_path, capsys):
    argv = ["analyze-truncation", "--model", str(tmp_path / "no-model"), "--benchmarks", "addition"]
    assert cli_main([*argv, "--sas_selection", "oracle_step", "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sas_selection='oracle_step' selects by those labels" in err and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# The label metrics
# --------------------------------------------------------------------------------------------------


def test_label_counts_on_a_hand_built_batch():
    valid = STEP_IDS >= 0
    valid[0, 5] = True  # the answer token of row 0
    zero = torch.zeros_like(valid)
    zero[0, 0:2] = True  # a correct rollout's correct step zeroed
    zero[0, 4] = True  # ... and its wrong step
    zero[1, 0] = True  # a failed rollout's correct step shielded
    zero[2, 2] = True  # ... and a wrong one
    advantages = torch.tensor([1.0, -1.0, -1.0, -1.0]).unsqueeze(1).expand(4, 7).masked_fill(zero, 0.0)
    counts = label_counts(zero, valid, STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED, advantages)
    assert {k: int(v) for k, v in counts.items()} == {
        "labelled": 4,
        "mislabelled": 1,
        "mislabelled_punished": 1,  # shielding one step of seven still leaves a negative mean
        "failed_zeroed_steps": 2,
        "failed_zeroed_steps_correct": 1,
        "correct_zeroed_steps": 2,
        "correct_zeroed_steps_useless": 1,
    }
    oracle = oracle_rollout(STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED) & valid
    shielded = torch.tensor([1.0, -1.0, -1.0, -1.0]).masked_fill(oracle.all(dim=1), 0.0)  # (B,) advantages too
    assert (
        int(label_counts(oracle, valid, STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED, shielded)["mislabelled_punished"])
        == 0
    )


def test_label_metrics_are_logged_only_with_labels():
    valid = STEP_IDS >= 0
    zero = oracle_step(STEP_IDS, LABELS, IS_CORRECT, IS_TRUNCATED)
    clipped = (torch.zeros_like(valid),) * 3
    advantages = torch.tensor([1.0, -1.0, -1.0, -1.0])
    with_labels = BatchCounts.of(zero, valid, STEP_IDS, IS_CORRECT, IS_TRUNCATED, clipped, LABELS, advantages)
    metrics = metrics_of(BatchCounts.from_row(with_labels.stack().tolist()), "dapo")
    assert metrics["sas/mislabelled_frac"] == 0.25
    assert metrics["sas/mislabelled_punished_frac"] == 1.0  # (B,) advantages: oracle_step leaves its last step
    assert metrics["sas/shielded_steps_correct_frac"] == 1.0  # the step oracle shields correct steps only
    assert metrics["sas/zeroed_steps_redundant_or_wrong_frac"] == 1.0
    without = BatchCounts.of(zero, valid, STEP_IDS, IS_CORRECT, IS_TRUNCATED, clipped)
    assert not any(name.startswith("sas/mislabelled") for name in metrics_of(without, "dapo"))
    assert "sas/zeroed_frac" in metrics_of(without, "dapo")


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_steps"),
    # COMPLETIONS' labels: (C, C, R), (W, W), (C, C), (C, C, C, R partial) with verdicts correct, failed, correct,
    # failed and truncated.
    [
        ("oracle_step", {0: [2], 1: [], 2: [], 3: [0, 1, 2]}),
        ("oracle_rollout", {0: [], 1: [], 2: [], 3: [0, 1, 2, 3]}),
    ],
)
def test_the_trainer_zeroes_what_the_oracle_selects(tmp_path, tiny_model_dir, name, expected_steps):
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_selection=name))
    labels = batch_labels(PROMPTS, COMPLETIONS)
    assert labels.tolist() == [[C, C, R, 0], [W, W, 0, 0], [C, C, 0, 0], [C, C, C, R]]
    inputs = handmade_inputs(trainer, sas_labels=labels)
    rule = trainer._sas_rule
    step_ids = rule.segment(inputs["completion_ids"], inputs["completion_mask"], trainer._sas_tokenizer)
    trainer._apply_sas(inputs, torch.zeros(step_ids.shape))
    zeroed = inputs["advantages"] == 0
    valid = inputs["completion_mask"].bool()
    for row, steps in expected_steps.items():
        chosen = torch.isin(step_ids[row], torch.tensor(steps, dtype=torch.long))
        if name == "oracle_rollout" and steps:
            chosen = valid[row]  # every token of the rollout
        assert torch.equal(zeroed[row] & valid[row], chosen & valid[row]), row


def test_a_prompt_that_is_not_a_built_in_problem_is_named():
    with pytest.raises(ValueError, match="step labels need the built-in task's problems.*'What is 2 \\+ 2\\?'"):
        batch_labels(["Add 1, 2.", "What is 2 + 2?"], ["1 + 2 = 3", "4"])


LABEL_METRICS = ("sas/mislabelled_frac", "sas/shielded_steps_correct_frac", "sas/zeroed_steps_redundant_or_wrong_frac")


@pytest.mark.parametrize(
    "setting",
    [
        {"sas_selection": "oracle_rollout"},
        {"sas_selection": "oracle_step"},
        {"sas_ratio": 0.5},
        # labels travel with their rollouts through TRL's shuffle, split and reuse
        {
            "sas_selection": "oracle_step",
            "num_iterations": 2,
            "gradient_accumulation_steps": 2,
            "steps_per_generation": 4,
        },
    ],
    ids=["oracle_rollout", "oracle_step", "sas-with-labels", "oracle-iterations-accumulation"],
)
def test_short_training_logs_label_metrics_and_entropy(tmp_path, tiny_model_dir, setting):
    args = make_args(tmp_path, max_steps=2, max_completion_length=12, **setting)
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, args)
    trainer._sas_labels = True  # what `sas-trl train` sets on the built-in tasks (`step_labels=True`)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert math.isfinite(entry["loss"]) and math.isfinite(entry["entropy"])
        assert 0.0 <= entry["sas/mislabelled_frac"] <= 1.0
    if setting.get("sas_selection") == "oracle_step":
        assert all(entry.get("sas/shielded_steps_correct_frac", 1.0) == 1.0 for entry in logs)
        assert all(entry.get("sas/zeroed_steps_redundant_or_wrong_frac", 1.0) == 1.0 for entry in logs)
    if setting.get("sas_selection") == "oracle_rollout":
        assert all(entry.get("sas/mislabelled_punished_frac", 0.0) == 0.0 for entry in logs)


def test_without_labels_nothing_extra_runs(tmp_path, tiny_model_dir, monkeypatch):
    import sas_trl.trainer as trainer_module

    def tripwire(*args, **kwargs):
        raise AssertionError("labelled steps without being asked")

    monkeypatch.setattr(trainer_module, "batch_labels", tripwire)
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, max_steps=1, sas_ratio=0.5))
    trainer.train()
    assert not any(name in trainer.state.log_history[0] for name in LABEL_METRICS)
    assert "sas/zeroed_frac" in trainer.state.log_history[0]


def test_inspect_shows_an_oracle_on_built_in_problems(tmp_path, tiny_model_dir):
    import json

    out = tmp_path / "out"
    code = cli_main(
        ["inspect", "--model", str(tiny_model_dir), "--prompt", "Add 1, 2.", "--n", "2", "--max_tokens", "12",
         "--sas_selection", "oracle_step", "--output_dir", str(out), "--no_progress"]
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "inspect.json").read_text())
    assert results["settings"]["sas_selection"] == "oracle_step" and results["rollouts"] == 2


def test_inspect_rollouts_mask_the_oracles_choice_under_each_verdict():
    from sas_trl.evaluation.inspection import Rollout, inspect_rollouts
    from sas_trl.tiny import build_tokenizer

    tok = build_tokenizer()
    text = "1 + 2 = 3\n\nLet me double-check: 1 + 2 = 3\n\n</think>\\boxed{3}"
    ids = tok(text)["input_ids"]
    view = inspect_rollouts([Rollout("Add 1, 2.", (5,), ids, True, False)], [torch.zeros(len(ids))], tok,
                            SASRule(selection="oracle_step"))  # fmt: skip
    steps = view.step_ids[0]
    assert torch.equal(view.zero_if_correct[0], steps == 1)  # the redundant re-check
    assert torch.equal(view.zero_if_failed[0], steps == 0)  # the correct step


def test_inspects_counting_note_names_the_oracle():
    from sas_trl.evaluation.inspection_report import counting_note

    note = counting_note(SASRule(selection="oracle_rollout"), torch.tensor([0, 0, 1]), False, True)
    assert note == "Oracle 'oracle_rollout': zeroes by the ground-truth step labels, not by a count."


@pytest.mark.slow
@pytest.mark.parametrize("selection", ["oracle_rollout", "oracle_step"])
def test_sas_trl_train_with_an_oracle_on_the_built_in_task(tmp_path, monkeypatch, selection):
    import json

    from cli_helpers import QUICK

    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--sas_selection", selection, "--logging_steps", "1"]
    assert cli_main([*argv, "--output_dir", str(out)]) == 0
    logs = [e for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]
    assert len(logs) == 2
    for entry in logs:  # labelled because the data is built-in (`sas-trl train` asks for step labels)
        assert 0.0 <= entry["sas/mislabelled_frac"] <= 1.0 and math.isfinite(entry["entropy"])


def test_the_model_card_calls_an_oracle_run_a_diagnostic(tmp_path):
    from test_training_hub import card_args

    from sas_trl.training.hub import model_card

    args = card_args(tmp_path, sas_selection="oracle_rollout", run_name="oracle")
    card = model_card(None, args, "builtin:tiny", {"sas_selection": "oracle_rollout"}, {}, None)
    assert "the diagnostic `oracle_rollout` selection" in card and "Step-level Advantage Selection**" not in card


def test_labels_travel_with_their_rollouts_through_shuffle_split_and_reuse(tmp_path, tiny_model_dir):
    checked = []

    class Spy(SASGRPOTrainer):
        def _apply_sas(self, inputs, token_logps, policy_logps=None):
            tok = self.processing_class
            prompts = tok.batch_decode(inputs["prompt_ids"], skip_special_tokens=True)
            ids = inputs["completion_ids"].masked_fill(inputs["completion_mask"] == 0, tok.pad_token_id)
            expected = batch_labels(prompts, tok.batch_decode(ids, skip_special_tokens=True))
            got = inputs["sas_labels"]
            width = max(expected.size(1), got.size(1))
            pad = torch.nn.functional.pad
            assert torch.equal(pad(got, (0, width - got.size(1))), pad(expected, (0, width - expected.size(1))))
            checked.append(len(prompts))
            return super()._apply_sas(inputs, token_logps, policy_logps)

    settings = {"num_iterations": 2, "gradient_accumulation_steps": 2, "steps_per_generation": 4}
    args = make_args(tmp_path, max_steps=4, max_completion_length=16, sas_selection="oracle_step", **settings)
    make_trainer(Spy, tiny_model_dir, args).train()
    assert checked == [4] * 8  # one generation of 16 rollouts, split in 4 micro-batches, each used twice
