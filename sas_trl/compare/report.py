"""The study's report: per condition and metric the mean over seeds with its spread and 95% interval, the
paired difference from the reference condition with its interval and p-value, training curves averaged over
seeds with a band, and accuracy against length; the power of each paired comparison, stability along training
(with a trajectory), the learning signal, with a warning for a condition that learned nothing, and the selection
against the built-in task's step labels with the policy's entropy early and late (`labels.py`). Written from
whatever results exist (`--report_only`), naming what each evaluation evaluated: one of another model is left
out, one made with other eval options is marked (`evaluated.py`). Each run is read from the study folder when
that holds its evaluation, else from the results kept in the repository (`kept.py`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..output_files import save_figure, write_text
from . import evaluated, findings, kept, labels, power, signal, trajectory
from .glance import markdown as at_a_glance
from .runner import EVAL_RESULTS, Run, base_eval_dir, check_reported_runs, plan_runs, starting_model
from .runs import by_condition
from .stats import (
    CLIPPED,
    CLIPPED_NOTE,
    CONFIDENCE,
    RATES,
    clip_band,
    difference_cell,
    format_value,
    metric_range,
    paired_difference,
    summarize,
    summary_cell,
)
from .study import Study

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
CURVES_PLOT = "training_curves.png"
TRADEOFF_PLOT = "accuracy_vs_length.png"
TRAJECTORY_PLOT = "trajectory.png"
# (logged metric, label) of the training curves; a metric a run did not log is left out.
CURVES = (
    ("reward", "reward"),
    ("completions/mean_length", "completion tokens"),
    ("sas/truncated_frac", "truncated fraction"),
    ("sas/zeroed_frac_correct", "zeroed fraction, correct rollouts"),
    ("sas/zeroed_frac_failed", "zeroed fraction, failed rollouts"),
    ("entropy", "policy entropy"),
    (labels.MISLABELLED, "rollouts mislabelled by the budget"),
    (labels.PUNISHED, "mislabelled rollouts punished"),
    ("frac_reward_zero_std", "groups with equal rewards (no signal)"),
)
MARKERS = "osD^v<>ph*"
# What each curve can take: its ±1 std band is clipped to it (a fraction below 0 is not a value).
CURVE_RANGES = {
    "completions/mean_length": (0.0, None),
    "entropy": (0.0, None),
    **{k: (0.0, 1.0) for k, _ in CURVES if "frac" in k},
}


def read_json(path: Path, what: str) -> Any:
    """A JSON file the study wrote earlier, or a UserError naming it (damaged, cut short, not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} is not a readable {what} ({err}); delete it to re-run that step") from None


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def eval_metrics(path: Path) -> dict[str, float] | None:
    """The averaged numbers of one `sas-trl eval` run (Pass@1, pass@k, tokens, truncation, AES), or None."""
    if not path.is_file():
        return None
    data = read_json(path, f"{EVAL_RESULTS} of sas-trl eval")
    average = data.get("average") if isinstance(data, dict) else None
    if not isinstance(average, dict):
        raise UserError(f"{path} is not a {EVAL_RESULTS} of sas-trl eval (no 'average' mapping); delete it to re-run")
    keys = [k for k in average if k.startswith("pass@")] + ["mean_tokens", "truncated", "aes"]
    for k in keys:
        if k in average and not _number(average[k]) and not (k == "aes" and average[k] is None):
            raise UserError(f"{path}: 'average' {k!r} is not a number ({average[k]!r}); delete it to re-run")
    if not {"pass@1", "mean_tokens"} <= average.keys():
        raise UserError(f"{path}: 'average' lacks 'pass@1' or 'mean_tokens'; delete it to re-run")
    return {k: average[k] for k in keys if k in average}


def finished_history(run: Run) -> list[dict[str, Any]]:
    """The log history of a run that finished training (`log_history.json`, written at its end), else []: a run
    stopped part-way logged only its early steps, which would tilt the report's per-run means and curves."""
    path = run.dir / "log_history.json"
    return _checked_history(read_json(path, "training log"), path) if path.is_file() else []


def _checked_history(history: Any, path: Path) -> list[dict[str, Any]]:
    """A log history: a list of entries, whose step and plotted metrics are numbers."""
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        raise UserError(f"{path}: the log history is not a list of logged entries; delete it to re-run")
    for number, entry in enumerate(history, start=1):
        for key in ("step", *(k for k, _ in CURVES)):  # a logged NaN is a value; a string or list is damage
            if key in entry and (isinstance(entry[key], bool) or not isinstance(entry[key], int | float)):
                raise UserError(f"{path}: log entry {number}: {key!r} is not a number ({entry[key]!r})")
    return history


STARTING_MODEL = "the starting model"


