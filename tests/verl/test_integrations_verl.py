"""sas_trl.integrations.verl: the `sas_sync` plug-in, against verl's real `_compute_advantage`.

Runs only in the verl environment (`.venv-verl`, made by `.ci/run` from the `verl` extra); the main suite does not
collect this folder (`norecursedirs` in pyproject.toml). verl's TransferQueue client is replaced by an in-memory
stand-in (the `tq` module attribute verl's trainer reads), and trainers are made without Ray (`object.__new__`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import pytest
import torch
import verl
from tensordict import NonTensorStack, TensorDict
from verl.trainer.ppo.v1 import get_trainer_cls, trainer_base
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from sas_trl.constants import PROMPT_SUFFIX
from sas_trl.core import SASRule
from sas_trl.errors import UserError
from sas_trl.integrations import verl as plugin
from sas_trl.rollouts import truncated_flags

ROOT = Path(__file__).resolve().parents[2]
THINK_END_ID = 151649  # </think> in the DeepScaleR vocabulary: the tests build texts, never ids, from it


# --------------------------------------------------------------------------------------------------
# Stand-ins: verl's TransferQueue in memory, a composed verl config, a batch of real-vocabulary rollouts
# --------------------------------------------------------------------------------------------------


class MemoryTransferQueue:
    """The two TransferQueue calls verl's trainer makes, over a dict (partition, key) -> {field: row}.

    Like verl's storage, a field comes back as a jagged nested tensor, scalars stacked, strings as a NonTensorStack,
    and a requested field that no sample has is left out. `dense` names fields returned as one (B, T) tensor when
    every row has the same shape (the dense case).
    """

    def __init__(self, dense: tuple[str, ...] = ()):
        self.rows: dict[tuple[str, str], dict] = {}
        self.tags: dict[tuple[str, str], dict] = {}  # kept per sample, returned with every put, as verl's storage
        self.dense = set(dense)

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        from transfer_queue import KVBatchMeta

        for key, tag in zip(keys, tags or [None] * len(keys), strict=True):
            self.tags[(partition_id, key)] = tag or self.tags.get((partition_id, key), {})
        for name in fields.keys():  # noqa: SIM118 - a TensorDict iterates over its batch, not its keys
            value = fields[name]
            if isinstance(value, torch.Tensor):
                rows = list(value.unbind(0))
            else:  # a NonTensorStack, or the plain list-like tensordict returns for a stack of strings
                rows = list(value.tolist() if hasattr(value, "tolist") else value)
            for key, row in zip(keys, rows, strict=True):
                self.rows.setdefault((partition_id, key), {})[name] = row
        stored = [dict(self.tags[(partition_id, key)]) for key in keys]
        return KVBatchMeta(keys=list(keys), tags=stored, partition_id=partition_id)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        samples = [self.rows[(partition_id, key)] for key in keys]
        out = {}
        for name in select_fields or list(samples[0]):
            if not all(name in sample for sample in samples):
                continue
            values = [sample[name] for sample in samples]
            if not isinstance(values[0], torch.Tensor):
                out[name] = NonTensorStack(*values)
            elif values[0].dim() == 0 or (name in self.dense and len({v.shape for v in values}) == 1):
                out[name] = torch.stack(values)
            else:
                out[name] = torch.nested.as_nested_tensor(values, layout=torch.jagged)
        return TensorDict(out, batch_size=len(keys))


def compose(*overrides: str):
    """verl's own `ppo_trainer` config, composed offline as `main_ppo` would, with hydra overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose("ppo_trainer", overrides=list(overrides))


@pytest.fixture(scope="module")
def tokenizer():
    from sas_trl.vocabularies import qwen2_tokenizer

    return qwen2_tokenizer()


def rollout_text(generator: torch.Generator, kind: str) -> str:
    steps = int(torch.randint(1, 6, (), generator=generator))
    text = "".join(f"Step {k}: {k} + {k + 1} = {2 * k + 1}.\n\n" for k in range(steps))
    if kind == "no_think_end":  # stopped with EOS but never closed its reasoning
        return text + "So the answer is 7."
    return text + "</think>\nThe sum is \\boxed{7}."


