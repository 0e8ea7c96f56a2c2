"""sas_trl.evaluation.inspection_rollouts: samples files read and checked, prompts and sampled rollouts."""

from __future__ import annotations

import json

import pytest

from sas_trl.errors import UserError
from sas_trl.evaluation.config import EvalInputs
from sas_trl.evaluation.inspection_rollouts import prompt_items, read_samples, rollouts_from_samples, verdict
from sas_trl.tiny import build_tokenizer


@pytest.mark.parametrize(
    "record, message",
    [
        ({"prompt": "Add 1, 2."}, "line 2: no completion; needs field 'token_ids' or 'text'"),
        ({"text": "1 + 2 = 3"}, "line 2: no prompt; needs field 'prompt', or 'benchmark' and 'id'"),
        ({"text": "1", "benchmark": "addition"}, "line 2: no prompt"),
    ],
)
def test_samples_file_without_needed_fields(tmp_path, record, message):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"header": {}}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(UserError, match=message):
        read_samples(str(path))


def test_rollouts_from_a_samples_file(tmp_path):
    tok = build_tokenizer()
    path = tmp_path / "samples.jsonl"
    lines = [
        {"header": {"model": "x"}},
        {"benchmark": "addition", "id": "0", "correct": 1.0, "finish": "stop", "text": "1 + 2 = 3"},
        {"prompt": "Add 2, 2.", "token_ids": [5, 6, 7], "correct": 0.0, "finish": "length"},
        {"prompt": "Add 1, 1.", "text": "2"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    inputs = EvalInputs(model="m", benchmarks=[], limit=2)
    out = rollouts_from_samples(str(path), inputs, tok)
    assert [(r.correct, r.truncated) for r in out] == [(True, False), (False, True), (None, False)]
    assert out[1].prompt_text == "Add 2, 2." and out[1].completion_ids == [5, 6, 7]
    assert out[0].completion_ids == tok("1 + 2 = 3", add_special_tokens=False)["input_ids"]
    assert out[0].prompt_text.startswith("Add ") and len(out[0].prompt_ids) > 0
    path.write_text(json.dumps({"benchmark": "addition", "id": "7", "text": "1"}) + "\n")
    with pytest.raises(UserError, match="benchmark addition has no problem '7'"):
        rollouts_from_samples(str(path), inputs, tok)  # limit 2: problems 0 and 1 only


def test_prompts_are_items_without_gold_answers_and_verdicts():
    items = prompt_items(["Add 1, 2.", "Add 3, 4."])
    assert [(it.benchmark, it.id, it.answers) for it in items] == [("prompt", "0", []), ("prompt", "1", [])]
    assert items[1].messages == [{"role": "user", "content": "Add 3, 4."}]
    assert [verdict(c) for c in (1.0, 0.0, 0.5, None)] == [True, False, False, None]
