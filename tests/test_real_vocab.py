"""Segmentation on the real DeepScaleR vocabulary (Qwen2 byte-level BPE), where "\\n\\n" merges into tokens."""

import torch

from sas_trl import segment_steps, select_zero_mask, vocab_tables

TRACE = (
    "Okay, so I need to add 3 and 4.\n\n"
    "First, 3 + 4 = 7.\n\n"
    "Wait, let me double-check that: 3 + 4 is 7, yes.\n\n\n"
    "So the answer is 7.\n\n"
    "</think>\n\n"
    "The sum is $\\boxed{7}$."
)


def encode(tokenizer, texts):
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def step_texts(tokenizer, ids, steps):
    return [tokenizer.decode(ids[steps == s]) for s in range(int(steps.max()) + 1)]


def test_ids_are_the_deepscaler_ones(qwen2_tokenizer):
    tok = qwen2_tokenizer
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [151648, 151649]
    assert tok(".\n\n", add_special_tokens=False)["input_ids"] == [382]
    ends_step, think_end_id = vocab_tables(tok)
    assert think_end_id == 151649
    assert ends_step[382] and ends_step[271]  # ".\n\n" and "\n\n"
    assert not ends_step[198]  # a lone "\n" does not end a step
    assert not ends_step[13]  # "."


def test_merged_delimiters_end_their_steps(qwen2_tokenizer):
    tok = qwen2_tokenizer
    ids, mask = encode(tok, [TRACE])
    assert 382 in ids[0].tolist()  # the delimiter arrives merged into ".\n\n", never alone here
    steps = segment_steps(ids, mask, tok)
    assert step_texts(tok, ids[0], steps[0]) == [
        "Okay, so I need to add 3 and 4.\n\n",
        "First, 3 + 4 = 7.\n\n",
        "Wait, let me double-check that: 3 + 4 is 7, yes.\n\n\n",
        "So the answer is 7.\n\n",
    ]
    answer = tok.decode(ids[0][(steps[0] == -1) & mask[0].bool()])
    assert answer == "</think>\n\nThe sum is $\\boxed{7}$."


def test_truncated_trace_is_all_reasoning(qwen2_tokenizer):
    tok = qwen2_tokenizer
    cut = TRACE[: TRACE.index("So the answer")] + "So the ans"
    ids, mask = encode(tok, [cut, TRACE])
    steps = segment_steps(ids, mask, tok)
    assert step_texts(tok, ids[0], steps[0])[-1] == "So the ans"
    assert (steps[0][mask[0].bool()] >= 0).all()  # no </think>: every valid token is reasoning
    assert (steps[0][~mask[0].bool()] == -1).all()


def test_zeroing_on_real_tokens(qwen2_tokenizer):
    tok = qwen2_tokenizer
    ids, mask = encode(tok, [TRACE, TRACE])
    steps = segment_steps(ids, mask, tok)
    logps = torch.full(ids.shape, -0.5)  # exact in float32, so the other steps tie exactly
    logps[steps == 2] = -3.0  # the double-check step is the least confident
    zero = select_zero_mask(steps, logps, torch.tensor([True, False]), 0.25)
    assert tok.decode(ids[0][zero[0]]) == "Wait, let me double-check that: 3 + 4 is 7, yes.\n\n\n"
    # Failed rollout: 4 - ceil(0.75 * 4) = 1 step, the most confident; ties break towards the first step.
    assert tok.decode(ids[1][zero[1]]) == "Okay, so I need to add 3 and 4.\n\n"