def collect(study: Study) -> dict[str, Any]:
    runs = by_condition(study, plan_runs(study))  # runs named in lists condition by condition, as before
    check_reported_runs(study, runs)  # none trained from a recipe other than its own now
    read_from = {r: kept.source(study, r) for r in runs}  # the study folder, else the results kept in the repo
    per_run = {(r.condition, r.seed): eval_metrics(read_from[r].eval_dir / EVAL_RESULTS) for r in runs}
    start_model, _ = starting_model(study)
    argv = study.eval_argv()
    root = study.output_dir.resolve()
    base, base_eval = kept.base_source(study), base_eval_dir(study)
    checks = {  # a kept evaluation's model is not kept: its files cannot have changed since
        name: evaluated.check_folder(folder, model, argv, root, fingerprint=folder.is_relative_to(root))
        for name, folder, model in [
            (STARTING_MODEL, base, start_model),
            *((r.name, read_from[r].eval_dir, str(r.dir)) for r in runs),
        ]
        if (folder / EVAL_RESULTS).is_file()
    }
    left_out = {name: c.not_the_model for name, c in checks.items() if c.not_the_model}
    for r in runs:
        if r.name in left_out:  # another model's numbers: not this run's
            per_run[(r.condition, r.seed)] = None
    metrics = sorted({k for m in per_run.values() if m for k in m}, key=_metric_order)
    conditions = {}
    histories = {(r.condition, r.seed): finished_history(read_from[r]) for r in runs}
    for condition in study.conditions:
        seeds = study.condition_seeds(condition)  # the reference runs each of them (load_study checks it)
        values = {k: [(per_run[(condition, s)] or {}).get(k) for s in seeds] for k in metrics}
        ref = {k: [(per_run[(study.reference, s)] or {}).get(k) for s in seeds] for k in metrics}
        conditions[condition] = {
            "overrides": study.conditions[condition],
            "runs": {str(s): per_run[(condition, s)] for s in seeds},
            "summary": {k: summarize(v) for k, v in values.items()},
            "vs_reference": {}
            if condition == study.reference
            else {k: paired_difference(values[k], ref[k]) for k in metrics},
            "learning_signal": signal.condition_signal(
                {str(s): signal.run_signal(histories[(condition, s)]) for s in seeds}
            ),
            "step_labels": labels.condition_labels(
                {str(s): labels.run_labels(histories[(condition, s)]) for s in seeds}
            ),
        }
        if study.trajectory is not None:  # per seed: [{step, metrics}], step 0 the starting model
            paths = {str(r.seed): read_from[r] for r in runs if r.condition == condition}
            read = _trajectory_reader(study, read_from, start_model, left_out)
            step0 = kept.trajectory_base_source(study)
            traj = {seed: trajectory.collect(study, r, read, step0) for seed, r in paths.items()}
            conditions[condition]["trajectory"] = traj
            conditions[condition]["stability"] = trajectory.stability(traj, study.trajectory.last)
    results = {
        "study": str(study.path),
        "base_recipe": str(study.base_recipe),
        "seeds": list(study.seeds),
        **({"seeds_per_condition": study.seed_counts()} if study.seeds_per_condition else {}),
        "reference": study.reference,
        "confidence": CONFIDENCE,
        "starting_model": None if STARTING_MODEL in left_out else eval_metrics(base / EVAL_RESULTS),
        "evaluated": {name: c.model for name, c in checks.items()},  # the model each eval_results.json names
        "left_out": left_out,
        "eval_option_changes": {
            name: {k: list(v) for k, v in c.option_changes.items()} for name, c in checks.items() if c.option_changes
        },
        "eval": study.eval_options,  # the final evaluation's options (the trajectory's: "trajectory")
        "metrics": metrics,
        "conditions": conditions,
        "missing": [r.name for r in runs if per_run[(r.condition, r.seed)] is None and r.name not in left_out],
        "trajectory": None
        if study.trajectory is None
        else {"every": study.trajectory.every, "last": study.trajectory.last, "eval": trajectory.eval_options(study)},
    }
    spec = study.power or power.PowerSpec()
    results["power"] = {
        "metric": spec.metric,
        "effect": spec.effect,
        "comparisons": power.power_table(results, power.comparisons(study), spec.metric, effect=spec.effect),
    }
    changed = {name: c.option_changes for name, c in checks.items()}
    from_kept = [r.name for r in runs if read_from[r] is not r] + ([STARTING_MODEL] if base != base_eval else [])
    results["warnings"] = evaluated.warnings(left_out, changed, from_kept) + signal.warnings(results)
    return results