def make_batch(tokenizer, groups: int, n: int, *, seed: int, uniform: int | None = None, scores=None):
    """Rows of a verl batch: per rollout its uid, key, response ids (unpadded), mask, old log-probs and rm_scores.

    Kinds cycle through finished (EOS), truncated (cut, no EOS) and finished without `</think>`. `uniform` cuts or
    pads every response to that many tokens (verl's case where every response has the same length).
    """
    generator = torch.Generator().manual_seed(seed)
    eos = tokenizer.eos_token_id
    kinds = ("finished", "truncated", "no_think_end")
    rows = []
    for g in range(groups):
        for j in range(n):
            kind = kinds[(g + j) % 3]
            ids = tokenizer(rollout_text(generator, kind), add_special_tokens=False)["input_ids"]
            ids = ids[: max(2, len(ids) - 4)] if kind == "truncated" else [*ids, eos]
            if uniform is not None:
                filler = tokenizer(" more", add_special_tokens=False)["input_ids"] * uniform
                ids = (ids[:-1] + filler)[: uniform - 1] + ids[-1:] if len(ids) < uniform else ids[:uniform]
            length = len(ids)
            if scores is None:
                score = float(torch.randint(0, 2, (), generator=generator)) if kind != "truncated" else 0.0
            else:
                score = scores[g * n + j]
            rm = torch.zeros(length)
            rm[-1] = score
            rows.append(
                {
                    "uid": f"p{g}",
                    "key": f"p{g}_{j}_0",  # verl's "{uid}_{session}_{index}"
                    "responses": torch.tensor(ids, dtype=torch.long),
                    "response_mask": torch.ones(length, dtype=torch.long),
                    "old_log_probs": -torch.rand(length, generator=generator) * 3,
                    "rm_scores": rm,
                }
            )
    return rows


def store(rows, tq: MemoryTransferQueue):
    keys = [row["key"] for row in rows]
    for row in rows:
        tq.rows[("train", row["key"])] = {name: value for name, value in row.items() if name != "key"}
        tq.tags[("train", row["key"])] = {}
    from transfer_queue import KVBatchMeta

    return KVBatchMeta(keys=keys, tags=[{} for _ in keys], partition_id="train")


def trainer_of(cls, config, tokenizer):
    """A trainer without Ray or workers: what `_compute_advantage` reads, set by hand."""
    trainer = object.__new__(cls)
    trainer.config = config
    trainer.tokenizer = tokenizer
    trainer.global_steps = 3
    if cls is plugin.SASPPOTrainerSync:
        trainer._init_sas(config)
    return trainer


def run_advantage(cls, config, tokenizer, rows, monkeypatch, dense=()):
    """Advantages (B, T) padded with 0, as `cls._compute_advantage` leaves them in the TransferQueue, and metrics."""
    tq = MemoryTransferQueue(dense)
    monkeypatch.setattr(trainer_base, "tq", tq)
    batch = store(rows, tq)
    metrics: dict = {}
    trainer_of(cls, config, tokenizer)._compute_advantage(batch, metrics)
    written = tq.kv_batch_get(batch.keys, "train", ["advantages"])["advantages"]
    return plugin.padded(written, 0.0), metrics, written


