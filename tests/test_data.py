"""sas_trl.data: training data from local fixtures with the Hub datasets' schemas (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from sas_trl.constants import DEEPSCALER_ID, PROMPT_TEMPLATE
from sas_trl.data import load_deepscaler, load_table
from sas_trl.errors import UserError
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
    with pytest.raises(UserError, match="empty"):
        load_deepscaler(FIXTURES / "empty.jsonl")
    with pytest.raises(UserError, match=r"unsupported file type '.csv'.*accepted types are .jsonl, .json, .parquet"):
        load_deepscaler(FIXTURES / "deepscaler.csv")
    with pytest.raises(UserError, match="does not exist"):
        load_deepscaler(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="is not a file"):
        load_table(tmp_path)  # a directory is not a data file


def bad_file(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


GOOD_ROW = json.dumps({"problem": "1+1?", "answer": "2"})


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "rows.jsonl",
            f"{GOOD_ROW}\n{GOOD_ROW}\n" + '{"problem": "2+2?", "answer": \n',
            r"rows.jsonl: line 3: malformed JSON",
        ),
        ("rows.jsonl", f"{GOOD_ROW}\n[1, 2]\n", r"rows.jsonl: line 2: expected one JSON object per line"),
        (
            "rows.json",
            f"[{GOOD_ROW},\n" + '{"problem": "x" "answer": "1"}]',
            r"rows.json: line 2, column \d+: malformed JSON",
        ),
        ("rows.parquet", "problem,answer\n1+1?,2\n", r"rows.parquet is not a parquet file"),
        ("rows.parquet", b"", r"rows.parquet is empty"),
        ("rows.jsonl", "\n\n", r"rows.jsonl is empty"),
        ("rows.jsonl", json.dumps({"problem": None, "answer": "2"}) + "\n", r"row 0 .* 'problem' must be a non-empty"),
        ("rows.jsonl", json.dumps({"problem": "1+1?", "final": "2"}) + "\n", r"column 'answer' not found"),
    ],
)
def test_bad_data_files_raise_one_line_user_errors(tmp_path, name, content, expected):
    with pytest.raises(UserError, match=expected) as error:
        load_deepscaler(bad_file(tmp_path, name, content))
    assert "\n" not in str(error.value)


def test_an_unreachable_hub_dataset_is_a_user_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"Hub dataset nobody/no-such-dataset \(split 'train'\) cannot be loaded") as e:
        load_deepscaler("nobody/no-such-dataset")
    assert "HF_HUB_OFFLINE" in str(e.value) and "\n" not in str(e.value)


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
