"""Property tests of the SAS math: `segment_steps` and `select_zero_mask` against plain-Python oracles."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from sas_trl import count_steps, segment_steps, select_zero_mask, step_statistics
from sas_trl.core import SASRule, SASRuleError, boundary_table, steps_to_zero, token_granularity
from sas_trl.selection import SELECTIONS, SelectionInputs, register_selection

# A small vocabulary with merged delimiters (".\n\n", "x\n\ny"), a lone "\n" that must not split, and </think>.
VOCAB = ["<pad>", "a", "b", ".", "\n", "\n\n", ".\n\n", "x\n\ny", "</think>", " \\boxed{7}"]
PAD, THINK_END = 0, VOCAB.index("</think>")


def make_tokenizer(vocab=VOCAB) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<pad>"))
    from tokenizers import decoders

    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")


TOKENIZER = make_tokenizer()


# --------------------------------------------------------------------------------------------------
# Oracles: the semantics written the slow, obvious way (one rollout, one token at a time).
# --------------------------------------------------------------------------------------------------


def oracle_segment(ids, mask, delimiter="\n\n", think_end_id=THINK_END, trim_unterminated=False):
    valid = [i for i, m in enumerate(mask) if m]
    end = next((i for i in valid if ids[i] == think_end_id), None)
    reasoning = [i for i in valid if end is None or i < end]
    if trim_unterminated and end is None and reasoning:
        reasoning = reasoning[:-1]
    out, step = [-1] * len(ids), 0
    for i in reasoning:
        out[i] = step
        if delimiter in TOKENIZER.decode([ids[i]]):
            step += 1
    return out


def oracle_select(step_ids, logps, correct, ratio: Fraction, strategy="both", truncated=None, scope="all", keys=None):
    """The paper's selection, one rollout at a time; with `keys` (one per step slot) the random selection."""
    steps: dict[int, list[float]] = {}
    for s, lp in zip(step_ids, logps, strict=True):
        if s >= 0:
            steps.setdefault(s, []).append(lp)
    n = len(steps)
    conf = {s: float(np.float32(sum(v)) / np.float32(len(v))) for s, v in steps.items()}
    if correct:
        k = math.ceil(ratio * n) if strategy in ("both", "correct_only") else 0
        order = sorted(steps, key=lambda s: (conf[s], s) if keys is None else (keys[s], s))
    else:
        k = n - math.ceil((1 - ratio) * n) if strategy in ("both", "failed_only") else 0
        if scope == "truncated" and not truncated:
            k = 0
        order = sorted(steps, key=lambda s: (-conf[s], s) if keys is None else (keys[s], s))
    chosen = set(order[:k])
    return [s in chosen for s in step_ids]


# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------


@st.composite
def rollout_batches(draw, max_batch=4, max_len=24):
    """(ids, mask) with right padding, a mix of delimiter tokens and optional </think>."""
    batch = draw(st.integers(1, max_batch))
    length = draw(st.integers(0, max_len))
    ids = draw(
        st.lists(
            st.lists(st.integers(1, len(VOCAB) - 1), min_size=length, max_size=length), min_size=batch, max_size=batch
        )
    )
    lengths = draw(st.lists(st.integers(0, length), min_size=batch, max_size=batch))
    mask = [[1] * n + [0] * (length - n) for n in lengths]
    ids = [[t if m else PAD for t, m in zip(row, mrow, strict=True)] for row, mrow in zip(ids, mask, strict=True)]
    return torch.tensor(ids, dtype=torch.long).view(batch, length), torch.tensor(mask).view(batch, length)


DYADIC = st.sampled_from([-4.0, -2.5, -1.0, -0.75, -0.5, -0.25, -0.125, 0.0])  # exact in float32: real ties


@st.composite
def step_batches(draw, max_batch=4, max_len=30):
    """step_ids with gaps (empty steps) and -1 holes, dyadic log-probs, verdicts and truncation flags."""
    batch = draw(st.integers(1, max_batch))
    length = draw(st.integers(0, max_len))
    rows = []
    for _ in range(batch):
        steps = sorted(draw(st.lists(st.integers(-1, 9), min_size=length, max_size=length)))
        holes = draw(st.lists(st.booleans(), min_size=length, max_size=length))
        rows.append([-1 if h else s for s, h in zip(steps, holes, strict=True)])
    logps = draw(st.lists(st.lists(DYADIC, min_size=length, max_size=length), min_size=batch, max_size=batch))
    correct = draw(st.lists(st.booleans(), min_size=batch, max_size=batch))
    truncated = draw(st.lists(st.booleans(), min_size=batch, max_size=batch))
    return (
        torch.tensor(rows, dtype=torch.long).view(batch, length),
        torch.tensor(logps, dtype=torch.float32).view(batch, length),
        torch.tensor(correct),
        torch.tensor(truncated),
    )


