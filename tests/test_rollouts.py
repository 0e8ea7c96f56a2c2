"""sas_trl.rollouts: the one truncation rule, and the callers that must agree with it."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sas_trl.evaluation import Request, SamplingSettings, TransformersBackend
from sas_trl.rollouts import is_truncated, truncated_flags, truncated_rows

EOS, PAD = 1, 0


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([5, 6, EOS], False),  # stopped at EOS
        ([5, 6, 7], True),  # cut by the budget
        ([5, 6, PAD], False),  # ends in pad: TRL's test does not count it (a backend that pads after EOS)
        ([5, 2], False),  # a second EOS id
        ([], False),  # nothing was generated, nothing was cut
        (torch.tensor([5, 6, 7]), True),
    ],
)
def test_is_truncated(ids, expected):
    assert is_truncated(ids, [EOS, 2], PAD) is expected


def test_truncated_flags_matches_the_rule_row_by_row():
    rows = [[5, 6, EOS], [5, 6, 7], [5, PAD], [], [9]]
    flags = truncated_flags(rows, EOS, PAD)
    assert flags.dtype == torch.bool and flags.tolist() == [is_truncated(r, EOS, PAD) for r in rows]
    assert flags.tolist() == [False, True, False, False, True]
    assert truncated_flags(rows, EOS, None).tolist() == [False, True, True, False, True]  # no pad id: pad is a token


def test_the_evaluation_backend_counts_what_the_rule_counts(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # A quarter of the vocabulary stops generation, so a 6-token budget cuts some samples and not others.
    model.generation_config.eos_token_id = list(range(0, len(tokenizer), 4))
    backend = TransformersBackend(model, tokenizer, batch_size=8)
    prompt = tuple(tokenizer("Add 3, 4.\n<think>\n")["input_ids"])
    requests = [Request(("b", "0", j), prompt) for j in range(32)]
    settings = SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=6, seed=0)
    completions = [c for batch in backend.generate(requests, settings) for c in batch]
    rule = [is_truncated(c.token_ids, backend.eos_ids, backend.pad_id) for c in completions]
    assert [c.truncated for c in completions] == rule
    assert 0 < sum(rule) < len(rule)  # both kinds occur, so the comparison means something


def test_truncated_rows_applies_the_rule_to_each_padded_row():
    rows = [[5, 6, EOS], [5, 6, 7], [5, PAD], [], [9], [EOS, 4]]
    width = max(map(len, rows)) + 2
    ids = torch.tensor([r + [PAD] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    assert truncated_rows(ids, mask, [EOS, 2], PAD).tolist() == [is_truncated(r, [EOS, 2], PAD) for r in rows]
    assert truncated_rows(ids, mask, EOS, None).tolist() == [is_truncated(r, EOS, None) for r in rows]
    # A masked-out token inside a row (a tool's output) does not end it: the last valid token does.
    inner = torch.tensor([[5, EOS, 7, PAD]]), torch.tensor([[1, 1, 0, 0]])
    assert truncated_rows(*inner, EOS, PAD).tolist() == [False]
    assert truncated_rows(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0), EOS, PAD).tolist() == [False, False]


def test_truncated_rows_matches_the_list_rule_on_random_batches():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        lengths = torch.randint(0, 7, (9,), generator=generator).tolist()
        rows = [torch.randint(0, 4, (n,), generator=generator).tolist() for n in lengths]
        ids = torch.full((9, 8), PAD)
        mask = torch.zeros(9, 8, dtype=torch.long)
        for i, row in enumerate(rows):  # building the fixture, not the code under test
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        assert truncated_rows(ids, mask, EOS, PAD).tolist() == truncated_flags(rows, EOS, PAD).tolist()