def reference_zero_mask(rule: SASRule, rows, tokenizer, threshold: float = 1.0) -> torch.Tensor:
    """The TRL trainer's masks for the same rollouts: SASRule.segment + zero_mask, TRL's list truncation rule."""
    ids = torch.nn.utils.rnn.pad_sequence(
        [r["responses"] for r in rows], batch_first=True, padding_value=tokenizer.pad_token_id
    )
    mask = torch.nn.utils.rnn.pad_sequence([r["response_mask"] for r in rows], batch_first=True)
    logps = torch.nn.utils.rnn.pad_sequence([r["old_log_probs"] for r in rows], batch_first=True)
    is_correct = torch.tensor([float(r["rm_scores"].sum()) >= threshold for r in rows])
    is_truncated = truncated_flags(
        [r["responses"].tolist() for r in rows], tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    step_ids = rule.segment(ids, mask, tokenizer)
    return rule.zero_mask(step_ids, logps, is_correct, is_truncated=is_truncated)


SAS_CONFIG = ("algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=4", "trainer.v1.trainer_mode=sas_sync")


# --------------------------------------------------------------------------------------------------
# Discovery and the self-check
# --------------------------------------------------------------------------------------------------


def test_import_verl_registers_sas_sync_through_the_entry_point():
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group="verl.plugins") if p.name == "sas_trl"]
    assert point.value == "sas_trl.integrations.verl"
    assert get_trainer_cls("sas_sync") is plugin.SASPPOTrainerSync
    assert issubclass(plugin.SASPPOTrainerSync, PPOTrainerSync)
    assert plugin.verl_problem() is None


def test_import_verl_alone_loads_the_plug_in_in_a_fresh_process():
    import subprocess

    code = "import verl; from verl.trainer.ppo.v1 import get_trainer_cls; print(get_trainer_cls('sas_sync').__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "SASPPOTrainerSync"


def test_a_wrong_verl_version_is_reported_at_load_and_when_selected(monkeypatch, caplog):
    monkeypatch.setattr(verl, "__version__", "0.10.0")
    monkeypatch.delitem(trainer_base.TRAINER_REGISTRY, "sas_sync")
    monkeypatch.delitem(sys.modules, "sas_trl.integrations.verl")
    with caplog.at_level(logging.WARNING), pytest.raises(ImportError, match=r"verl>=0.9,<0.10.*found verl 0.10.0"):
        importlib.import_module("sas_trl.integrations.verl")
    assert "not usable" in caplog.text and "0.10.0" in caplog.text  # visible at WARNING, unlike verl's DEBUG log
    with pytest.raises(UserError, match=r"trainer_mode=sas_sync cannot run: .*found verl 0.10.0"):
        get_trainer_cls("sas_sync")(config=compose(*SAS_CONFIG))


def test_missing_fields_fail_naming_them(tokenizer, monkeypatch):
    rows = make_batch(tokenizer, 2, 4, seed=0)
    for row in rows:
        del row["old_log_probs"]
    config = compose(*SAS_CONFIG)
    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", lambda self, batch, metrics: batch)
    with pytest.raises(RuntimeError, match="no old_log_probs"):
        run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)


def test_sas_sync_takes_every_branch_verl_takes_for_sync():
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    config = compose(*SAS_CONFIG, "+trainer.v1.sync.parameter_sync_step=1")
    trainer = trainer_of(plugin.SASPPOTrainerSync, config, None)
    trainer.trainer_mode = config.trainer.v1.trainer_mode  # what PPOTrainer.__init__ does
    assert trainer.trainer_mode == "sync"
    trainer._add_prompts_to_generate = lambda *args, **kwargs: None
    buffer = trainer._build_replay_buffer()  # verl's own: ReplayBufferAsync for any mode but "sync"
    assert type(buffer) is ReplayBuffer and buffer.trainer_mode == "sync"


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def test_settings_come_from_the_trainer_section_with_sasrule_names():
    config = compose(
        *SAS_CONFIG,
        "+trainer.v1.sas_sync.ratio=0.5",
        "+trainer.v1.sas_sync.strategy=correct_only",
        "+trainer.v1.sas_sync.count_mode=release",
        "+trainer.v1.sas_sync.think_end=null",
        "+trainer.v1.sas_sync.min_steps=2",
        "+trainer.v1.sas_sync.correct_threshold=0.5",
    )
    trainer = trainer_of(plugin.SASPPOTrainerSync, config, None)
    assert trainer.sas_rule == SASRule(
        ratio=0.5, strategy="correct_only", count_mode="release", think_end=None, min_steps=2
    )
    assert trainer.sas_correct_threshold == 0.5
    assert plugin.setting_names() == (*(f.name for f in SASRule.fields()), "correct_threshold")
    default = trainer_of(plugin.SASPPOTrainerSync, compose(*SAS_CONFIG), None)
    assert default.sas_rule == SASRule() and default.sas_correct_threshold == 1.0


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+trainer.v1.sas_sync.ratio=1.5", "sas_ratio=1.5"),
        ("+trainer.v1.sas_sync.strategy=all", "sas_strategy='all'"),
        ("+trainer.v1.sas_sync.min_steps=0", "sas_min_steps=0"),
        ("+trainer.v1.sas_sync.correct_threshold=nan", "sas_correct_threshold=nan"),
        ("+trainer.v1.sas_sync.correct_threshold=abc", "sas_correct_threshold='abc'"),
        ("+trainer.v1.sas_sync.think_end=''", "sas_think_end=''"),
        ("+trainer.v1.sas_sync.ratoi=0.3", "trainer.v1.sas_sync.ratoi"),
    ],
)
def test_selecting_the_trainer_with_bad_settings_fails_naming_the_setting(override, named):
    config = compose(*SAS_CONFIG, override)
    # The real constructor, as verl's TaskRunner calls it: it fails before PPOTrainer.__init__ touches anything.
    with pytest.raises(UserError) as caught:
        get_trainer_cls(config.trainer.v1.trainer_mode)(config=config)
    assert str(caught.value).startswith("trainer.v1.sas_sync") and named in str(caught.value)


