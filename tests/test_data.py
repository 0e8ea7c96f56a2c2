"""Tests for sas_trl.data, on small local fixtures with the Hub datasets' schemas (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from sas_trl.data import (
    DEEPSCALER_ID,
    EVAL_SETS,
    PROMPT_TEMPLATE,
    eval_spec,
    load_deepscaler,
    load_eval_set,
    load_table,
)
from sas_trl.rewards import MathVerifyReward

FIXTURES = Path(__file__).parent / "fixtures"
SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."


def to_parquet(name: str, tmp_path: Path) -> Path:
    """A parquet copy of a jsonl fixture (binary fixtures are built, not committed)."""
    path = tmp_path / (Path(name).stem + ".parquet")
    Dataset.from_json(str(FIXTURES / name)).to_parquet(str(path))
    return path


def test_deepscaler_prompt_and_answer_columns():
    dataset = load_deepscaler(FIXTURES / "deepscaler.jsonl")
    assert dataset.column_names == ["prompt", "answer"]
    assert len(dataset) == 5
    assert dataset[0]["prompt"] == [{"role": "user", "content": "What is $1 + 1$?" + SUFFIX}]
    assert dataset[1]["answer"] == "\\frac{3}{4}"
    assert PROMPT_TEMPLATE.endswith(SUFFIX) and DEEPSCALER_ID == "agentica-org/DeepScaleR-Preview-Dataset"


def test_deepscaler_from_parquet_and_options(tmp_path):
    dataset = load_deepscaler(
        to_parquet("deepscaler.jsonl", tmp_path),
        prompt_template="Q: {problem}",
        prompt_key="question",
        answer_key="gold",
        limit=2,
    )
    assert dataset.column_names == ["question", "gold"]
    assert dataset["question"][1] == [{"role": "user", "content": "Q: Compute $\\frac{1}{2} + \\frac{1}{4}$."}]


def test_deepscaler_custom_columns_and_reward_reads_answer():
    dataset = load_deepscaler(FIXTURES / "deepscaler_no_answer.jsonl", answer_column="final")
    assert dataset["answer"] == ["2", "4"]
    completions = ["ok\n\n</think>\\boxed{2}", "ok\n\n</think>\\boxed{5}"]
    # TRL passes dataset columns to reward functions as keyword arguments.
    assert MathVerifyReward(workers=0)(completions, **{"answer": dataset["answer"]}) == [1.0, 0.0]


def test_missing_column_names_it_and_lists_found():
    with pytest.raises(
        ValueError, match=r"column 'answer' not found.*columns found: \['problem', 'final', 'solution'\]"
    ):
        load_deepscaler(FIXTURES / "deepscaler_no_answer.jsonl")


def test_empty_file_wrong_type_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        load_deepscaler(FIXTURES / "empty.jsonl")
    with pytest.raises(ValueError, match=r"unsupported file type '.csv'.*accepted types are .jsonl, .json, .parquet"):
        load_deepscaler(FIXTURES / "deepscaler.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_deepscaler(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path)  # a directory is not a data file


def test_empty_split_after_filtering(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"problem": "", "answer": "1"}) + "\n")
    with pytest.raises(ValueError, match="row 0 .* 'problem' must be a non-empty string"):
        load_deepscaler(path)
    path.write_text(json.dumps({"problem": "1+1?", "answer": ""}) + "\n")
    with pytest.raises(ValueError, match="row 0 .* 'answer' is empty"):
        load_deepscaler(path)


def test_template_must_have_problem_field():
    with pytest.raises(ValueError, match="{problem}"):
        load_deepscaler(FIXTURES / "deepscaler.jsonl", prompt_template="no field \\boxed{}")


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