def _trajectory_reader(study: Study, read_from: dict[Run, Run], start_model: str, left_out: dict[str, str]):
    """`eval_metrics` for the trajectory's evaluations, None for one of another model than its checkpoint (or the
    starting model), which is added to `left_out`. `read_from`: each run and where it is read."""
    expected = {kept.trajectory_base_source(study): (f"{STARTING_MODEL} (trajectory step 0)", start_model)}
    for r, where in read_from.items():
        for step in study.trajectory.steps[r.condition]:
            model = str(r.dir / f"checkpoint-{step}")
            expected[trajectory.step_dir(where, step)] = (f"{r.name} at step {step}", model)
    root = study.output_dir.resolve()

    def read(path: Path) -> dict[str, float] | None:
        metrics = eval_metrics(path)
        if metrics is None or path.parent not in expected:
            return metrics
        name, model = expected[path.parent]
        check = evaluated.check_folder(path.parent, model, None, root, fingerprint=path.is_relative_to(root))
        if check.not_the_model:
            left_out[name] = check.not_the_model
            return None
        return metrics

    return read


def _metric_order(key: str) -> tuple[int, int]:
    if key.startswith("pass@"):
        return 0, int(key.split("@")[1])
    return 1, ["mean_tokens", "truncated", "aes"].index(key) if key in ("mean_tokens", "truncated", "aes") else 9


def _label(key: str) -> str:
    if key.startswith(RATES):
        return f"{key} (%)"
    return {"mean_tokens": "tokens", "aes": "AES vs start"}.get(key, key)


