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
            "weights": None,  # no such folder: nothing to fingerprint
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


def test_new_weights_at_the_same_path_are_not_the_same_model(tmp_path):
    """Retrained (or copied over) weights at the same folder: the saved samples are another model's."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"a" * 100)
    tok = build_tokenizer()
    SamplingRun.open(inputs(tmp_path), ITEMS[:1], tok, "s.jsonl", EchoBackend()).draw(ExactReward())
    header = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["header"]
    assert header["weights"].startswith("sha256:") and "2 files, 102 bytes" in header["weights"]
    (model / "README.md").write_text("a model card")  # not a model file: still the same model
    assert SamplingRun.open(inputs(tmp_path), ITEMS[:1], tok, "s.jsonl", EchoBackend()).store.records
    (model / "model.safetensors").write_bytes(b"b" * 100)
    with pytest.raises(UserError, match=r"weights: 'sha256:.*the model's files changed.*--overwrite"):
        SamplingRun.open(inputs(tmp_path), ITEMS[:1], tok, "s.jsonl", EchoBackend())
    rerun = SamplingRun.open(inputs(tmp_path, overwrite=True), ITEMS[:1], tok, "s.jsonl", EchoBackend())
    assert rerun.draw(ExactReward())[0] == 2


@pytest.mark.parametrize(
    "changed",
    [
        EvalItem("b", "0", [{"role": "user", "content": "Add 1, 2, 3."}], ["6"]),  # other --addition_terms
        EvalItem("b", "0", [{"role": "user", "content": "Add 1, 2."}], ["4"]),  # another source file's answer
        EvalItem("prompt", "0", [{"role": "user", "content": "Say bye."}], []),  # another --prompt text
    ],
)
def test_saved_samples_of_another_problem_under_the_same_name_are_refused(tmp_path, changed):
    tok = build_tokenizer()
    SamplingRun.open(inputs(tmp_path), ITEMS, tok, "s.jsonl", EchoBackend()).draw(ExactReward())
    items = [changed if (i.benchmark, i.id) == (changed.benchmark, changed.id) else i for i in ITEMS]
    with pytest.raises(UserError, match=rf"other problems under the same names \({changed.benchmark}/0:.*--overwrite"):
        SamplingRun.open(inputs(tmp_path), items, tok, "s.jsonl", EchoBackend())
    again = EchoBackend()
    SamplingRun.open(inputs(tmp_path, overwrite=True), items, tok, "s.jsonl", again).draw(ExactReward())
    assert len(again.asked) == 6


def test_the_addition_terms_change_the_problems_of_a_resumed_eval(tmp_path):
    tok = build_tokenizer()
    first = load_items(inputs(tmp_path, limit=2))
    SamplingRun.open(inputs(tmp_path, limit=2), first, tok, "s.jsonl", EchoBackend()).draw(ExactReward())
    more = load_items(inputs(tmp_path, limit=3))  # more problems of the same task: the saved ones are reused
    again = EchoBackend()
    SamplingRun.open(inputs(tmp_path, limit=3), more, tok, "s.jsonl", again).draw(ExactReward())
    assert again.asked == [("addition", "2", 0), ("addition", "2", 1)]
    other = inputs(tmp_path, limit=3, addition_terms=(5, 6))
    with pytest.raises(UserError, match=r"other problems under the same names \(addition/0"):
        SamplingRun.open(other, load_items(other), tok, "s.jsonl", EchoBackend())
