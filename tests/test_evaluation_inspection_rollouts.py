"""sas_trl.evaluation.inspection_rollouts: samples files read and checked, prompts and sampled rollouts."""

from __future__ import annotations

import json
import re

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


@pytest.mark.parametrize(
    "record, message",
    [
        ({"prompt": "p", "token_ids": ["a"]}, "field 'token_ids' must be a list of integer token ids"),
        ({"prompt": "p", "token_ids": [1.0]}, "field 'token_ids' must be a list of integer token ids"),
        ({"prompt": "p", "token_ids": [True]}, "field 'token_ids' must be a list of integer token ids"),
        ({"prompt": "p", "token_ids": "1 2"}, "field 'token_ids' must be a list of integer token ids"),
        ({"prompt": 5, "text": "x"}, "field 'prompt' has the wrong type"),
        ({"prompt": "p", "text": ["x"]}, "field 'text' has the wrong type"),
        ({"prompt": "p", "text": "x", "correct": "yes"}, "field 'correct' has the wrong type"),
        ({"prompt": "p", "text": "x", "correct": True}, "field 'correct' has the wrong type"),
        ({"prompt": "p", "text": "x", "finish": 1}, "field 'finish' has the wrong type"),
        ({"benchmark": ["a"], "id": "0", "text": "x"}, "field 'benchmark' has the wrong type"),
        ({"benchmark": "addition", "id": None, "text": "x"}, "field 'id' has the wrong type"),
    ],
)
def test_samples_file_fields_of_the_wrong_type_name_the_line(tmp_path, record, message):
    path = tmp_path / "samples.jsonl"
    good = {"prompt": "p", "text": "x"}
    path.write_text("".join(json.dumps(r) + "\n" for r in ({"header": {}}, good, record)))
    with pytest.raises(UserError, match=f"line 3: {re.escape(message)}"):
        read_samples(str(path))


def test_samples_files_that_are_not_json_lines(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b'{"prompt": "p", "text": "x"}\n\xff\xfe\n')
    with pytest.raises(UserError, match="samples.jsonl.*not a JSON lines file"):
        read_samples(str(path))
    path.write_text('{"prompt": "p", "text": "x"}\n{"prompt": "p", "te\n{"prompt": "p", "text": "y"}\n')
    with pytest.raises(UserError, match="line 2: not JSON"):  # damage in the middle, not only a cut last line
        read_samples(str(path))


def test_token_ids_outside_the_vocabulary_are_refused_with_the_line(tmp_path):
    tok = build_tokenizer()
    path = tmp_path / "samples.jsonl"
    ok = {"prompt": "p", "token_ids": [0, len(tok) - 1]}
    inputs = EvalInputs(model="m", benchmarks=[])
    for bad in (len(tok), -1, 10**12):
        path.write_text(json.dumps(ok) + "\n" + json.dumps({"prompt": "p", "token_ids": [3, bad]}) + "\n")
        vocab = rf"\(0\.\.{len(tok) - 1}\)"
        with pytest.raises(UserError, match=rf"line 2: token id {bad} is not in the model's vocabulary {vocab}"):
            rollouts_from_samples(str(path), inputs, tok)
    path.write_text(json.dumps(ok) + "\n")
    assert rollouts_from_samples(str(path), inputs, tok)[0].completion_ids == ok["token_ids"]


def test_rollouts_carry_the_graded_answer_and_the_reference(tmp_path):
    from sas_trl.evaluation.datasets import load_benchmark

    tok = build_tokenizer()
    path = tmp_path / "samples.jsonl"
    lines = [
        {"benchmark": "addition", "id": "1", "correct": 0.0, "text": "1 + 2 = 3\n\n</think>\\boxed{3}"},
        {"prompt": "Add 2, 2.", "answer": 4, "text": "2 + 2 = 4\n\n</think>\\boxed{4}", "correct": 1.0},
        {"prompt": "Add 1, 1.", "text": "1 + 1 = 2"},  # no </think>: nothing graded, no reference
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    inputs = EvalInputs(model="m", benchmarks=[], limit=2)
    out = rollouts_from_samples(str(path), inputs, tok)
    gold = next(it.answers for it in load_benchmark("addition", {}, None, 2, None) if it.id == "1")
    assert [(r.answer, r.reference) for r in out] == [("3", tuple(gold)), ("4", ("4",)), (None, ())]
    plain = rollouts_from_samples(str(path), EvalInputs(model="m", benchmarks=[], reward_format="plain"), tok)
    assert plain[2].answer is None and plain[0].answer == "3"  # the grading format decides what is extracted
