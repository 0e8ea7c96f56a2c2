"""`sas-trl analyze-truncation`, sas_trl.evaluation.truncation: cut-and-regrade counts, log-probs, profiles."""

from __future__ import annotations

import json
import math
import re
import shlex
import statistics

import pytest
import torch
import yaml
from cli_helpers import ROOT
from transformers import AutoTokenizer

from sas_trl.cli import main
from sas_trl.core import SASRule
from sas_trl.evaluation.backends import Completion, SamplingSettings
from sas_trl.evaluation.testbed import (
    CRITERIA,
    check_criteria,
    label_summary,
    mixed_group_share,
    selection_against_labels,
)
from sas_trl.evaluation.truncation import TruncationConfig, confidence_profile, run_truncation, summary_text
from sas_trl.step_labels import CORRECT, DOUBLE_CHECK, REDUNDANT, WRONG
from sas_trl.task import plain_solution, sample_problems

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


def test_mixed_group_share_counts_mislabelled_rollouts_beside_a_short_budget_success():
    groups = ["a", "a", "b", "b", "c", "c"]
    mislabelled = [True, False, True, False, True, True]
    short_correct = [False, True, False, False, False, False]  # only group a holds a success at the short budget
    assert mixed_group_share(groups, mislabelled, short_correct) == pytest.approx(1 / 4)
    assert mixed_group_share(groups, [False] * 6, short_correct) is None


def test_selection_against_labels_hand_values():
    c, w, r = CORRECT, WRONG, REDUNDANT
    labels = [(c, c, r, c), (c, w, w), (c, r)]
    zeroed = torch.tensor([[False, True, True, False], [True, True, False, False], [True, False, False, False]])
    num_steps = torch.tensor([4, 3, 3])  # the last rollout's steps do not match its labels: left out
    out = selection_against_labels(labels, zeroed, num_steps, correct=[False, True, True])
    # Failed rollout 0 shields steps 1 and 2 (correct, redundant); correct rollout 1 zeroes steps 0, 1 (c, w).
    assert out == {
        "rollouts": 2,
        "left_out": 1,
        "shielded_steps": 2,
        "shielded_correct": 0.5,
        "zeroed_steps": 2,
        "zeroed_redundant_or_wrong": 0.5,
        # What a selection blind to the labels would get: rollout 0's 4 steps (3 correct), rollout 1's 3 (2 wrong).
        "failed_steps_correct": 3 / 4,
        "correct_steps_redundant_or_wrong": 2 / 3,
    }
    assert label_summary(labels) == {"rollouts": 3, "steps": 9, "correct": 5 / 9, "wrong": 2 / 9, "redundant": 2 / 9}


def test_criteria_are_printed_next_to_their_targets():
    results = {"pass_at_1": 0.55, "median_steps": 7.0, "flipped_fraction": None}
    checked = {c["key"]: c for c in check_criteria(results)}
    assert checked["pass_at_1"]["holds"] is True and checked["pass_at_1"]["target"] == "0.4 to 0.8"
    assert checked["median_steps"]["holds"] is False and checked["median_steps"]["target"] == ">= 8"
    assert checked["flipped_fraction"]["holds"] is None and checked["impossible_prompts"]["target"] == "0"
    assert set(checked) == {c.key for c in CRITERIA}


class PlainAndChecked(WorkedSolutions):
    """Sample 0 of a problem is its solution without redundancy, sample 1 the same with a double-check after every
    step: one group, two lengths."""

    def __init__(self, tokenizer, limit: int):
        super().__init__(tokenizer, limit)
        self.plain = [plain_solution(p.terms) for p in self.problems]

    def completion(self, index: int, sample: int) -> str:
        plain = self.plain[index]
        if sample == 0:
            return plain.completion
        checked = [part for s in plain.steps for part in (s, DOUBLE_CHECK + s)]
        return type(plain)(plain.terms, tuple(checked)).completion

    def generate(self, requests, settings):
        out = []
        for r in requests:
            text = self.completion(int(r.key[1]), r.key[2])
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            ids = ids[: settings.max_tokens]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out.append(Completion(r.key, text, ids, "stop" if ids[-1] == self.tokenizer.eos_token_id else "length"))
        yield out