def test_the_oracles_are_refused_by_name():
    with pytest.raises(UserError, match="sas_selection='oracle_step' needs ground-truth step labels"):
        plugin.sas_settings({"selection": "oracle_step"})


def test_messages_are_sasrules_own():
    with pytest.raises(UserError) as caught:
        plugin.sas_settings({"ratio": 1.5})
    with pytest.raises(ValueError) as direct:
        SASRule(ratio=1.5)
    assert str(direct.value) in str(caught.value)


# --------------------------------------------------------------------------------------------------
# The advantages: verl's real base, then SAS, equal to the TRL path's masks bit for bit
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count_mode", ["paper", "release"])
@pytest.mark.parametrize("failed_scope", ["all", "truncated"])
def test_advantages_equal_the_trl_path_on_ragged_rollouts(tokenizer, monkeypatch, count_mode, failed_scope):
    rows = make_batch(tokenizer, groups=3, n=4, seed=1)
    assert len({len(r["responses"]) for r in rows}) > 1  # ragged
    settings = (f"+trainer.v1.sas_sync.count_mode={count_mode}", f"+trainer.v1.sas_sync.failed_scope={failed_scope}")
    config = compose(*SAS_CONFIG, *settings)
    base, _, _ = run_advantage(PPOTrainerSync, config, tokenizer, rows, monkeypatch)
    sas, metrics, written = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)

    zero = reference_zero_mask(SASRule(count_mode=count_mode, failed_scope=failed_scope), rows, tokenizer)
    assert written.is_nested and written.offsets().diff().tolist() == [len(r["responses"]) for r in rows]
    assert torch.equal(sas, base.masked_fill(zero, 0.0))
    is_correct = torch.tensor([float(r["rm_scores"].sum()) >= 1.0 for r in rows])
    assert zero[is_correct].any()  # the comparison means something
    if count_mode == "paper":
        assert zero[~is_correct].any()
    else:  # the release's counting slip: every reasoning step of a correct rollout, nothing of a failed one
        assert not zero[~is_correct].any()
    assert (base[zero] != 0).any()  # and zeroing changed advantages that were not 0 already
    assert set(metrics) == {
        "sas/zeroed_frac",
        "sas/zeroed_frac_correct",
        "sas/zeroed_frac_failed",
        "sas/steps_per_rollout",
        "sas/truncated_frac",
        "sas/failed_truncated_frac",
    }
    valid = torch.nn.utils.rnn.pad_sequence([r["response_mask"] for r in rows], batch_first=True).bool()
    assert metrics["sas/zeroed_frac"] == pytest.approx(float(zero.sum() / valid.sum()))