RATIOS = st.integers(0, 1000).map(lambda k: Fraction(k, 1000))


# --------------------------------------------------------------------------------------------------
# segment_steps
# --------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(rollout_batches(), st.booleans())
def test_segment_matches_oracle(batch, trim):
    ids, mask = batch
    got = segment_steps(ids, mask, TOKENIZER, trim_unterminated=trim)
    want = [oracle_segment(r, m, trim_unterminated=trim) for r, m in zip(ids.tolist(), mask.tolist(), strict=True)]
    assert got.dtype == torch.long and got.shape == ids.shape
    assert got.tolist() == want


@settings(max_examples=200, deadline=None)
@given(rollout_batches())
def test_segment_structure(batch):
    ids, mask = batch
    steps = segment_steps(ids, mask, TOKENIZER)
    for row_ids, row_mask, row in zip(ids.tolist(), mask.tolist(), steps.tolist(), strict=True):
        inside = [s for s in row if s >= 0]
        # Steps are numbered 0, 1, ... without gaps, in token order.
        assert inside == sorted(inside)
        assert not inside or (inside[0] == 0 and set(inside) == set(range(inside[-1] + 1)))
        for t, (tok, m, s) in enumerate(zip(row_ids, row_mask, row, strict=True)):
            if not m:
                assert s == -1  # padding is never a step
            if tok == THINK_END and m:
                assert all(x == -1 for x in row[t:])  # </think> and everything after
            if s >= 0 and "\n\n" in VOCAB[tok] and t + 1 < len(row) and row[t + 1] >= 0:
                assert row[t + 1] == s + 1  # the delimiter token closes its own step


def test_segment_delimiter_ownership_example():
    tok = {t: i for i, t in enumerate(VOCAB)}
    ids = torch.tensor(
        [
            [
                tok["a"],
                tok[".\n\n"],
                tok["b"],
                tok["\n"],
                tok["x\n\ny"],
                tok["a"],
                tok["</think>"],
                tok[" \\boxed{7}"],
                PAD,
            ]
        ]
    )
    mask = (ids != PAD).long()
    assert segment_steps(ids, mask, TOKENIZER).tolist() == [[0, 0, 1, 1, 1, 2, -1, -1, -1]]


def test_segment_no_think_end_and_none():
    tok = {t: i for i, t in enumerate(VOCAB)}
    ids = torch.tensor([[tok["a"], tok["\n\n"], tok["b"], tok["</think>"], tok["a"]]])
    mask = torch.ones_like(ids)
    assert segment_steps(ids, mask, TOKENIZER).tolist() == [[0, 0, 1, -1, -1]]
    # think_end=None: the whole completion is reasoning, "</think>" is an ordinary token.
    assert segment_steps(ids, mask, TOKENIZER, think_end=None).tolist() == [[0, 0, 1, 1, 1]]
    # A vocabulary without the think-end token behaves the same.
    assert segment_steps(ids, mask, TOKENIZER, think_end="</reasoning>").tolist() == [[0, 0, 1, 1, 1]]
    # Release compatibility: without </think> the reasoning part ends one token early.
    no_end = torch.tensor([[tok["a"], tok["\n\n"], tok["b"], tok["a"], PAD]])
    got = segment_steps(no_end, (no_end != PAD).long(), TOKENIZER, trim_unterminated=True)
    assert got.tolist() == [[0, 0, 1, -1, -1]]


def test_segment_all_padding_and_empty():
    ids = torch.zeros(3, 5, dtype=torch.long)
    assert (segment_steps(ids, torch.zeros_like(ids), TOKENIZER) == -1).all()
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert segment_steps(empty, empty, TOKENIZER).shape == (2, 0)


def test_segment_ids_beyond_vocabulary_never_split():
    ids = torch.tensor([[1, 5000, VOCAB.index("\n\n"), 1]])
    assert segment_steps(ids, torch.ones_like(ids), TOKENIZER).tolist() == [[0, 0, 0, 1]]


