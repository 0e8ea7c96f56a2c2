"""Per-rollout facts fixed at generation time: truncation, correctness (also from an environment's reward),
random-selection keys that survive reuse and resumption, and the degenerate one-step case."""

from __future__ import annotations

import itertools
import os

import pytest
import torch
from datasets import Dataset
from test_trainer import PROMPTS, length_parity_reward, make_args, make_trainer
from transformers import AutoTokenizer

from sas_trl import SASGRPOTrainer

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental in TRL 1.16

# --------------------------------------------------------------------------------------------------
# Truncated = last token neither EOS nor pad
# --------------------------------------------------------------------------------------------------


def test_truncation_flags_treat_a_final_pad_as_finished(tmp_path, tiny_model_dir):
    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path))
    tok = trainer.processing_class
    eos, pad = tok.eos_token_id, tok.pad_token_id
    assert eos != pad
    word = tok.convert_tokens_to_ids("a")
    completion_ids = [[word, word, eos], [word, word, pad], [word, word, word], []]
    prompts = PROMPTS[:4]
    trainer._calculate_rewards([{"prompt": p} for p in prompts], prompts, ["aa", "aa", "aaa", ""], completion_ids)
    assert trainer._sas_rollout_flags["sas_is_truncated"].tolist() == [False, False, True, False]


# --------------------------------------------------------------------------------------------------
# The random-selection ablation: one draw per rollout, reused and resumable
# --------------------------------------------------------------------------------------------------


class MaskRecorder(SASGRPOTrainer):
    """Records, per micro-batch, the rollouts' ids and the mask SAS applied, and the keys drawn per generation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.uses, self.draws = [], []

    def _apply_sas(self, inputs, token_logps, policy_logps=None):
        before = inputs["advantages"]
        super()._apply_sas(inputs, token_logps, policy_logps)
        zero = (inputs["advantages"] == 0) & (before.unsqueeze(1) != 0)
        self.uses.append((self.state.global_step, inputs["completion_ids"].clone(), zero))

    def _random_keys(self, completion_ids):
        keys = super()._random_keys(completion_ids)
        self.draws.append((self.state.global_step, keys.clone()))
        return keys


RANDOM = {"sas_selection": "random", "sas_granularity": "token", "sas_ratio": 0.5}


def test_random_mask_is_the_same_on_every_reuse_of_a_buffered_batch(tmp_path, tiny_model_dir):
    args = make_args(tmp_path, max_steps=4, num_iterations=2, **RANDOM)
    trainer = make_trainer(MaskRecorder, tiny_model_dir, args)
    trainer.train()
    assert len(trainer.uses) == 4 and len(trainer.draws) == 2  # each rollout batch generated once, used twice
    for (_, ids_a, zero_a), (_, ids_b, zero_b) in (trainer.uses[0:2], trainer.uses[2:4]):
        assert torch.equal(ids_a, ids_b)
        assert zero_a.any() and torch.equal(zero_a, zero_b)
    assert not torch.equal(trainer.draws[0][1], trainer.draws[1][1])  # a new batch draws new keys


def test_resumed_run_draws_the_keys_of_an_uninterrupted_run(tmp_path, tiny_model_dir):
    settings = dict(max_steps=4, save_strategy="steps", save_steps=2, **RANDOM)
    full = make_trainer(MaskRecorder, tiny_model_dir, make_args(tmp_path / "full", **settings))
    full.train()
    resumed = make_trainer(MaskRecorder, tiny_model_dir, make_args(tmp_path / "resumed", **settings))
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "out" / "checkpoint-2"))

    assert [step for step, _ in full.draws] == [0, 1, 2, 3]
    assert [step for step, _ in resumed.draws] == [2, 3]
    for (_, want), (_, got) in zip(full.draws[2:], resumed.draws, strict=True):
        assert torch.equal(want, got)
    for (_, ids_want, zero_want), (_, ids_got, zero_got) in zip(full.uses[2:], resumed.uses, strict=True):
        assert torch.equal(ids_want, ids_got)  # TRL restores its RNG: the same rollouts
        assert torch.equal(zero_want, zero_got)


# --------------------------------------------------------------------------------------------------
# reward_funcs is optional: an environment can own the reward
# --------------------------------------------------------------------------------------------------

_INSTANCES = itertools.count()


class CoinEnvironment:
    """No tools; its reward alternates over instances, so each group holds correct and failed rollouts."""

    def __init__(self):
        self.index = next(_INSTANCES)

    def reset(self, **kwargs):
        return None

    def get_reward(self) -> float:
        return float(self.index % 2)


def tool_template_tokenizer(model_dir):
    """TRL requires a chat template that can render tool calls with `environment_factory`; Qwen3's can."""
    from trl.chat_template_utils import qwen3_chat_template

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = qwen3_chat_template
    return tok