def test_rollouts_without_think_end_are_segmented_to_their_end(tokenizer, monkeypatch):
    rows = [r for r in make_batch(tokenizer, groups=2, n=6, seed=2)]
    assert any(THINK_END_ID not in r["responses"].tolist() for r in rows)
    config = compose(*SAS_CONFIG, "actor_rollout_ref.rollout.n=6")
    base, _, _ = run_advantage(PPOTrainerSync, config, tokenizer, rows, monkeypatch)
    sas, _, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    assert torch.equal(sas, base.masked_fill(reference_zero_mask(SASRule(), rows, tokenizer), 0.0))


@pytest.mark.parametrize("dense", [(), ("responses", "old_log_probs", "rm_scores", "advantages")])
def test_every_response_of_the_same_length(tokenizer, monkeypatch, dense):
    rows = make_batch(tokenizer, groups=2, n=4, seed=3, uniform=24)
    assert {len(r["responses"]) for r in rows} == {24}
    config = compose(*SAS_CONFIG)
    base, _, _ = run_advantage(PPOTrainerSync, config, tokenizer, rows, monkeypatch, dense)
    sas, _, written = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch, dense)
    zero = reference_zero_mask(SASRule(), rows, tokenizer)
    assert zero.any()
    assert torch.equal(sas, base.masked_fill(zero, 0.0))
    assert written.is_nested == (not dense)  # written back in the form it was read


def test_a_batch_without_a_correct_rollout(tokenizer, monkeypatch):
    rows = make_batch(tokenizer, groups=2, n=4, seed=4, scores=[0.0, 0.5, 0.0, -1.0, 0.0, 0.0, 0.9, 0.0])
    config = compose(*SAS_CONFIG)
    sas, metrics, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    base, _, _ = run_advantage(PPOTrainerSync, config, tokenizer, rows, monkeypatch)
    zero = reference_zero_mask(SASRule(), rows, tokenizer)
    assert torch.equal(sas, base.masked_fill(zero, 0.0))
    assert "sas/zeroed_frac_correct" not in metrics and metrics["sas/zeroed_frac_failed"] > 0


def test_threshold_and_nan_scores(tokenizer):
    rows = make_batch(tokenizer, groups=1, n=4, seed=5)
    ids = torch.nn.utils.rnn.pad_sequence([r["responses"] for r in rows], batch_first=True, padding_value=0)
    mask = torch.nn.utils.rnn.pad_sequence([r["response_mask"] for r in rows], batch_first=True)
    logps = torch.nn.utils.rnn.pad_sequence([r["old_log_probs"] for r in rows], batch_first=True)
    ones = torch.ones_like(logps)
    rule = SASRule(strategy="correct_only")
    _, at_threshold = plugin.sas_advantages(ones, ids, mask, logps, torch.full((4,), 0.5), tokenizer, rule, 0.5)
    _, below = plugin.sas_advantages(ones, ids, mask, logps, torch.full((4,), 0.49), tokenizer, rule, 0.5)
    out, nan = plugin.sas_advantages(ones, ids, mask, logps, torch.full((4,), float("nan")), tokenizer, rule, 0.5)
    assert at_threshold["sas/zeroed_frac"] > 0 and below["sas/zeroed_frac"] == 0 and nan["sas/zeroed_frac"] == 0
    assert torch.equal(out, ones)


def test_sas_off_leaves_verls_advantages_and_still_logs(tokenizer, monkeypatch):
    rows = make_batch(tokenizer, groups=2, n=4, seed=6)
    config = compose(*SAS_CONFIG, "+trainer.v1.sas_sync.strategy=none")
    base, _, _ = run_advantage(PPOTrainerSync, config, tokenizer, rows, monkeypatch)
    sas, metrics, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    assert torch.equal(sas, base) and metrics["sas/zeroed_frac"] == 0.0
    assert metrics["sas/truncated_frac"] == pytest.approx(
        sum(len(r["responses"]) and r["responses"][-1] != tokenizer.eos_token_id for r in rows) / len(rows)
    )