def test_segment_rejects_empty_delimiter():
    ids = torch.ones(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="delimiter"):
        segment_steps(ids, ids, TOKENIZER, delimiter="")


# --------------------------------------------------------------------------------------------------
# select_zero_mask
# --------------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(
    step_batches(),
    RATIOS,
    st.sampled_from(["both", "correct_only", "failed_only", "none"]),
    st.sampled_from(["all", "truncated"]),
    st.sampled_from(["confidence", "random"]),
    st.integers(0, 2**31),
)
def test_select_matches_oracle(batch, ratio, strategy, scope, selection, seed):
    step_ids, logps, correct, truncated = batch
    keys = torch.rand(step_ids.size(0), 16, generator=torch.Generator().manual_seed(seed))  # >= S: steps 0..9
    rule = SASRule(ratio=float(ratio), strategy=strategy, failed_scope=scope, selection=selection)
    got = select_zero_mask(step_ids, logps, correct, rule, is_truncated=truncated, random_keys=keys)
    want = [
        oracle_select(s, lp, c, ratio, strategy, t, scope, None if selection == "confidence" else k)
        for s, lp, c, t, k in zip(
            step_ids.tolist(), logps.tolist(), correct.tolist(), truncated.tolist(), keys.tolist(), strict=True
        )
    ]
    assert got.dtype == torch.bool and got.shape == step_ids.shape
    assert got.tolist() == want
    # The keyword convenience builds the same rule.
    same = select_zero_mask(
        step_ids,
        logps,
        correct,
        float(ratio),
        strategy=strategy,
        failed_scope=scope,
        selection=selection,
        is_truncated=truncated,
        random_keys=keys,
    )
    assert torch.equal(got, same)


@settings(max_examples=300, deadline=None)
@given(step_batches(), RATIOS)
def test_select_counts_whole_steps_and_ordering(batch, ratio):
    step_ids, logps, correct, _ = batch
    r = float(ratio)
    zero = select_zero_mask(step_ids, logps, correct, r)
    confidence, counts = step_statistics(step_ids, logps)
    for b in range(step_ids.size(0)):
        present = [s for s in range(counts.size(1)) if counts[b, s] > 0]
        zeroed = {s for s in present if zero[b][step_ids[b] == s].any()}
        for s in present:  # a step is zeroed whole or not at all
            assert zero[b][step_ids[b] == s].all() == (s in zeroed)
        n = len(present)
        expected = math.ceil(ratio * n) if correct[b] else n - math.ceil((1 - ratio) * n)
        assert len(zeroed) == expected
        kept = [confidence[b, s] for s in present if s not in zeroed]
        for s in zeroed:  # lowest-confidence steps of a correct rollout, highest of a failed one
            if correct[b]:
                assert all(confidence[b, s] <= c for c in kept)
            else:
                assert all(confidence[b, s] >= c for c in kept)
        assert not zero[b][step_ids[b] < 0].any()  # tokens outside steps are never zeroed


@pytest.mark.parametrize(
    ("n", "ratio", "correct_k", "failed_k"),
    [
        (20, 0.3, 6, 6),
        (10, 0.3, 3, 3),
        (7, 0.3, 3, 2),
        (1, 0.3, 1, 0),
        (3, 0.9, 3, 2),
        (10, 0.1, 1, 1),
        (100, 0.7, 70, 70),
        (5, 0.0, 0, 0),
        (5, 1.0, 5, 5),
        # plain float ceil gets these wrong: 0.07 * 100 = 7.000000000000001, 0.82 * 150 = 123.00000000000001
        (100, 0.07, 7, 7),
        (200, 0.035, 7, 7),
        (150, 0.18, 27, 27),
    ],
)
def test_float_guard_counts(n, ratio, correct_k, failed_k):
    num = torch.tensor([n, n])
    got = steps_to_zero(num, torch.tensor([True, False]), ratio)
    assert got.tolist() == [correct_k, failed_k]


def test_ties_break_by_step_index():
    step_ids = torch.arange(10).repeat_interleave(2).unsqueeze(0).repeat(2, 1)  # 10 steps of 2 tokens
    logps = torch.full(step_ids.shape, -1.0)
    zero = select_zero_mask(step_ids, logps, torch.tensor([True, False]), 0.3)
    zeroed_steps = [sorted(set(step_ids[b][zero[b]].tolist())) for b in range(2)]
    assert zeroed_steps == [[0, 1, 2], [0, 1, 2]]


