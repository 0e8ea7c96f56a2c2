"""sas_trl.compare.study and `sas-trl compare`: the study file is checked completely before anything runs."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.cli import main
from sas_trl.compare import build_report, load_study, plan_runs, runner
from sas_trl.compare.runner import print_commands
from sas_trl.compare.study import MAX_RUNS
from sas_trl.errors import UserError
from sas_trl.training.recipes import parse

BASE = "recipes/studies/tiny_smoke_base.yaml"


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # base_recipe paths are relative to the current directory, like --recipe


def study_file(tmp_path, **changes) -> str:
    study = {
        "base_recipe": BASE,
        "output_dir": str(tmp_path / "out"),
        "seeds": [0, 1, 2],
        "reference": "grpo",
        "conditions": {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}},
        "eval": {"benchmarks": "addition", "n": 2, "max_tokens": 16},
    }
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in study.items() if v is not None}))
    return str(path)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"seed": [0]}, "unknown key 'seed'; did you mean 'seeds'"),
        ({"reference": None}, "missing reference"),
        ({"reference": "gpro"}, "reference 'gpro' is not a condition; conditions: grpo, sas"),
        ({"seeds": []}, "seeds must be a non-empty list of integers"),
        ({"seeds": [0, 0]}, "seeds must be distinct"),
        ({"seeds": [0, -1]}, r"line \d+: seed -1 is not valid; allowed values: an integer >= 0 and <= 4294967295"),
        ({"seeds": [2**32]}, "seed 4294967296 is not valid"),
        (
            {"seeds": list(range(MAX_RUNS))},
            rf"2 condition\(s\) x {MAX_RUNS} seed\(s\) = {2 * MAX_RUNS} runs, more than",
        ),
        ({"seeds": "0, 1"}, "seeds must be a non-empty list of integers, got '0, 1'"),
        ({"base_recipe": [BASE]}, "base_recipe must be text"),
        ({"output_dir": ["a", "b"]}, "output_dir must be text"),
        ({"reference": ["grpo"]}, "reference must be text"),
        ({"base_recipe": "recipes/nope.yaml"}, "base_recipe 'recipes/nope.yaml' not found"),
        ({"conditions": {"grpo": {"sas_ratoi": 0.5}}}, "condition 'grpo': unknown key 'sas_ratoi'.*'sas_ratio'"),
        ({"conditions": {"grpo": {"sas_ratio": 2.0}}}, "condition 'grpo': sas_ratio=2.0 is not valid"),
        ({"conditions": {"grpo": {"seed": 3}}}, "condition 'grpo' sets 'seed', which the study sets for each run"),
        ({"conditions": {"a b": {}}}, "condition name 'a b'"),
        ({"eval": {"n": "many"}}, "eval: argument --n: invalid int value: 'many'"),
        (
            {"eval": {"benchmarks": "addition", "n": 2, "pass_k": [4]}},
            r"eval: --pass_k values must lie in 1\.\.n \(n = 2\), got \[4\]",
        ),
        ({"eval": {"benchmarks": "aime2024"}}, "eval: unknown benchmark"),
        ({"eval": {"model": "x"}}, "eval sets 'model', which the study sets for each run"),
    ],
)
def test_bad_study_files_fail_in_one_line_before_anything_runs(tmp_path, capsys, changes, expected):
    code = main(["compare", "--study", study_file(tmp_path, **changes)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


STUDY_TEXT_ERRORS = {
    "a condition twice": (
        "conditions:\n  sas: {sas_ratio: 0.3}\n  sas: {sas_ratio: 0.5}\n",
        "key 'sas' appears twice",
    ),
    "1 and '1'": ("conditions:\n  1: {sas_ratio: 0.3}\n  '1': {sas_ratio: 0.5}\n", "key '1' appears twice"),
    "a top-level key twice": ("seeds: [0]\nseeds: [1]\n", "key 'seeds' appears twice"),
    "a condition key twice": (
        "conditions:\n  sas: {sas_ratio: 0.3, sas_ratio: 0.5}\n",
        "key 'sas_ratio' appears twice",
    ),
}


@pytest.mark.parametrize("case", list(STUDY_TEXT_ERRORS))
def test_a_study_file_with_a_repeated_key_is_refused(tmp_path, capsys, case):
    text, expected = STUDY_TEXT_ERRORS[case]
    path = tmp_path / "study.yaml"
    path.write_text(f"base_recipe: {BASE}\nreference: sas\n{text}")
    assert main(["compare", "--study", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and expected in err, err


@pytest.mark.parametrize("flag", [[], ["--print_commands"], ["--prepare_only"]])
def test_a_bad_seed_fails_before_the_warm_up_and_base_evaluation(tmp_path, capsys, monkeypatch, flag):
    def tripwire(*args, **kwargs):
        raise AssertionError("reached the starting model before the bad seed was reported")

    monkeypatch.setattr(runner, "prepare_starting_model", tripwire)
    monkeypatch.setattr(runner, "_run_logged", tripwire)
    code = main(["compare", "--study", study_file(tmp_path, seeds=[3, 1, -2]), *flag])
    err = capsys.readouterr().err
    assert code == 2 and "seed -2 is not valid" in err and "re-run" not in err.lower(), err
    assert not (tmp_path / "out").exists()


def test_print_commands_gives_one_self_contained_line_per_run(tmp_path, capsys, tiny_model_dir):
    assert main(["compare", "--study", study_file(tmp_path), "--print_commands"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("sas-trl compare --study") and lines[0].endswith("--prepare_only")
    assert lines[1].startswith("sas-trl eval --model") and "base_eval" in lines[1]
    runs = lines[2:]
    assert len(runs) == 2 * 3
    study = load_study(study_file(tmp_path))
    shutil.copytree(tiny_model_dir, study.output_dir / "base_model")  # built by --prepare_only, the first line
    for line, run in zip(runs, plan_runs(study), strict=True):
        train, evaluate = (shlex.split(part) for part in line.split(" && "))
        assert train[:3] == ["sas-trl", "train", "--recipe"] and train[-2:] == ["--resume_from_checkpoint", "last"]
        assert evaluate[evaluate.index("--model") + 1] == str(run.dir)
        _, args, model_args, _ = parse(["--recipe", train[3]])  # each run's recipe is a valid recipe
        assert args.seed == run.seed and args.output_dir == str(run.dir)
        assert model_args.model_name_or_path == str(study.output_dir.resolve() / "base_model")
        assert args.sas_strategy == ("none" if run.condition == "grpo" else "both")


def test_a_changed_study_does_not_mix_with_runs_made_before(tmp_path):
    load = load_study(study_file(tmp_path))
    print_commands(load)  # writes each run's recipe
    changed = load_study(
        study_file(tmp_path, conditions={"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.5}})
    )
    with pytest.raises(UserError, match="made with a different recipe"):
        print_commands(changed)


def fake_results(run, pass1: float, tokens: float) -> None:
    run.eval_dir.mkdir(parents=True)
    average = {"pass@1": pass1, "mean_tokens": tokens, "truncated": 0.1, "aes": 0.2}
    (run.eval_dir / "eval_results.json").write_text(json.dumps({"average": average}))
    history = [{"step": s, "reward": pass1 * s, "completions/mean_length": tokens} for s in (1, 2, 3)]
    (run.dir / "log_history.json").write_text(json.dumps(history))


def test_report_from_whatever_results_exist(tmp_path):
    study = load_study(study_file(tmp_path))
    runs = {(r.condition, r.seed): r for r in plan_runs(study)}
    for seed, (g, s) in enumerate([(0.50, 0.60), (0.40, 0.55), (0.45, 0.45)]):
        fake_results(runs[("grpo", seed)], g, 20.0)
        if seed < 2:
            fake_results(runs[("sas", seed)], s, 18.0)  # the third sas run has not finished
    results = build_report(study)
    sas = results["conditions"]["sas"]
    assert sas["summary"]["pass@1"]["n"] == 2 and sas["summary"]["pass@1"]["mean"] == pytest.approx(0.575)
    assert sas["vs_reference"]["pass@1"]["n"] == 2 and sas["vs_reference"]["pass@1"]["mean"] == pytest.approx(0.125)
    assert results["missing"] == ["sas seed 2"]
    report = (study.output_dir / "report.md").read_text()
    assert "| grpo | 45.00 ± 5.00 [" in report and "(n=3)" in report
    assert "+12.50 [" in report and "p=" in report  # a difference always comes with its interval
    assert "Runs without results yet (1): sas seed 2" in report
    for plot in ("training_curves.png", "accuracy_vs_length.png"):
        assert (study.output_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_condition_keeps_its_colour_in_every_training_curve_panel(tmp_path, monkeypatch):
    """The legend is the first panel's: in a panel that only some conditions log (GRPO shields no step), the
    others must not take the missing condition's colour."""
    from sas_trl.compare import report

    study = load_study(study_file(tmp_path))
    for run in plan_runs(study):
        run.dir.mkdir(parents=True)
        history = [{"step": s, "reward": 0.5} for s in (1, 2)]
        if run.condition == "sas":  # logged by SAS only
            history = [{**e, "sas/zeroed_frac_failed": 0.2} for e in history]
        (run.dir / "log_history.json").write_text(json.dumps(history))
    figures = []
    monkeypatch.setattr(report, "save_figure", lambda fig, path, **kw: figures.append(fig))
    report.plot_curves(study, tmp_path / "curves.png")
    (figure,) = figures
    colours = {}
    for ax in figure.axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert set(colours) == {"grpo (n=3)", "sas (n=3)"}
    assert all(len(c) == 1 for c in colours.values()) and colours["grpo (n=3)"] != colours["sas (n=3)"]