def test_random_selection_is_a_function_of_seed_and_step(tokenizer, monkeypatch):
    rows = make_batch(tokenizer, groups=2, n=4, seed=7)
    config = compose(*SAS_CONFIG, "+trainer.v1.sas_sync.selection=random", "data.seed=11")
    first, _, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    again, _, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    base, _, _ = run_advantage(PPOTrainerSync, config, tokenizer, rows, monkeypatch)
    assert torch.equal(first, again) and not torch.equal(first, base)
    ids = torch.nn.utils.rnn.pad_sequence(
        [r["responses"] for r in rows], batch_first=True, padding_value=tokenizer.pad_token_id
    )
    mask = torch.nn.utils.rnn.pad_sequence([r["response_mask"] for r in rows], batch_first=True)
    logps = torch.nn.utils.rnn.pad_sequence([r["old_log_probs"] for r in rows], batch_first=True)
    is_correct = torch.tensor([float(r["rm_scores"].sum()) >= 1.0 for r in rows])
    rule = SASRule(selection="random")
    zero = rule.zero_mask(
        rule.segment(ids, mask, tokenizer),
        logps,
        is_correct,
        is_truncated=truncated_flags(
            [r["responses"].tolist() for r in rows], tokenizer.eos_token_id, tokenizer.pad_token_id
        ),
        generator=plugin.random_generator(11, 3),
    )
    assert torch.equal(first, base.masked_fill(zero, 0.0))


def test_verls_padding_rows_are_not_counted_as_rollouts(tokenizer, monkeypatch):
    """verl's own upsampling (`_balance_batch`) adds no-op rows tagged is_padding: SAS's metrics leave them out."""
    from verl.trainer.ppo import padding_utils

    rows = make_batch(tokenizer, groups=2, n=3, seed=8)
    config = compose(*SAS_CONFIG, "actor_rollout_ref.rollout.n=3")
    tq = MemoryTransferQueue()
    monkeypatch.setattr(trainer_base, "tq", tq)
    monkeypatch.setattr(padding_utils, "tq", tq)
    batch = padding_utils.upsample_batch_to_divisible_size(store(rows, tq), 8, tokenizer.eos_token_id)
    padding = [key for key, tag in zip(batch.keys, batch.tags, strict=True) if tag.get("is_padding")]
    assert len(batch) == 8 and len(padding) == 2
    for key in padding:  # the actor's log-prob pass gives a padding row one log-prob, as for its one token
        tq.rows[("train", key)]["old_log_probs"] = torch.zeros(1)
    metrics: dict = {}
    trainer_of(plugin.SASPPOTrainerSync, config, tokenizer)._compute_advantage(batch, metrics)
    _, expected, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    assert metrics == pytest.approx(expected)  # the six real rollouts' numbers, as without padding
    truncated = sum(r["responses"][-1] != tokenizer.eos_token_id for r in rows)
    assert metrics["sas/truncated_frac"] == pytest.approx(truncated / 6)