def markdown(results: dict[str, Any]) -> str:
    """Tables: each cell says how many seeds it rests on; no difference without its interval."""
    pct = int(100 * results["confidence"])
    lines = [
        f"# Study report: {results['study']}",
        "",
        f"Base recipe `{results['base_recipe']}`; seeds {results['seeds']}{findings.seed_note(results)}; reference "
        f"condition `{results['reference']}`. Mean ± standard deviation over seeds, [{pct}% t-interval of the "
        "mean], (n = seeds with results).",
        "",
    ]
    lines += [line for w in results.get("warnings", []) for line in (f"**{w}**", "")]
    lines += findings.evaluations(results)
    answer = findings.answer(results)
    lines += [*answer, ""] if answer else []
    glance = at_a_glance(results)
    lines += [*glance, ""] if glance else []
    start = results["starting_model"]
    if start:
        cells = ", ".join(f"{_label(k)} {format_value(k, v)}" for k, v in start.items() if k != "aes")
        lines += [f"Starting model: {cells}.", ""]
    lines += _evaluated_lines(results)
    metrics = results["metrics"]
    lines += ["| condition | " + " | ".join(_label(k) for k in metrics) + " |"]
    lines += ["|---|" + "---:|" * len(metrics)]
    for name, c in results["conditions"].items():
        cells = [summary_cell(k, c["summary"][k]) for k in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Paired differences from `{results['reference']}` (same seed)",
        "",
        f"Mean difference [{pct}% t-interval], paired t-test p-value, (n = seed pairs). A difference whose "
        "interval contains 0 is not distinguishable from no difference with these seeds.",
        "",
        "| condition | " + " | ".join(_label(k) for k in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for name, c in results["conditions"].items():
        if name == results["reference"]:
            continue
        cells = [difference_cell(k, c["vs_reference"][k]) for k in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["missing"]:
        lines += ["", f"Runs without results yet ({len(results['missing'])}): " + ", ".join(results["missing"])]
    for section in (
        power.markdown(results["power"]["comparisons"], results["power"]["metric"]),
        trajectory.markdown(results),
        signal.markdown(results),
        labels.markdown(results),
    ):
        lines += ["", *section] if section else []
    figures = results.get("figures", [])
    if figures:
        captions = [findings.CAPTIONS.get(f, Path(f).stem.replace("_", " ")) for f in figures]
        lines += ["", "## Figures", ""] + [f"![{c}]({f})" for c, f in zip(captions, figures, strict=True)]
    if any(CLIPPED in line for line in lines):
        lines += ["", CLIPPED_NOTE]
    return "\n".join(lines) + "\n"


def _evaluated_lines(results: dict[str, Any]) -> list[str]:
    """What the evaluations evaluated, as each `eval_results.json` names it (the exceptions are warnings)."""
    named = {n: m for n, m in results.get("evaluated", {}).items() if m and n not in results.get("left_out", {})}
    if not named:
        return []
    parts = [f"the starting model `{named[STARTING_MODEL]}`"] if STARTING_MODEL in named else []
    runs = len(named) - (STARTING_MODEL in named)
    if runs:
        parts.append(f"{runs} run(s), each its own final model (`runs/CONDITION/seedSEED` in the output folder)")
    return [f"Evaluated: {'; '.join(parts)}.", ""]


def plot_curves(study: Study, path: Path) -> Path | None:
    """Training curves: per condition the mean over finished seeds at each logged step, with a band of ±1 std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    histories = {r: finished_history(kept.source(study, r)) for r in plan_runs(study)}
    shown = [(k, label) for k, label in CURVES if any(k in e for h in histories.values() for e in h)]
    if not shown:
        return None
    columns = min(3, len(shown))
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows + 0.6), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    clipped = False
    for ax, (key, label) in zip(axes.flat, shown, strict=False):
        for index, condition in enumerate(study.conditions):
            series = [
                {e["step"]: e[key] for e in h if key in e and "step" in e}
                for r, h in histories.items()
                if r.condition == condition
            ]
            series = [s for s in series if s]
            if not series:
                continue
            steps = sorted(set.intersection(*(set(s) for s in series)))
            values = np.array([[s[t] for t in steps] for s in series], dtype=float)
            mean = values.mean(axis=0)
            marker = MARKERS[index % len(MARKERS)]
            # the condition's own colour: a panel a condition did not log must not shift the others' colours
            color = f"C{index % 10}"
            (line,) = ax.plot(steps, mean, color=color, marker=marker, ms=3, markevery=max(1, len(steps) // 10))
            line.set_label(f"{condition} (n={len(series)})")
            if len(series) > 1:
                std = values.std(axis=0, ddof=1)
                low, high = clip_band(mean - std, mean + std, CURVE_RANGES.get(key, (None, None)))
                clipped |= not (np.allclose(low, mean - std) and np.allclose(high, mean + std))
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend_rows = -(-len(labels) // 4)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    where = ", clipped to each metric's range" if clipped else ""
    title = f"training curves (TRL's log of the training rollouts): mean over seeds, band ±1 std{where}"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.25 * legend_rows / (3.0 * rows + 0.6), 1, 0.96))
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_tradeoff(results: dict[str, Any], path: Path) -> Path | None:
    """Pass@1 against mean response tokens, one point per condition with its interval on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    drawn, clipped = False, []
    points = [
        (name, c["summary"].get("pass@1"), c["summary"].get("mean_tokens"))
        for name, c in results["conditions"].items()
        if c["summary"].get("pass@1")
        and c["summary"]["pass@1"]["mean"] is not None
        and c["summary"].get("mean_tokens")
        and c["summary"]["mean_tokens"]["mean"] is not None
    ]
    span = max((t["mean"] for _, _, t in points), default=1.0) - min((t["mean"] for _, _, t in points), default=0.0)
    for index, (name, acc, tok) in enumerate(points):

        def err(s, key):  # the interval, clipped to the metric's range
            if s["ci_low"] is None:
                return None
            low, high = clip_band(s["ci_low"], s["ci_high"], metric_range(key))
            clipped.append(bool(low != s["ci_low"] or high != s["ci_high"]))
            return [[s["mean"] - low], [high - s["mean"]]]

        # Conditions at the same length (a shared budget) would hide each other: a small horizontal offset,
        # its own marker, and the name next to the point keep each one readable; the offset is not data.
        same = [i for i, (_, _, t) in enumerate(points) if abs(t["mean"] - tok["mean"]) <= 0.01 * max(span, 1.0)]
        offset = (same.index(index) - (len(same) - 1) / 2) * 0.015 * max(span, 1.0) if len(same) > 1 else 0.0
        x, y = tok["mean"] + offset, 100 * acc["mean"]
        ax.errorbar(
            x,
            y,
            xerr=err(tok, "mean_tokens"),
            yerr=_scaled(err(acc, "pass@1")),
            fmt=MARKERS[index % len(MARKERS)],
            capsize=3,
            label=f"{name} (n={acc['n']})",
        )
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        drawn = True
    start = results["starting_model"]
    if start:
        ax.plot(start["mean_tokens"], 100 * start["pass@1"], "k*", markersize=10, label="starting model")
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("mean response tokens")
    ax.set_ylabel("Pass@1 (%)")
    where = ", clipped to 0-100% and >= 0 tokens" if any(clipped) else ""
    pct = int(100 * results["confidence"])
    ax.set_title(f"accuracy vs length, final evaluation\n{pct}% intervals over seeds{where}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def _scaled(err):
    return None if err is None else [[100 * err[0][0]], [100 * err[1][0]]]


def build_report(study: Study) -> dict[str, Any]:
    """Write results.json, report.md and the plots into the study's output folder; return the results."""
    out = study.output_dir
    out.mkdir(parents=True, exist_ok=True)
    results = collect(study)
    plots = (
        plot_curves(study, out / CURVES_PLOT),
        plot_tradeoff(results, out / TRADEOFF_PLOT),
        trajectory.plot(results, out / TRAJECTORY_PLOT),
    )
    results["figures"] = [p.name for p in plots if p is not None]  # report.md links them, relative to itself
    write_text(out, RESULTS_FILE, json.dumps(results, indent=2))
    write_text(out, REPORT_FILE, markdown(results))
    return results