def test_the_shipped_studies_are_valid():
    studies = [p for p in (ROOT / "recipes" / "studies").glob("*.yaml") if not p.stem.endswith("_base")]
    assert {p.stem for p in studies} >= {"tiny_smoke", "short_context_A", "short_context_B"}
    for path in studies:
        study = load_study(path.relative_to(ROOT))
        assert len(study.seeds) >= 2 and study.reference in study.conditions
    for regime in "AB":  # the study's design: at least 5 seeds and the six conditions it reports
        study = load_study(f"recipes/studies/short_context_{regime}.yaml")
        assert len(study.seeds) >= 5
        assert set(study.conditions) == {
            "grpo_long",
            "grpo_short",
            "sas",
            "sas_only_correct",
            "sas_failed_truncated",
            "sas_release",
        }


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith("sas-trl compare: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("eval/eval_results.json", '{"average": {"pass@1": 0.5, "mean_to', "eval_results.json is not a readable"),
        ("eval/eval_results.json", b"\xff\xfe", "eval_results.json is not a readable"),
        ("eval/eval_results.json", "[1, 2]", "no 'average' mapping"),
        ("eval/eval_results.json", '{"average": {"pass@1": "high", "mean_tokens": 3}}', "'pass@1' is not a number"),
        ("eval/eval_results.json", '{"average": {"pass@1": true, "mean_tokens": 3}}', "'pass@1' is not a number"),
        ("eval/eval_results.json", '{"average": {"pass@1": NaN, "mean_tokens": 3}}', "'pass@1' is not a number"),
        ("eval/eval_results.json", '{"average": {"pass@1": 0.5}}', "lacks 'pass@1' or 'mean_tokens'"),
        ("log_history.json", '[{"step": 1, "reward": 0.5}, {"step": 2, "rew', "log_history.json is not a readable"),
        ("log_history.json", '{"step": 1}', "the log history is not a list"),
        ("log_history.json", '[{"step": "one", "reward": 0.5}]', "log entry 1: 'step' is not a number"),
        ("log_history.json", '[{"step": 1, "reward": [0.5]}]', "log entry 1: 'reward' is not a number"),
    ],
)
def test_report_only_names_a_damaged_result_or_log_file(tmp_path, capsys, file, content, expected):
    path = study_file(tmp_path)
    study = load_study(path)
    run = plan_runs(study)[0]
    fake_results(run, 0.5, 20.0)
    (run.dir / file).parent.mkdir(parents=True, exist_ok=True)
    (run.dir / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["compare", "--study", path, "--report_only"]) == 2
    line = one_error_line(capsys)
    assert str(run.dir / file) in line and expected in line, line