def test_every_stop_id_of_the_model_ends_a_rollout_untruncated(tokenizer, monkeypatch):
    """A model with several stop ids (generation_config.eos_token_id a list): a rollout ending with any of them is
    finished, as vLLM stopped it there; with the tokenizer's EOS alone it would count as truncated."""
    from transformers import GenerationConfig

    second_stop = tokenizer.convert_tokens_to_ids("<|EOT|>")  # a second stop id of this vocabulary
    assert second_stop != tokenizer.eos_token_id
    rows = make_batch(tokenizer, groups=2, n=4, seed=9)
    for row in rows[::2]:  # finished rows end with the second stop id instead
        if row["responses"][-1] == tokenizer.eos_token_id:
            row["responses"][-1] = second_stop
    ended_with_second_stop = sum(int(r["responses"][-1]) == second_stop for r in rows)
    assert ended_with_second_stop
    config = compose(*SAS_CONFIG)
    monkeypatch.setattr(PPOTrainerSync, "_init_tokenizer", lambda self: setattr(self, "tokenizer", tokenizer))
    monkeypatch.setattr(
        plugin.SASPPOTrainerSync,
        "_generation_config",
        lambda self: GenerationConfig(eos_token_id=[tokenizer.eos_token_id, second_stop]),
    )
    trainer = trainer_of(plugin.SASPPOTrainerSync, config, None)
    trainer._init_tokenizer()
    assert trainer.sas_stop_ids == tuple(sorted({tokenizer.eos_token_id, second_stop}))
    tq = MemoryTransferQueue()
    monkeypatch.setattr(trainer_base, "tq", tq)
    metrics: dict = {}
    trainer._compute_advantage(store(rows, tq), metrics)
    stop = (tokenizer.eos_token_id, second_stop)
    assert metrics["sas/truncated_frac"] == pytest.approx(sum(int(r["responses"][-1]) not in stop for r in rows) / 8)
    _, eos_only, _ = run_advantage(plugin.SASPPOTrainerSync, config, tokenizer, rows, monkeypatch)
    assert eos_only["sas/truncated_frac"] == pytest.approx(metrics["sas/truncated_frac"] + ended_with_second_stop / 8)
    assert plugin.stop_token_ids(tokenizer, GenerationConfig(eos_token_id=second_stop)) == tuple(sorted(stop))
    assert plugin.stop_token_ids(tokenizer, None) == (tokenizer.eos_token_id,)


# --------------------------------------------------------------------------------------------------
# Helpers, names, recipes
# --------------------------------------------------------------------------------------------------


def test_padded_and_like_round_trip_without_loops():
    rows = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0]), torch.tensor([5.0, 6.0])]
    nested = torch.nested.as_nested_tensor(rows, layout=torch.jagged)
    dense = plugin.padded(nested, -1.0)
    assert dense.tolist() == [[1, 2, 3], [4, -1, -1], [5, 6, -1]]
    back = plugin.like(nested, dense * 10)
    assert [t.tolist() for t in back.unbind()] == [[10, 20, 30], [40], [50, 60]]
    square = torch.arange(6.0).view(2, 3)
    assert plugin.padded(square) is square and plugin.like(square, square) is square


@pytest.mark.parametrize(("recipe", "mode"), [("deepscaler_4k_sas", "sas_sync"), ("deepscaler_4k_grpo", "sync")])
def test_recipes_compose_with_verls_config(recipe, mode):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "recipes" / "verl"), version_base=None):
        config = hydra_compose(recipe)
    assert config.trainer.v1.trainer_mode == mode
    assert config.actor_rollout_ref.model.path == "agentica-org/DeepScaleR-1.5B-Preview"
    assert (config.data.train_batch_size, config.actor_rollout_ref.rollout.n) == (128, 8)
    assert (config.data.max_prompt_length, config.data.max_response_length) == (1024, 4096)
    actor = config.actor_rollout_ref.actor
    assert (actor.optim.lr, actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (
        1e-6,
        True,
        0.001,
        "low_var_kl",
    )
    assert config.algorithm.adv_estimator == "grpo"
    if mode == "sas_sync":
        trainer = trainer_of(plugin.SASPPOTrainerSync, config, None)
        assert trainer.sas_rule == SASRule(ratio=0.3) and trainer.sas_correct_threshold == 1.0


def compose_recipe(recipe: str, *overrides: str, folder: Path = ROOT / "recipes" / "verl"):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(folder), version_base=None):
        return hydra_compose(recipe, overrides=list(overrides))