def test_empty_steps_are_never_counted_or_chosen():
    # Steps 0 and 3 exist; 1 and 2 are empty. With ratio 0.5 a correct rollout zeroes ceil(0.5 * 2) = 1 step.
    step_ids = torch.tensor([[0, 0, 3, 3, -1]])
    logps = torch.tensor([[-0.1, -0.1, -5.0, -5.0, -9.0]])
    zero = select_zero_mask(step_ids, logps, torch.tensor([True]), 0.5)
    assert zero.tolist() == [[False, False, True, True, False]]
    assert count_steps(step_ids).tolist() == [2]
    # A -inf step must still rank before (and never tie with) the empty slots of a failed rollout.
    inf_logps = torch.tensor([[-math.inf, -math.inf, -5.0, -5.0, 0.0]])
    zero = select_zero_mask(step_ids, inf_logps, torch.tensor([False]), 1.0)
    assert zero.tolist() == [[True, True, True, True, False]]


def test_single_step_and_no_delimiter():
    step_ids = torch.tensor([[0, 0, 0, -1], [-1, -1, -1, -1]])
    logps = torch.full(step_ids.shape, -0.5)
    # One step: a correct rollout zeroes ceil(0.3) = 1 step, a failed one 1 - ceil(0.7) = 0.
    assert select_zero_mask(step_ids, logps, torch.tensor([True, True]), 0.3).tolist() == [
        [True, True, True, False],
        [False] * 4,
    ]
    assert not select_zero_mask(step_ids, logps, torch.tensor([False, False]), 0.3).any()


def test_all_padding_and_empty_time_axis():
    assert not select_zero_mask(torch.full((2, 4), -1), torch.zeros(2, 4), torch.tensor([True, False])).any()
    assert select_zero_mask(
        torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0), torch.tensor([True, False])
    ).shape == (2, 0)


def test_nan_logps_outside_steps_are_ignored():
    step_ids = torch.tensor([[0, 1, -1]])
    logps = torch.tensor([[-1.0, -2.0, math.nan]])
    assert select_zero_mask(step_ids, logps, torch.tensor([True]), 0.5).tolist() == [[False, True, False]]


@settings(max_examples=100, deadline=None)
@given(step_batches(), RATIOS)
def test_token_granularity_counts_tokens(batch, ratio):
    step_ids, logps, correct, _ = batch
    zero = select_zero_mask(step_ids, logps, correct, float(ratio), granularity="token")
    for b in range(step_ids.size(0)):
        n = int((step_ids[b] >= 0).sum())
        expected = math.ceil(ratio * n) if correct[b] else n - math.ceil((1 - ratio) * n)
        assert int(zero[b].sum()) == expected
    assert token_granularity(torch.tensor([[-1, 0, 0, 2, -1, 2]])).tolist() == [[-1, 0, 1, 2, -1, 3]]


