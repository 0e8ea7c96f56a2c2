"""sas_trl.compare.labels: the selection against the step labels and the policy's entropy, per condition."""

from __future__ import annotations

import pytest

from sas_trl.compare.labels import condition_labels, markdown, run_labels
from sas_trl.compare.stats import CLIPPED_NOTE

PUNISHED = "sas/mislabelled_punished_frac"
SHIELDED = "sas/shielded_steps_correct_frac"


def history(punished: list[float], entropy: list[float], shielded: list[float] | None = None) -> list[dict]:
    entries = []
    for step, (p, e) in enumerate(zip(punished, entropy, strict=True), start=1):
        entry = {"step": step, PUNISHED: p, "entropy": e, "eval_entropy": 9.0}  # evaluation entries are not training
        if shielded is not None:
            entry[SHIELDED] = shielded[step - 1]
        entries.append(entry)
    return [*entries, {"train_runtime": 3.0}]


def test_run_labels_averages_all_logged_steps_and_the_last_quarter():
    run = run_labels(history([0.8, 0.6, float("nan"), 0.4, 0.2, 0.0, 0.2, 0.2, 0.4], [2.0] * 4 + [1.0] * 4 + [0.5]))
    assert run[PUNISHED] == {"mean": pytest.approx(0.35), "last": pytest.approx(0.3), "steps": 8}  # NaN dropped
    assert run["entropy"] == {"early": pytest.approx(2.0), "late": pytest.approx(2.5 / 3), "steps": 9}  # 3 of 9 each
    assert SHIELDED not in run  # never logged (GRPO shields nothing): absent, not 0
    steps = run_labels([{"step": s, "sas/steps_per_rollout": v} for s, v in ((1, 12.0), (2, 10.0), (3, 8.0))])
    assert steps["sas/steps_per_rollout"] == {"mean": pytest.approx(10.0), "last": 8.0, "steps": 3}
    assert run_labels([{"step": 1, "reward": 0.3}]) == {}
    single = run_labels([{"step": 1, PUNISHED: 0.5, "entropy": 1.5}])
    assert single[PUNISHED]["last"] == 0.5 and single["entropy"]["early"] == single["entropy"]["late"] == 1.5


def results_for(histories: dict[str, list[list[dict]]]) -> dict:
    conditions = {}
    for name, runs in histories.items():
        per_seed = {str(seed): run_labels(h) for seed, h in enumerate(runs)}
        conditions[name] = {"step_labels": condition_labels(per_seed)}
    return {"conditions": conditions, "confidence": 0.95}


def test_conditions_get_intervals_across_seeds_and_the_report_its_tables():
    results = results_for(
        {
            "grpo": [history([1.0, 1.0, 1.0, 1.0], [2.0, 1.8, 1.2, 1.0]), history([0.8] * 4, [2.0, 1.9, 1.3, 1.2])],
            "sas": [
                history([0.4] * 4, [2.0, 2.0, 1.8, 1.8], shielded=[0.5] * 4),
                history([0.2] * 4, [2.0, 2.0, 2.0, 2.0], shielded=[0.7] * 4),
            ],
        }
    )
    sas = results["conditions"]["sas"]["step_labels"]
    assert sas[PUNISHED]["mean"]["mean"] == pytest.approx(0.3) and sas[PUNISHED]["mean"]["n"] == 2
    assert sas[PUNISHED]["mean"]["ci_low"] < 0.3 < sas[PUNISHED]["mean"]["ci_high"]
    assert sas["entropy"]["change"]["mean"] == pytest.approx(-0.1)
    grpo = results["conditions"]["grpo"]["step_labels"]
    assert grpo["entropy"]["change"]["mean"] == pytest.approx(-0.9)  # late - early, paired by run
    assert grpo[SHIELDED]["mean"]["n"] == 0
    text = "\n".join(markdown(results))
    assert "## Selection against the step labels" in text and "## Policy entropy along training" in text
    assert "| grpo | 90.0 [" in text and "(n=2) / 90.0 [" in text  # all steps / last quarter, in %
    # 2 seeds: t = 12.7, so 90% +- 127 points, shown clipped to the share's range (the report explains it once)
    assert "| grpo | 90.0 [0.0†, 100.0†] (n=2) / 90.0 [0.0†, 100.0†] (n=2) |" in text
    assert "| n/a / n/a |" in text  # GRPO shields no step
    assert "| sas | 2.000 [2.000, 2.000] (n=2) | 1.900 [" in text and "-0.100 [" in text