@pytest.mark.parametrize("recipe", ["deepscaler_4k_sas", "deepscaler_4k_grpo"])
@pytest.mark.parametrize(
    "gpus", [("trainer.n_gpus_per_node=8",), ("trainer.n_gpus_per_node=1",), ("trainer.nnodes=4",)]
)
def test_recipes_pass_verls_own_validate_config(recipe, gpus, capsys):
    """What `main_ppo` runs before any worker starts, with the arguments it passes."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose_recipe(recipe, *gpus)
    assert need_reference_policy(config) and not need_critic(config)  # the KL loss needs the reference model
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    assert "All configuration checks passed" in capsys.readouterr().out


def test_validate_config_refuses_what_the_recipes_lacked():
    """The check above can fail: without the micro-batch sizes the recipes now set, verl refuses the config."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose_recipe("deepscaler_4k_sas", "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=null")
    with pytest.raises(ValueError, match="log_prob_micro_batch_size"):
        validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


def test_the_recipes_compose_from_the_installed_package(tmp_path, monkeypatch):
    """`--config-path="$(sas-trl recipes --path verl)"` from any folder; the reward is an installed module."""
    from sas_trl.cli import main

    monkeypatch.chdir(tmp_path)
    folder = Path(_stdout_of(main, ["recipes", "--path", "verl"]))
    assert folder.is_absolute() and folder.resolve() == (ROOT / "recipes" / "verl").resolve()
    config = compose_recipe("deepscaler_4k_sas", folder=folder)
    assert config.reward.custom_reward_function.path == "pkg://sas_trl.integrations.verl_reward"


def _stdout_of(function, argv) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert function(argv) == 0
    return out.getvalue().strip()


def test_the_recipes_reward_loads_through_verl_and_grades_as_deepscaler(tmp_path, monkeypatch):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    monkeypatch.chdir(tmp_path)  # no clone file is read: the path names an installed module
    compute_score = get_custom_reward_fn(compose_recipe("deepscaler_4k_sas"))
    assert compute_score("math", "2 + 2 = 4.\n\n</think>\nSo \\boxed{4}.", "4") == 1.0
    assert compute_score("math", "2 + 2 = 5.\n\n</think>\nSo \\boxed{5}.", "4") == 0.0
    assert compute_score("math", "2 + 2 = 4. \\boxed{4}", "4") == 0.0  # no </think>: a format failure
    assert compute_score("math", "So.\n\n</think>\n\\boxed{5}", ["4", "5"]) == 1.0  # several accepted answers


def test_the_recipes_read_the_files_sas_trl_verl_data_writes(tmp_path, monkeypatch):
    """`sas-trl verl-data` writes where the recipes read, and verl's own dataset class reads its rows (with the
    recipes' `filter_overlong_prompts`, which applies a chat template: the built-in model's tokenizer has one)."""
    from verl.trainer.ppo.utils import create_rl_dataset

    from sas_trl.cli import main
    from sas_trl.cli.verl_data import DEFAULT_DIR
    from sas_trl.integrations.verl_data import TRAIN_FILE
    from sas_trl.tiny import build_tokenizer

    tokenizer = build_tokenizer()

    monkeypatch.setenv("HOME", str(tmp_path))
    config = compose_recipe("deepscaler_4k_sas")
    assert Path(config.data.train_files) == Path(DEFAULT_DIR).expanduser() / TRAIN_FILE
    assert Path(config.data.val_files) == Path(DEFAULT_DIR).expanduser() / "aime24.parquet"
    fixtures = ROOT / "tests" / "fixtures"
    argv = ["verl-data", "--train_source", str(fixtures / "deepscaler.jsonl")]
    assert main([*argv, "--source", f"aime24={fixtures / 'aime24.jsonl'}"]) == 0
    dataset = create_rl_dataset(config.data.train_files, config.data, tokenizer, None, is_train=True)
    row = dataset[0]
    assert len(dataset) == 5 and row["data_source"] == "deepscaler"
    assert row["reward_model"]["ground_truth"] == "2"
    assert list(row["raw_prompt"]) == [{"role": "user", "content": "What is $1 + 1$?" + PROMPT_SUFFIX}]
    aime = create_rl_dataset(config.data.val_files, config.data, tokenizer, None, is_train=False)
    assert (
        len(aime) == len((fixtures / "aime24.jsonl").read_text().splitlines()) and aime[0]["data_source"] == "aime24"
    )