def test_truncation_reports_groups_steps_labels_and_criteria_on_the_built_in_task(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    backend = PlainAndChecked(tokenizer, limit=6)
    length = [[len(tokenizer(backend.completion(i, j))["input_ids"]) + 1 for j in (0, 1)] for i in range(6)]
    short = max(plain for plain, _ in length)  # every solution without redundancy fits
    config = TruncationConfig(
        model=str(tiny_model_dir),
        benchmarks=["addition"],
        n=2,
        limit=6,
        sampling=SamplingSettings(max_tokens=400),
        short_tokens=short,
        output_dir=str(tmp_path),
        progress=False,
        sas=SASRule(ratio=0.3, strategy="both"),
    )
    results = run_truncation(config, backend=backend)
    cut = sum(checked > short for _, checked in length)
    assert results["pass_at_1"] == 1.0 and results["flipped"] == cut > 0
    assert results["mislabelled_in_mixed_groups"] == 1.0  # each cut one sits beside its plain twin, correct
    steps = [len(backend.plain[i].steps) * k for i in range(6) for k in (1, 2)]
    assert results["median_steps"] == pytest.approx(statistics.median(steps))
    assert results["impossible_prompts"] == 0 and results["builtin_prompts"] == 6
    labels = results["step_labels"]
    assert labels["wrong"] == 0 and labels["redundant"] == pytest.approx(1 / 3)  # half the checked twin's steps
    chosen = results["selection_vs_labels"]
    assert chosen["left_out"] == 0 and chosen["rollouts"] == 12
    # Correct rollouts (the plain ones, the checked ones that fit) each have ceil(0.3 N) of their N steps zeroed.
    correct_steps = [k * len(backend.plain[i].steps) for i in range(6) for k in (1, 2) if length[i][k - 1] <= short]
    assert chosen["zeroed_steps"] == sum(math.ceil(0.3 * n) for n in correct_steps)
    assert 0 <= chosen["zeroed_redundant_or_wrong"] <= 1
    assert chosen["shielded_steps"] > 0 and 0 < chosen["shielded_correct"] < 1  # cut twins: correct and redundant
    criteria = {c["key"]: c["holds"] for c in results["criteria"]}
    assert criteria["impossible_prompts"] is True and criteria["mislabelled_in_mixed_groups"] is True
    assert criteria["pass_at_1"] is False  # 100%: no headroom
    text = summary_text(results)
    assert "Testbed criteria" in text and "Pass@1 at the long budget (headroom): 1 (target 0.4 to 0.8): FAILS" in text
    assert "% redundant" in text and "steps it shields in failed rollouts" in text
    assert json.loads((tmp_path / "truncation.json").read_text())["criteria"] == results["criteria"]


def test_analyze_truncation_on_the_built_in_model_needs_its_recipe(tmp_path, capsys):
    args = ["analyze-truncation", "--model", "builtin:tiny", "--benchmarks", "addition"]
    assert main([*args, "--output_dir", str(tmp_path)]) == 2
    assert "--model builtin:tiny needs --recipe" in capsys.readouterr().err


def test_analyze_truncation_measures_a_recipe_s_starting_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAS_TRL_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "start.yaml"
    recipe.write_text(f"base: {ROOT / 'recipes' / 'tiny_cpu.yaml'}\nsft_warmup_steps: 2\nbuiltin_max_terms: 3\n")
    monkeypatch.chdir(tmp_path)
    args = ["analyze-truncation", "--model", "builtin:tiny", "--recipe", str(recipe), "--benchmarks", "addition"]
    args += ["--limit", "2", "--n", "2", "--long_tokens", "16", "--short_tokens", "8", "--no_progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "warm-up of builtin:tiny on the built-in task, 2 steps" in out and "Testbed criteria" in out
    results = json.loads((tmp_path / "truncation_results" / "start" / "truncation.json").read_text())
    assert results["model"].startswith(str(tmp_path / "cache" / "warmup"))
    assert results["builtin_prompts"] == 2 and "selection_vs_labels" in results
    samples = (tmp_path / "truncation_results" / "start" / "truncation_samples.jsonl").read_text()
    assert "Add " in samples  # the recipe's addends (2..3): at most 3 numbers per question
    assert all(q.count(",") <= 2 for q in re.findall(r"Add ([\d, ]+)\.", samples))


def command_under(path: str, heading: str) -> str:
    section = (ROOT / path).read_text().split(heading, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return next(c for c in block.splitlines() if c.startswith("sas-trl analyze-truncation"))


def readme_testbed_command() -> list[str]:
    """The testbed's command as the README gives it; docs/testbed.md gives the same one."""
    line = command_under("README.md", "### The testbed")
    assert line == command_under("docs/testbed.md", "## Measure the criteria")
    return shlex.split(line)[1:]


def test_the_readme_testbed_command_measures_the_study_s_starting_model_at_its_budgets():
    from sas_trl.training.recipes import parse

    args = readme_testbed_command()
    flag = {name: args[i + 1] for i, name in enumerate(args) if name.startswith("--")}
    assert flag["--model"] == "builtin:tiny" and flag["--recipe"] == "recipes/studies/testbed_base.yaml"
    run_args, train_args, _, _ = parse(["--recipe", str(ROOT / flag["--recipe"])])
    # The study file read as YAML: `load_study` checks its oracle conditions (tests/test_compare_study.py).
    study = yaml.safe_load((ROOT / "recipes" / "studies" / "testbed.yaml").read_text())
    assert study["base_recipe"] == flag["--recipe"]
    # The criteria are measured on training's rollouts: its sampling, its group size and its two budgets.
    assert float(flag["--temperature"]) == train_args.temperature and float(flag["--top_p"]) == train_args.top_p
    assert int(flag["--n"]) == train_args.num_generations
    assert int(flag["--short_tokens"]) == train_args.max_completion_length
    assert int(flag["--long_tokens"]) == study["conditions"]["grpo_long"]["max_completion_length"]
    assert int(flag["--long_tokens"]) == study["eval"]["max_tokens"]
    assert study["eval"]["addition_terms"] == [run_args.builtin_min_terms, run_args.builtin_max_terms]


def test_the_readme_testbed_command_runs(tmp_path, monkeypatch, capsys):
    args = readme_testbed_command()
    monkeypatch.setenv("SAS_TRL_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "testbed_base.yaml"  # the testbed with a 2-step warm-up: the command, not the model, is tested
    recipe.write_text(f"base: {ROOT / args[args.index('--recipe') + 1]}\nsft_warmup_steps: 2\n")
    args[args.index("--recipe") + 1] = str(recipe)
    args[args.index("--limit") + 1] = "2"
    args[args.index("--n") + 1] = "2"
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--no_progress"]) == 0
    out = capsys.readouterr().out
    for criterion in CRITERIA:
        assert f"  {criterion.text}: " in out and f"(target {criterion.target()})" in out
    results = json.loads((tmp_path / "truncation_results" / "testbed_base" / "truncation.json").read_text())
    assert results["impossible_prompts"] == 0 and results["settings"]["short_tokens"] == 104