def test_an_interval_inside_the_shares_range_is_not_marked():
    results = results_for({"sas": [history([0.5] * 4, [1.0] * 4), history([0.6] * 4, [1.0] * 4)] * 5})
    text = "\n".join(markdown(results))
    assert "| sas | 55.0 [51.2, 58.8] (n=10) / 55.0 [51.2, 58.8] (n=10) |" in text
    assert "†" not in text and CLIPPED_NOTE not in text


def test_no_logged_labels_or_entropy_means_no_section():
    results = results_for({"grpo": [[{"step": 1, "reward": 0.1}]]})
    assert markdown(results) == []
    only_entropy = results_for({"grpo": [[{"step": 1, "entropy": 1.0}]]})
    text = "\n".join(markdown(only_entropy))
    assert "Selection against" not in text and "| grpo | 1.000 (n=1, no interval) |" in text


def test_the_study_report_shows_them_per_condition(tmp_path, monkeypatch):
    import json

    from cli_helpers import ROOT
    from test_compare_study import study_file

    from sas_trl.compare.report import build_report
    from sas_trl.compare.runner import plan_runs
    from sas_trl.compare.study import load_study

    monkeypatch.chdir(ROOT)
    study = load_study(study_file(tmp_path, seeds=[0, 1]))
    for run in plan_runs(study):
        run.eval_dir.mkdir(parents=True)
        average = {"pass@1": 0.5, "mean_tokens": 20.0, "truncated": 0.1}
        (run.eval_dir / "eval_results.json").write_text(json.dumps({"average": average}))
        punished = 0.9 if run.condition == "grpo" else 0.3 + 0.1 * run.seed
        shielded = None if run.condition == "grpo" else [0.6] * 4
        (run.dir / "log_history.json").write_text(json.dumps(history([punished] * 4, [1.5, 1.4, 1.2, 1.0], shielded)))
    results = build_report(study)
    assert results["conditions"]["sas"]["step_labels"][PUNISHED]["last"]["mean"] == pytest.approx(0.35)
    report = (study.output_dir / "report.md").read_text()
    assert (
        "| sas | 35.0 [" in report
        and "| grpo | 90.0 [90.0, 90.0] (n=2) / 90.0 [90.0, 90.0] (n=2) | n/a / n/a |" in report
    )
    assert (
        "| grpo | 1.500 [1.500, 1.500] (n=2) | 1.000 [1.000, 1.000] (n=2) | -0.500 [-0.500, -0.500] (n=2) |" in report
    )
    assert "| sas | 35.0 [0.0†, " in report and report.count(CLIPPED_NOTE) == 1  # explained once, at the end
    assert json.loads((study.output_dir / "results.json").read_text())["conditions"]["grpo"]["step_labels"]


def test_a_run_stopped_part_way_stays_out_of_the_tables(tmp_path, monkeypatch):
    # Its checkpoint's trainer state logs only the early steps (most rollouts mislabelled then): averaged in, it
    # would tilt the condition's means; it enters once it has finished (log_history.json).
    import json

    from cli_helpers import ROOT
    from test_compare_study import study_file

    from sas_trl.compare.report import build_report
    from sas_trl.compare.runner import plan_runs
    from sas_trl.compare.study import load_study

    monkeypatch.chdir(ROOT)
    study = load_study(study_file(tmp_path, seeds=[0, 1, 2]))
    for run in plan_runs(study):
        if run.seed == 2:  # stopped after its first checkpoint: no evaluation, no log_history.json
            (run.dir / "checkpoint-2").mkdir(parents=True)
            early = history([1.0, 1.0], [3.0, 3.0], None if run.condition == "grpo" else [0.0, 0.0])
            early = [{**e, "frac_reward_zero_std": 1.0} for e in early]
            (run.dir / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"log_history": early}))
            continue
        run.eval_dir.mkdir(parents=True)
        average = {"pass@1": 0.5, "mean_tokens": 20.0}
        (run.eval_dir / "eval_results.json").write_text(json.dumps({"average": average}))
        logged = history([0.2] * 4, [1.5, 1.4, 1.2, 1.0], [0.6] * 4)
        (run.dir / "log_history.json").write_text(json.dumps([{**e, "frac_reward_zero_std": 0.0} for e in logged]))
    results = build_report(study)
    labels = results["conditions"]["sas"]["step_labels"]
    assert labels[PUNISHED]["mean"]["mean"] == pytest.approx(0.2) and labels[PUNISHED]["mean"]["n"] == 2
    assert labels["entropy"]["change"]["n"] == 2
    signal = results["conditions"]["grpo"]["learning_signal"]["runs"]
    assert signal["0"]["no_signal_share"] == 0.0 and signal["2"] is None
    assert sorted(results["missing"]) == ["grpo seed 2", "sas seed 2"]