def test_a_study_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "out").write_text("kept")
    assert main(["compare", "--study", study_file(tmp_path), "--print_commands"]) == 2
    assert "output_dir" in one_error_line(capsys) and (tmp_path / "out").read_text() == "kept"


def test_a_second_compare_on_the_same_study_folder_says_who_holds_it(tmp_path, capsys):
    import os
    import socket
    import subprocess
    import sys

    from sas_trl.compare.runner import study_lock

    path = study_file(tmp_path)
    with study_lock(load_study(path)):
        assert main(["compare", "--study", path, "--report_only"]) == 2
        line = one_error_line(capsys)
        holder = f"pid {os.getpid()} on host {socket.gethostname()} since "
        assert f"study folder {tmp_path / 'out'} is in use by another sas-trl compare ({holder}" in line
        other = subprocess.run(
            [sys.executable, "-m", "sas_trl.cli", "compare", "--study", path, "--print_commands"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert other.returncode == 2 and holder in other.stderr and "Traceback" not in other.stderr
        assert not (tmp_path / "out" / "runs").exists()  # the second process wrote nothing
    assert main(["compare", "--study", path, "--print_commands"]) == 0  # released with the first


def test_the_decisive_studies_state_their_design_before_running():
    # Regime A runs without a pilot, a trajectory or the long-budget ceiling of its own (the budget went to B's).
    for regime, extra in (("B", {"grpo_long", "sas_overlong_filter", "dapo_overlong"}), ("A", set())):
        study = load_study(f"recipes/studies/decisive_{regime}.yaml")
        assert len(study.seeds) >= 10 and study.reference == "grpo_short"
        assert set(study.conditions) == {"grpo_short", "grpo_overlong_filter", "sas"} | extra
        assert study.conditions["grpo_overlong_filter"]["mask_truncated_completions"] is True
        assert study.power.effect == 0.02 and study.power.metric == "pass@1"
        assert study.power.primary == (("sas", "grpo_short"), ("sas", "grpo_overlong_filter"))
        if regime == "A":
            assert study.power.pilot is None and study.trajectory is None
            continue
        assert study.trajectory is not None and len(study.trajectory.steps["sas"]) >= 5  # enough to see a late drop
        pilot = load_study(f"recipes/studies/decisive_{regime}_pilot.yaml")
        assert study.power.pilot == pilot.output_dir  # the main study plans from this pilot's results
        # The pilot measures what the study will run: same base, conditions, evaluation and trajectory.
        assert (pilot.base_recipe, pilot.conditions, pilot.eval_options) == (
            study.base_recipe,
            study.conditions,
            study.eval_options,
        )
        assert pilot.trajectory == study.trajectory and not set(pilot.seeds) & set(study.seeds)
    dapo = load_study("recipes/studies/decisive_B.yaml").conditions["dapo_overlong"]
    assert dapo["reward_funcs"] == ["accuracy", "dapo_overlong"] and dapo["reward_weights"] == [2.0, 1.0]


def test_the_smoke_study_starts_from_a_model_with_something_to_learn():
    # Greedy accuracy of the warmed-up model is ~0.9 on its 2-addend problems but rollouts at temperature 0.7
    # disagree within groups; a 0% model (the old setting) left every group's rewards equal.
    run_args, args, _, _ = parse(["--recipe", BASE])
    assert run_args.builtin_max_terms == 2 and run_args.sft_warmup_steps >= 100 and args.temperature < 1.0
    study = load_study("recipes/studies/tiny_smoke.yaml")
    assert study.eval_options["addition_terms"] == [2, 2] and study.trajectory.steps["grpo"] == (4, 8, 12)


def test_the_testbed_study_states_its_design_before_running():
    # Loads once `sas_selection` knows the oracles (`oracle_rollout`, `oracle_step`).
    from sas_trl.evaluation.testbed import CRITERIA

    study = load_study("recipes/studies/testbed.yaml")
    assert set(study.conditions) == {
        "grpo_long", "grpo_short", "grpo_overlong_filter", "sas", "sas_only_correct", "sas_random",
        "oracle_rollout", "oracle_step",
    }  # fmt: skip
    assert study.reference == "grpo_short" and len(study.seeds) >= 10 and study.trajectory is not None
    counts = study.seed_counts()  # at least 20 seeds where the primary comparisons pair, 10 elsewhere
    assert all(counts[name] >= 20 for pair in study.power.primary for name in pair)
    assert min(counts.values()) >= 10 and counts[study.reference] == len(study.seeds)
    assert study.conditions["oracle_rollout"]["sas_selection"] == "oracle_rollout"
    assert study.conditions["oracle_step"]["sas_selection"] == "oracle_step"
    assert study.conditions["sas_random"]["sas_selection"] == "random"
    assert study.conditions["sas_only_correct"]["sas_strategy"] == "correct_only"
    assert study.power.primary == (
        ("sas", "grpo_short"),
        ("sas", "grpo_overlong_filter"),
        ("oracle_rollout", "grpo_short"),
    )
    pilot = load_study("recipes/studies/testbed_pilot.yaml")
    assert study.power.pilot == pilot.output_dir  # the main study is sized from this pilot's results
    # The pilot measures what the study will run: same base, conditions, evaluation and trajectory.
    assert (pilot.base_recipe, pilot.conditions, pilot.eval_options) == (
        study.base_recipe,
        study.conditions,
        study.eval_options,
    )
    assert pilot.trajectory == study.trajectory and not set(pilot.seeds) & set(study.seeds)
    text = (ROOT / "recipes" / "studies" / "testbed.yaml").read_text()
    for criterion in CRITERIA:  # the criteria are written in the study file, with their targets
        assert f"#   - {criterion.text}: {criterion.target()}" in text
