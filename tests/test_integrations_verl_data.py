"""`sas-trl verl-data`: verl's parquet rows from fixture rows of DeepScaleR and AIME (no verl, no Hub)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sas_trl.cli import main
from sas_trl.constants import PROMPT_SUFFIX
from sas_trl.errors import UserError
from sas_trl.integrations import verl_data

FIXTURES = Path(__file__).parent / "fixtures"


def read(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_writes_the_files_recipes_verl_reads_from_local_files(tmp_path, capsys):
    out = tmp_path / "deepscaler"
    code = main(
        [
            "verl-data",
            "--output_dir",
            str(out),
            "--train_source",
            str(FIXTURES / "deepscaler.jsonl"),
            "--benchmarks",
            "aime24",
            "--source",
            f"aime24={FIXTURES / 'aime24.jsonl'}",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["aime24.parquet", "train.parquet"]  # no .partial left
    train = read(out / "train.parquet")
    problems = [json.loads(line) for line in (FIXTURES / "deepscaler.jsonl").read_text().splitlines()]
    assert len(train) == len(problems)
    first = train[0]
    assert first["data_source"] == "deepscaler" and first["ability"] == "math"
    assert first["prompt"] == [{"role": "user", "content": problems[0]["problem"] + PROMPT_SUFFIX}]
    assert first["reward_model"] == {"style": "rule", "ground_truth": problems[0]["answer"]}
    assert [row["extra_info"]["index"] for row in train] == list(range(len(problems)))
    aime = read(out / "aime24.parquet")
    gold = [json.loads(line) for line in (FIXTURES / "aime24.jsonl").read_text().splitlines()]
    assert [row["reward_model"]["ground_truth"] for row in aime] == [g["answer"] for g in gold]
    assert [row["extra_info"]["id"] for row in aime] == [str(g["id"]) for g in gold]
    assert {row["data_source"] for row in aime} == {"aime24"}
    assert aime[0]["prompt"][0]["content"].endswith(PROMPT_SUFFIX)
    assert f"wrote {out / 'train.parquet'} ({len(problems)} rows)" in capsys.readouterr().out


def test_the_rows_grade_with_the_recipes_reward():
    from sas_trl.integrations.verl_reward import compute_score

    (row,) = verl_data.train_rows(str(FIXTURES / "deepscaler.jsonl"), limit=1)
    answer = row["reward_model"]["ground_truth"]
    assert compute_score(row["data_source"], f"So.\n\n</think>\n\\boxed{{{answer}}}", answer) == 1.0


def test_several_accepted_answers_make_every_ground_truth_a_list(tmp_path):
    rows = verl_data.benchmark_rows("olympiad_bench", {"olympiad_bench": str(FIXTURES / "olympiad_bench.json")})
    truths = [row["reward_model"]["ground_truth"] for row in rows]
    assert all(isinstance(t, list) for t in truths) and any(len(t) > 1 for t in truths)
    verl_data.write([verl_data.VerlFile(tmp_path / "o.parquet", rows)])
    assert [r["reward_model"]["ground_truth"] for r in read(tmp_path / "o.parquet")] == truths


def test_existing_files_are_kept_unless_overwrite(tmp_path):
    (tmp_path / "train.parquet").write_text("mine")
    source = str(FIXTURES / "deepscaler.jsonl")
    with pytest.raises(UserError, match=r"train.parquet already exist.*--overwrite"):
        verl_data.plan(tmp_path, source, [])
    assert (tmp_path / "train.parquet").read_text() == "mine"
    verl_data.write(verl_data.plan(tmp_path, source, [], limit=2, overwrite=True))
    assert len(read(tmp_path / "train.parquet")) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--benchmarks", "gpqa_diamond", "--train_source", "none"], "'gpqa_diamond' is not a free-form math"),
        (["--benchmarks", "aime42"], "unknown benchmark(s) aime42"),
        (["--benchmarks", "", "--train_source", "none"], "nothing to write"),
        (["--train_source", "missing.jsonl", "--benchmarks", ""], "'missing.jsonl' does not exist"),
        (["--train_source", str(FIXTURES / "deepscaler_no_answer.jsonl")], "column 'answer' not found"),
        (["--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_bad_input_is_one_line_naming_it(argv, message, tmp_path, capsys):
    assert main(["verl-data", "--output_dir", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