class CorrectnessRecorder(SASGRPOTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checked = 0

    def _calculate_rewards(self, *args, **kwargs):
        rewards = super()._calculate_rewards(*args, **kwargs)
        column = rewards[:, self.args.sas_correct_reward_index]
        assert torch.equal(self._sas_rollout_flags["sas_is_correct"], column >= 1.0)
        assert self._sas_rollout_flags["sas_is_correct"].any() and not self._sas_rollout_flags["sas_is_correct"].all()
        self.checked += 1
        return rewards


@pytest.mark.parametrize(
    ("reward_funcs", "index", "columns"),
    [(None, 0, ["CoinEnvironment"]), ([length_parity_reward], 1, ["length_parity_reward", "CoinEnvironment"])],
    ids=["environment-only", "function-then-environment"],
)
def test_trains_with_an_environment_reward(tmp_path, tiny_model_dir, reward_funcs, index, columns):
    args = make_args(tmp_path, max_steps=2, sas_ratio=0.5, sas_correct_reward_index=index)
    trainer = CorrectnessRecorder(
        model=str(tiny_model_dir),
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
        processing_class=tool_template_tokenizer(tiny_model_dir),
        environment_factory=CoinEnvironment,
    )
    assert trainer.reward_func_names == columns
    trainer.train()
    assert trainer.checked == 2
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all("sas/zeroed_frac_correct" in entry for entry in logs)


def test_correct_reward_index_is_checked_against_trls_final_columns(tmp_path, tiny_model_dir):
    dataset = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    with pytest.raises(
        ValueError, match=r"sas_correct_reward_index=2 .*\['length_parity_reward', 'CoinEnvironment'\]"
    ):
        SASGRPOTrainer(
            model=str(tiny_model_dir),
            reward_funcs=[length_parity_reward],
            args=make_args(tmp_path, sas_correct_reward_index=2),
            train_dataset=dataset,
            processing_class=tool_template_tokenizer(tiny_model_dir),
            environment_factory=CoinEnvironment,
        )
    with pytest.raises(ValueError, match="No reward source provided"):  # TRL's own error, unchanged
        SASGRPOTrainer(model=str(tiny_model_dir), args=make_args(tmp_path), train_dataset=dataset)


# --------------------------------------------------------------------------------------------------
# The degenerate case: correct one-step rollouts zeroed whole
# --------------------------------------------------------------------------------------------------


def length_reward(completions, **kwargs):
    """Not a 0/1 score (like TRL's own test rewards): every rollout counts as correct."""
    return [float(len(c) + 1) for c in completions]


def one_step_trainer(tmp_path, model_dir, **overrides):
    # No token contains "@@" and there is no think-end: every rollout is one step, all of it reasoning.
    args = make_args(tmp_path, max_steps=2, sas_delimiter="@@", sas_think_end=None, learning_rate=1e-2, **overrides)
    dataset = Dataset.from_list([{"prompt": p} for p in PROMPTS])
    with pytest.warns(UserWarning, match="single step"):
        return SASGRPOTrainer(model=str(model_dir), reward_funcs=length_reward, args=args, train_dataset=dataset)


def test_warns_once_when_correct_one_step_rollouts_are_zeroed_whole(tmp_path, tiny_model_dir, recwarn):
    trainer = one_step_trainer(tmp_path, tiny_model_dir)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    warned = [str(w.message) for w in recwarn if "first batch" in str(w.message)]
    assert len(warned) == 1
    message = warned[0]
    assert "4 of 4 correct rollouts had every token zeroed" in message
    assert "(100% of correct rollouts' tokens)" in message and "1.00 steps per rollout" in message
    assert "'length_reward'" in message and "sas_min_steps=2" in message
    values = message.split("took the values [")[1].split("]")[0].split(", ")
    assert len(values) >= 2 and all(float(v) >= 1 for v in values)
    # What the warning is about: nothing was learned at all (every rollout correct, every token zeroed, beta 0).
    assert all(torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


def test_min_steps_leaves_one_step_rollouts_to_grpo(tmp_path, tiny_model_dir, recwarn):
    trainer = one_step_trainer(tmp_path, tiny_model_dir, sas_min_steps=2)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    # The reward still is no 0/1 score (every rollout "correct"), which is still said, but nothing is zeroed whole.
    warned = [str(w.message) for w in recwarn if "first batch" in str(w.message)]
    assert len(warned) == 1 and "0 of 4 correct rollouts had every token zeroed" in warned[0]
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all(entry["sas/zeroed_frac"] == 0 for entry in logs)
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


def test_no_warning_when_rollouts_have_steps(tmp_path, tiny_model_dir, recwarn):
    # The handmade micro-batch of tests/test_trainer.py: 2-4 steps per rollout, a 0/1 reward.
    from test_trainer import handmade_inputs, loss_and_grads

    trainer = make_trainer(SASGRPOTrainer, tiny_model_dir, make_args(tmp_path, sas_ratio=0.3))
    trainer._sas_reward_values = torch.tensor([0.0, 1.0])
    loss_and_grads(trainer, handmade_inputs(trainer))
    assert trainer._sas_degenerate_checked
    assert not [w for w in recwarn if "first batch" in str(w.message)]
