"""sas_trl.evaluation.sampling: the one pipeline eval, analyze-truncation and inspect sample through."""

from __future__ import annotations

import json

import pytest

from sas_trl.errors import UserError
from sas_trl.evaluation import sampling
from sas_trl.evaluation.backends import Completion, SamplingSettings, model_identity
from sas_trl.evaluation.config import EvalInputs
from sas_trl.evaluation.datasets import EvalItem
from sas_trl.evaluation.sampling import SamplingRun, encode_prompt, grade_known, load_items, samples_header
from sas_trl.tiny import build_tokenizer

ITEMS = [
    EvalItem("b", "0", [{"role": "user", "content": "Add 1, 2."}], ["3"]),
    EvalItem("b", "1", [{"role": "user", "content": "Add 2, 2."}], ["4"]),
    EvalItem("prompt", "0", [{"role": "user", "content": "Say hi."}], []),  # no gold answer: no verdict
]


class ExactReward:
    """1.0 when the text is the gold answer; records what it was asked to grade."""

    def __init__(self):
        self.graded: list[tuple[str, list[str]]] = []

    def grade(self, texts, answers):
        self.graded += list(zip(texts, answers, strict=True))
        return [1.0 if t in a else 0.0 for t, a in zip(texts, answers, strict=True)]


class EchoBackend:
    """Answers sample j of a problem with "j + 3"; batches of 2; records the keys asked for."""

    def __init__(self):
        self.asked: list[tuple] = []

    def generate(self, requests, settings):
        for start in range(0, len(requests), 2):
            batch = requests[start : start + 2]
            self.asked += [r.key for r in batch]
            yield [Completion(r.key, str(r.key[2] + 3), [7] * (r.key[2] + 1), "stop") for r in batch]


def inputs(tmp_path, **kw) -> EvalInputs:
    kw = {"n": 2, "progress": False, "output_dir": str(tmp_path), "sampling": SamplingSettings(max_tokens=8), **kw}
    return EvalInputs(model=str(tmp_path / "model"), benchmarks=["addition"], **kw)


def test_grade_known_grades_only_texts_with_gold_answers():
    reward = ExactReward()
    assert grade_known(reward, ["3", "hi", "5"], [["3"], [], ["4"]]) == [1.0, None, 0.0]
    assert reward.graded == [("3", ["3"]), ("5", ["4"])]
    assert grade_known(reward, ["hi"], [[]]) == [None] and len(reward.graded) == 2  # nothing to grade: no call


def test_a_run_draws_what_the_file_lacks_and_reads_back_item_by_item(tmp_path):
    tok = build_tokenizer()
    backend = EchoBackend()
    run = SamplingRun.open(inputs(tmp_path), ITEMS, tok, "s.jsonl", backend)
    generated, seconds = run.draw(ExactReward(), keep_token_ids=True)
    assert generated == 6 and seconds >= 0 and len(backend.asked) == 6
    records = run.records()
    assert [(r["benchmark"], r["id"], r["sample"]) for r in records] == [
        (i.benchmark, i.id, j) for i in ITEMS for j in (0, 1)
    ]
    assert [r["correct"] for r in records] == [1.0, 0.0, 0.0, 1.0, None, None]
    assert records[1]["token_ids"] == [7, 7] and records[1]["tokens"] == 2 and records[1]["finish"] == "stop"
    assert run.prompt_ids()[("b", "1")] == encode_prompt(tok, ITEMS[1].messages)

    again = EchoBackend()  # reopened with one more sample per item: only the new ones are drawn
    more = SamplingRun.open(inputs(tmp_path, n=3), ITEMS, tok, "s.jsonl", again)
    assert more.draw(ExactReward())[0] == 3 and again.asked == [(i.benchmark, i.id, 2) for i in ITEMS]
    assert "token_ids" not in more.records()[2] and more.records()[:2] == records[:2]
    with pytest.raises(RuntimeError, match="samples of b/0 are missing"):
        SamplingRun.open(inputs(tmp_path, n=4), ITEMS, tok, "s.jsonl", EchoBackend()).records()


def test_the_header_is_checked_before_the_backend_is_built(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(sampling, "make_backend", lambda *a: built.append(a) or EchoBackend())
    tok = build_tokenizer()
    run = SamplingRun.open(inputs(tmp_path), ITEMS[:1], tok, "s.jsonl")
    assert isinstance(run.backend, EchoBackend)
    assert built == [("auto", str(tmp_path / "model"), tok, None, 0)]
    header = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["header"]
    assert (
        header
        == samples_header(inputs(tmp_path))
        == {
            "model": model_identity(str(tmp_path / "model")),
            "temperature": 0.6,
            "top_p": 0.95,
            "max_tokens": 8,
            "seed": 0,
            "reward_format": "r1",
            "seeding": "per-sample",
        }
    )
    other = inputs(tmp_path, sampling=SamplingSettings(max_tokens=8, seed=1))
    with pytest.raises(UserError, match=r"seed: 0 -> 1.*--overwrite"):
        SamplingRun.open(other, ITEMS[:1], tok, "s.jsonl")
    assert len(built) == 1  # refused before any model work


def test_load_items_reads_every_benchmark_in_order(tmp_path):
    items = load_items(inputs(tmp_path, limit=3))
    assert [(i.benchmark, i.id) for i in items] == [("addition", str(k)) for k in range(3)]
    assert all(i.answers for i in items)