def test_random_selection_is_seeded_and_counts_match():
    step_ids = torch.arange(20).repeat_interleave(3).unsqueeze(0).repeat(8, 1)
    logps = -torch.rand(step_ids.shape)
    correct = torch.tensor([True, False] * 4)

    def run(seed):
        return select_zero_mask(
            step_ids, logps, correct, 0.3, selection="random", generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert ((a.view(8, 20, 3).any(-1)).sum(-1) == 6).all()  # 6 of 20 steps per rollout, both kinds
    assert not torch.equal(a, select_zero_mask(step_ids, logps, correct, 0.3))  # not the confidence choice


def test_std_ranking_prefers_uneven_steps():
    # Step 0 is even (std 0), step 1 uneven; same mean. A correct rollout zeroes the least confident one: step 1.
    step_ids = torch.tensor([[0, 0, 1, 1]])
    logps = torch.tensor([[-1.0, -1.0, -0.0, -2.0]])
    zero = select_zero_mask(step_ids, logps, torch.tensor([True]), 0.5, ranking="std")
    assert zero.tolist() == [[False, False, True, True]]
    conf, _ = step_statistics(step_ids, logps, "std")
    assert conf.tolist() == [[0.0, -1.0]]


def test_release_count_mode_matches_the_public_code():
    step_ids = torch.arange(5).repeat_interleave(2).unsqueeze(0).repeat(2, 1)
    logps = -torch.rand(step_ids.shape)
    zero = select_zero_mask(step_ids, logps, torch.tensor([True, False]), 0.3, count_mode="release")
    assert zero[0].all() and not zero[1].any()  # every step of a correct rollout, none of a failed one
    # ceil((N - 1) + r) with r = 0 leaves one step of a correct rollout.
    zero = select_zero_mask(step_ids, logps, torch.tensor([True, False]), 0.0, count_mode="release")
    assert int(zero[0].view(5, 2).all(-1).sum()) == 4 and not zero[1].any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 1.5}, "ratio"),
        ({"ratio": -0.1}, "ratio"),
        ({"strategy": "wrong_only"}, "strategy"),
        ({"selection": "entropy"}, "selection"),
        ({"granularity": "sentence"}, "granularity"),
        ({"ranking": "median"}, "ranking"),
        ({"failed_scope": "some"}, "failed_scope"),
        ({"failed_scope": "truncated"}, "is_truncated"),
        ({"count_mode": "verl"}, "count_mode"),
    ],
)
def test_select_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_zero_mask(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2), torch.tensor([True]), **kwargs)


def test_works_on_bf16_logps_and_keeps_devices():
    step_ids = torch.tensor([[0, 0, 1, 1, 2]])
    logps = torch.tensor([[-0.5, -0.5, -3.0, -3.0, -1.0]], dtype=torch.bfloat16)
    zero = select_zero_mask(step_ids, logps, torch.tensor([True]), 0.3)
    assert zero.tolist() == [[False, False, True, True, False]]


# --------------------------------------------------------------------------------------------------
# Static shapes and precomputed inputs (what the trainer passes to avoid reading values back)
# --------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(step_batches(), RATIOS, st.sampled_from(["mean", "std"]), st.integers(0, 7))
def test_static_slot_count_gives_the_same_mask(batch, ratio, ranking, extra):
    step_ids, logps, correct, _ = batch
    slots = 10 + extra  # any S above the largest step index (step_batches draws indices up to 9)
    assert torch.equal(
        select_zero_mask(step_ids, logps, correct, float(ratio), ranking=ranking, num_slots=slots),
        select_zero_mask(step_ids, logps, correct, float(ratio), ranking=ranking),
    )
    assert torch.equal(count_steps(step_ids, num_slots=slots), count_steps(step_ids))
    static, counts = step_statistics(step_ids, logps, ranking, num_slots=slots)
    dynamic, _ = step_statistics(step_ids, logps, ranking)
    assert static.shape == (step_ids.size(0), slots) and (counts[:, dynamic.size(1) :] == 0).all()


@settings(max_examples=200, deadline=None)
@given(rollout_batches(), st.booleans())
def test_precomputed_boundary_table_gives_the_same_steps(batch, trim):
    ids, mask = batch
    table = boundary_table(TOKENIZER, 64)  # sized like a model with padded embedding rows
    assert table.shape == (64,) and not table[len(VOCAB) :].any()
    assert torch.equal(
        segment_steps(ids, mask, TOKENIZER, trim_unterminated=trim, table=table),
        segment_steps(ids, mask, TOKENIZER, trim_unterminated=trim),
    )


def test_random_keys_fix_the_choice_and_rank_steps():
    step_ids = torch.arange(10).repeat_interleave(2).unsqueeze(0).repeat(2, 1)
    logps = -torch.rand(step_ids.shape)
    correct = torch.tensor([True, False])
    keys = torch.rand(2, 20, generator=torch.Generator().manual_seed(0))
    first = select_zero_mask(step_ids, logps, correct, 0.3, selection="random", random_keys=keys)
    again = select_zero_mask(step_ids, -torch.rand(step_ids.shape), correct, 0.3, selection="random", random_keys=keys)
    assert torch.equal(first, again)  # the keys decide, not the log-probs
    for b in range(2):  # the 3 steps with the smallest keys among the 10
        chosen = sorted(set(step_ids[b][first[b]].tolist()))
        assert chosen == sorted(keys[b, :10].argsort()[:3].tolist())
    with pytest.raises(ValueError, match="random_keys"):
        select_zero_mask(step_ids, logps, correct, 0.3, selection="random", random_keys=keys[:, :5])


