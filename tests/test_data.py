"""sas_trl.data: training data from local fixtures with the Hub datasets' schemas (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from sas_trl.constants import DEEPSCALER_ID, PROMPT_TEMPLATE
from sas_trl.data import load_deepscaler, load_table
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
