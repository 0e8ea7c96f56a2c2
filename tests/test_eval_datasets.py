"""sas_trl.evaluation.datasets: the benchmark registry, normalisation, sources and the built-in `addition`."""

from __future__ import annotations

from pathlib import Path

import pytest

from sas_trl.errors import UserError
from sas_trl.evaluation.datasets import (
    ADDITION_SIZE,
    EVAL_SETS,
    addition_items,
    eval_spec,
    load_benchmark,
    load_eval_set,
    parse_names,
    parse_sources,
    resolve_source,
)
from sas_trl.rewards import MathVerifyReward

FIXTURES = Path(__file__).parent / "fixtures"
MATH500 = FIXTURES / "eval" / "math500.jsonl"
SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."


def test_registry_covers_the_paper_sets():
    assert set(EVAL_SETS) == {"aime24", "aime25", "amc", "math500", "olympiad_bench", "gpqa_diamond", "lsat", "mmlu"}
    assert EVAL_SETS["mmlu"].limit == 500 and EVAL_SETS["olympiad_bench"].config == "OE_TO_maths_en_COMP"
    assert all("/" in spec.source for spec in EVAL_SETS.values())  # Hub ids by default


@pytest.mark.parametrize(
    ("name", "fixture", "first_id", "first_answers"),
    [
        ("aime24", "aime24.jsonl", "60", ["204"]),
        ("aime25", "aime25.jsonl", "0", ["70"]),
        ("amc", "amc.jsonl", "0", ["142"]),
        ("math500", "math500.jsonl", "test/precalculus/807.json", ["\\left( 3, \\frac{\\pi}{2} \\right)"]),
        ("olympiad_bench", "olympiad_bench.json", "1606", ["$3$", "$-3$"]),
    ],
)
def test_math_eval_sets_normalise(name, fixture, first_id, first_answers):
    dataset = load_eval_set(name, source=str(FIXTURES / fixture))
    assert dataset.column_names == ["id", "prompt", "answers"]
    row = dataset[0]
    assert row["id"] == first_id
    assert row["answers"] == first_answers
    assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"].endswith(SUFFIX)


def test_amc_float_answers_are_graded():
    dataset = load_eval_set("amc", source=str(FIXTURES / "amc.jsonl"))
    assert dataset["answers"] == [["142"], ["16"], ["0.25"]]
    completions = ["</think>\\boxed{142}", "</think>\\boxed{16.0}", "</think>\\boxed{\\frac14}"]
    assert MathVerifyReward(workers=0)(completions, answer=dataset["answers"]) == [1.0, 1.0, 1.0]


def test_gpqa_choices_are_shuffled_stably():
    dataset = load_eval_set("gpqa_diamond", source=str(FIXTURES / "gpqa_diamond.jsonl"))
    again = load_eval_set("gpqa_diamond", source=str(FIXTURES / "gpqa_diamond.jsonl"))
    assert dataset["answers"] == again["answers"]
    for row, correct in zip(dataset, ["10^-4 eV", "3", "cyclohexanone"], strict=True):
        (letter,) = row["answers"]
        assert f"({letter}) {correct}\n" in row["prompt"][0]["content"] + "\n"
        assert row["prompt"][0]["content"].count("\n(") == 4
    assert {row["answers"][0] for row in dataset} != {"A"}  # the key is not always the first choice


def test_lsat_and_mmlu_choices():
    lsat = load_eval_set("lsat", source=str(FIXTURES / "lsat.jsonl"))
    assert lsat["answers"] == [["C"], ["A"]]
    content = lsat[0]["prompt"][0]["content"]
    assert content.startswith("Seven students") and "\n\nWhich one" in content and "(C) H and J" in content
    mmlu = load_eval_set("mmlu", source=str(FIXTURES / "mmlu.jsonl"), limit=4, seed=1)
    assert len(mmlu) == 4
    full = load_eval_set("mmlu", source=str(FIXTURES / "mmlu.jsonl"))  # limit 500 > 6 rows: all of them
    assert full["answers"] == [["C"], ["B"], ["A"], ["C"], ["D"], ["A"]]
    assert set(mmlu["id"]) < set(full["id"])


def test_eval_set_errors():
    with pytest.raises(KeyError, match="unknown evaluation set 'aime26'"):
        load_eval_set("aime26")
    with pytest.raises(TypeError, match="unknown EvalSpec field"):
        eval_spec("aime24", sourc="x")
    with pytest.raises(ValueError, match=r"column 'final_answer' not found.*columns found"):
        load_eval_set("olympiad_bench", source=str(FIXTURES / "aime24.jsonl"), problem_columns=("problem",))
    with pytest.raises(ValueError, match="empty"):
        load_eval_set("aime24", source=str(FIXTURES / "empty.jsonl"))


def test_addition_benchmark_is_fixed_and_offline():
    items = addition_items(5)
    assert [i.id for i in items] == ["0", "1", "2", "3", "4"]
    assert items == addition_items(5)  # fixed seed
    assert items[0].messages[0]["content"].startswith("Add ") and items[0].answers[0].isdigit()
    terms = [i.messages[0]["content"].split(".")[0].count(",") + 1 for i in addition_items(50, terms=(2, 3))]
    assert set(terms) <= {2, 3} and len(load_benchmark("addition")) == ADDITION_SIZE
    with pytest.raises(UserError, match="addition_terms"):
        addition_items(3, terms=(5, 2))


def test_benchmark_names_and_sources(tmp_path):
    assert parse_names("aime24, math500,aime24") == ["aime24", "math500"]
    with pytest.raises(UserError, match="known benchmarks: aime24, aime25, amc, math500"):
        parse_names("aime24,gsm8k")
    assert parse_sources(["math500=a.jsonl,amc=b.json", "aime24=c.parquet"]) == {
        "math500": "a.jsonl",
        "amc": "b.json",
        "aime24": "c.parquet",
    }
    for bad in ["math500", "=x.jsonl", "gsm8k=x.jsonl"]:
        with pytest.raises(UserError):
            parse_sources([bad])
    (tmp_path / "math500.jsonl").write_text(MATH500.read_text())
    assert resolve_source("math500", {}, str(tmp_path)) == str(tmp_path / "math500.jsonl")
    assert resolve_source("math500", {"math500": "x.jsonl"}, str(tmp_path)) == "x.jsonl"  # --source wins
    assert resolve_source("aime24", {}, str(tmp_path)) == "HuggingFaceH4/aime_2024"  # not in the folder: the Hub
    items = load_benchmark("math500", data_dir=str(tmp_path), limit=1)
    assert len(items) == 1 and items[0].id == "test/algebra/a.json" and items[0].answers == ["3"]


def test_benchmark_load_failures_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        load_benchmark("math500", {"math500": str(tmp_path / "missing.jsonl")})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="--source aime24=FILE"):
        load_benchmark("aime24")