def test_min_steps_leaves_short_rollouts_to_grpo():
    # Rollout 0: one step; rollout 1: three steps. Both correct.
    step_ids = torch.tensor([[0, 0, 0, -1], [0, 1, 2, -1]])
    logps = torch.tensor([[-1.0, -1.0, -1.0, 0.0], [-3.0, -1.0, -2.0, 0.0]])
    correct = torch.tensor([True, True])
    paper = select_zero_mask(step_ids, logps, correct, 0.3)
    assert paper.tolist() == [[True, True, True, False], [True, False, False, False]]
    guarded = select_zero_mask(step_ids, logps, correct, 0.3, min_steps=2)
    assert guarded.tolist() == [[False] * 4, [True, False, False, False]]


# --------------------------------------------------------------------------------------------------
# SASRule: the one definition of the settings and their validation; the selection registry
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"ratio": 1.5}, "sas_ratio=1.5"),
        ({"ratio": float("nan")}, "sas_ratio=nan"),
        ({"ratio": True}, "sas_ratio=True"),
        ({"ratio": "0.3"}, "sas_ratio='0.3'"),
        ({"strategy": "wrong_only"}, "sas_strategy='wrong_only'"),
        ({"selection": "entropy"}, "sas_selection='entropy'"),
        ({"granularity": "sentence"}, "sas_granularity='sentence'"),
        ({"ranking": "median"}, "sas_ranking='median'"),
        ({"failed_scope": "some"}, "sas_failed_scope='some'"),
        ({"count_mode": "verl"}, "sas_count_mode='verl'"),
        ({"min_steps": 0}, "sas_min_steps=0"),
        ({"min_steps": 1.5}, "sas_min_steps=1.5"),
        ({"delimiter": ""}, "sas_delimiter=''"),
        ({"think_end": ""}, "sas_think_end=''"),
        ({"think_end": "  "}, "sas_think_end='  '"),
        ({"think_end": 5}, "sas_think_end=5"),
    ],
)
def test_rule_refuses_each_bad_setting_by_its_name(settings, named):
    with pytest.raises(SASRuleError, match="not valid") as err:
        SASRule(**settings)
    assert str(err.value).startswith(named)
    assert isinstance(err.value, ValueError)  # SASConfig's callers catch ValueError


def test_rule_round_trips_through_its_settings_names():
    rule = SASRule(ratio=0.5, strategy="correct_only", min_steps=2, think_end="NONE")
    assert rule.think_end is None and rule.ratio == 0.5
    assert rule.settings()["sas_min_steps"] == 2 and set(rule.settings()) == {f"sas_{f.name}" for f in rule.fields()}
    assert SASRule.from_settings(rule.settings()) == rule
    assert SASRule.from_settings({"sas_ratio": 0.1}) == SASRule(ratio=0.1)  # missing names keep the defaults
    with pytest.raises(AttributeError):
        rule.ratio = 0.2  # frozen: one rule, not a copy to keep in step
    assert not SASRule(ratio=0.0).enabled and SASRule(ratio=0.0, count_mode="release").enabled
    assert SASRule(selection="random").draws_random_keys and not SASRule(selection="random", ratio=0).draws_random_keys
    with pytest.raises(TypeError, match="not both"):
        select_zero_mask(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2), torch.tensor([True]), rule, ratio=0.1)


def test_a_registered_selection_is_one_function_and_valid_everywhere():
    @register_selection("last_first")
    def last_first(inputs: SelectionInputs) -> torch.Tensor:
        """Later steps first (a test rule)."""
        return -torch.arange(inputs.confidence.size(1), dtype=torch.float32).expand_as(inputs.confidence)

    try:
        with pytest.raises(ValueError, match="registered twice"):
            register_selection("last_first")(last_first)
        step_ids = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
        zero = select_zero_mask(step_ids, -torch.rand(1, 8), torch.tensor([True]), 0.5, selection="last_first")
        assert zero.tolist() == [[False] * 4 + [True] * 4]  # ceil(0.5 * 4) = 2 steps: the last two
        assert SASRule(selection="last_first").settings()["sas_selection"] == "last_first"
    finally:
        del SELECTIONS["last_first"]
    with pytest.raises(SASRuleError, match="'confidence', 'random'"):
        SASRule(selection="last_first")
