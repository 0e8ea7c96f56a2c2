"""`sas-trl analyze-truncation`, sas_trl.evaluation.truncation: cut-and-regrade counts, log-probs, profiles."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from sas_trl.cli import main
from sas_trl.evaluation.backends import Completion, SamplingSettings
from sas_trl.evaluation.truncation import TruncationConfig, confidence_profile, run_truncation
from sas_trl.task import sample_problems

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_confidence_profile_hand_values():
    # Trace 0: 4 steps with confidences -1, -0.5, -0.25, -2 (two tokens each, then 2 tokens outside steps).
    # Trace 1: 2 steps with confidences -3, -1 (one token each), then padding.
    step_ids = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3, -1, -1], [0, 1, -1, -1, -1, -1, -1, -1, -1, -1]])
    logps = torch.tensor([[-1.5, -0.5, -0.5, -0.5, -0.25, -0.25, -2.0, -2.0, -9.0, -9.0], [-3.0, -1.0] + [-9.0] * 8])
    failed = confidence_profile(step_ids, logps, is_correct=False, rule=0.3)
    assert failed["traces"] == 2 and failed["steps_per_trace"] == pytest.approx(3.0)
    assert [(p["step"], p["count"]) for p in failed["by_position"]] == [(0, 2), (1, 2), (2, 1), (3, 1)]
    assert failed["by_position"][0]["mean_confidence"] == pytest.approx(-2.0)  # (-1 + -3) / 2
    assert failed["by_position"][1]["mean_confidence"] == pytest.approx(-0.75)  # (-0.5 + -1) / 2
    # Deciles: trace 0's steps j = 0..3 of N = 4 fall in 0, 2, 5, 7; trace 1's j = 0, 1 of N = 2 in 0 and 5.
    by_decile = {d["decile"]: d for d in failed["by_decile"]}
    assert [d for d, v in by_decile.items() if v["count"]] == [0, 2, 5, 7]
    assert by_decile[5]["mean_confidence"] == pytest.approx((-0.25 + -1.0) / 2) and by_decile[5]["count"] == 2
    assert by_decile[1]["mean_confidence"] is None and by_decile[1]["sas_zeroed"] is None
    # Failed side, r = 0.3: trace 0 zeroes 4 - ceil(2.8) = 1 step (the most confident, step 2 at -0.25);
    # trace 1 zeroes 2 - ceil(1.4) = 0.
    assert by_decile[5]["sas_zeroed"] == pytest.approx(0.5) and by_decile[0]["sas_zeroed"] == 0.0
    assert by_decile[2]["sas_zeroed"] == 0.0 and by_decile[7]["sas_zeroed"] == 0.0
    correct = confidence_profile(step_ids, logps, is_correct=True, rule=0.3)
    # Correct side: ceil(1.2) = 2 least confident of trace 0 (steps 3 and 0), ceil(0.6) = 1 of trace 1 (step 0).
    zeroed = {d["decile"]: d["sas_zeroed"] for d in correct["by_decile"] if d["count"]}
    assert zeroed == {0: 1.0, 2: 0.0, 5: 0.0, 7: 1.0}


class WorkedSolutions:
    """Returns each addition problem's worked solution (correct) as the completion; lengths vary with the problem."""

    def __init__(self, tokenizer, limit: int):
        from sas_trl.evaluation.datasets import ADDITION_SEED

        self.tokenizer = tokenizer
        self.problems = sample_problems(limit, ADDITION_SEED)

    def ids(self, index: int) -> list[int]:
        text = self.problems[index].completion
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def generate(self, requests, settings):
        out = []
        for r in requests:
            ids = self.ids(int(r.key[1]))[: settings.max_tokens]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out.append(Completion(r.key, text, ids, "stop" if ids[-1] == self.tokenizer.eos_token_id else "length"))
        yield out


def test_truncation_counts_and_outputs(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    backend = WorkedSolutions(tokenizer, limit=12)
    lengths = [len(backend.ids(i)) for i in range(12)]
    short = sorted(lengths)[6]  # about half the solutions do not fit
    config = TruncationConfig(
        model=str(tiny_model_dir),
        benchmarks=["addition"],
        n=1,
        limit=12,
        sampling=SamplingSettings(max_tokens=200),
        short_tokens=short,
        output_dir=str(tmp_path),
        progress=False,
    )
    results = run_truncation(config, backend=backend)
    cut = [n for n in lengths if n > short]
    assert results["samples"] == 12 and results["correct_long"] == 12  # worked solutions are all correct
    assert results["fit_short"] == 12 - len(cut) and results["cut"] == len(cut) > 0
    # A cut solution loses at least its boxed answer (the last tokens), so every cut trace fails.
    assert results["flipped"] == len(cut) and results["flipped_fraction"] == pytest.approx(len(cut) / 12)
    assert results["tokens_lost_all"] == [n - short for n in lengths if n > short]
    assert results["tokens_lost"]["max"] == max(cut) - short
    think_end = tokenizer.convert_tokens_to_ids("</think>")
    closed = [think_end in backend.ids(i)[:short] for i in range(12) if lengths[i] > short]
    assert results["flipped_lost_only_answer"] == pytest.approx(sum(closed) / len(closed))
    flipped, fit = results["profiles"]["flipped"], results["profiles"]["fit"]
    assert flipped["traces"] == len(cut) and fit["traces"] == 12 - len(cut)
    assert sum(d["count"] for d in flipped["by_decile"]) == pytest.approx(flipped["steps_per_trace"] * len(cut))
    assert all(d["mean_confidence"] is None or d["mean_confidence"] < 0 for d in flipped["by_decile"])
    saved = json.loads((tmp_path / "truncation.json").read_text())
    assert saved["flipped"] == results["flipped"]
    assert saved["settings"]["long_tokens"] == config.long_tokens == 200 and saved["settings"]["temperature"] == 0.6
    png = (tmp_path / "truncation.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_truncation_cli_end_to_end(tiny_model_dir, tmp_path, capsys):
    args = ["analyze-truncation", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "3"]
    args += ["--n", "2", "--long_tokens", "24", "--short_tokens", "8", "--output_dir", str(tmp_path)]
    assert main([*args, "--no_progress", "--num_threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 samples at 24 tokens" in out and "truncation.png" in out
    results = json.loads((tmp_path / "truncation.json").read_text())
    assert results["samples"] == 6 and results["settings"]["short_tokens"] == 8
    assert (tmp_path / "truncation.png").read_bytes().startswith(PNG_MAGIC)
    lines = (tmp_path / "truncation_samples.jsonl").read_text().splitlines()
    assert len(lines) == 7 and all(len(json.loads(line)["token_ids"]) <= 24 for line in lines[1:])


def test_truncation_bad_budgets(tiny_model_dir, tmp_path, capsys):
    args = [
        "analyze-truncation",
        "--model",
        str(tiny_model_dir),
        "--benchmarks",
        "addition",
        "--output_dir",
        str(tmp_path),
    ]
    assert main([*args, "--long_tokens", "8", "--short_tokens", "8"]) == 2
    assert "--short_tokens < --long_tokens" in capsys.readouterr().err
    assert main(["analyze-truncation", "--model", str(tiny_model_dir), "--benchmarks", "gsm8k"]) == 2
    assert "known benchmarks" in capsys.readouterr().err
    assert main([*args, "--sas_ratio", "1.5"]) == 2
    assert "sas_ratio=1.5 is not valid" in capsys.readouterr().err
    assert not (tmp_path / "truncation_samples.jsonl").exists()
