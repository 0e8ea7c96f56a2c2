"""Accuracy along training: each run's saved checkpoints evaluated every `every` steps, and how stable it was.

```yaml
trajectory:
  every: 10                    # evaluate checkpoint-10, -20, ...: a multiple of every condition's save_steps
  eval: {limit: 50, n: 2}      # changes to the study's `eval:` for these evaluations (a smaller set is fine)
  last: 3                      # the stability spread is taken over the last 3 evaluations
```

Step 0 is the starting model under the same evaluation, shared by all runs. Each evaluation is a `sas-trl eval`
of `RUN/checkpoint-N` into `RUN/trajectory/step-N` (resumed from its samples file like any evaluation);
`RUN/trajectory/settings.json` records the evaluation it was made with, and a study whose trajectory evaluation
changed is refused rather than mixed in. Stability per run: final minus peak accuracy (0 when the last evaluation
is the best) and the standard deviation of the last `last` evaluations; the report gives each with its interval
over seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..output_files import save_figure, write_text
from .runs import Run
from .stats import clip_band, summarize, summary_cell
from .study import Study, eval_flags

SETTINGS = "settings.json"
# (metric, label, scale) of the trajectory figure's panels.
PANELS = (
    ("pass@1", "Pass@1 (%)", 100.0),
    ("mean_tokens", "response tokens", 1.0),
    ("truncated", "truncated (%)", 100.0),
)


def eval_options(study: Study) -> dict[str, Any]:
    """The study's evaluation with the trajectory's changes."""
    return {**study.eval_options, **(study.trajectory.eval if study.trajectory else {})}


def base_dir(study: Study) -> Path:
    """Step 0: the starting model under the trajectory's evaluation, shared by every run."""
    return study.output_dir.resolve() / "base_eval" / "trajectory"


def step_dir(run: Run, step: int) -> Path:
    return run.dir / "trajectory" / f"step-{step}"


def eval_commands(study: Study, run: Run, program: list[str]) -> list[tuple[int, list[str]]]:
    """(step, `sas-trl eval` command) for each checkpoint of the run's trajectory."""
    if study.trajectory is None:
        return []
    flags = eval_flags(eval_options(study))
    return [
        (
            step,
            [
                *program,
                "eval",
                "--model",
                str(run.dir / f"checkpoint-{step}"),
                "--output_dir",
                str(step_dir(run, step)),
                *flags,
            ],
        )
        for step in study.trajectory.steps[run.condition]
    ]


def base_command(study: Study, model: str, program: list[str]) -> list[str]:
    return [*program, "eval", "--model", model, "--output_dir", str(base_dir(study)), *eval_flags(eval_options(study))]


def check_settings(study: Study, folder: Path) -> None:
    """Record the trajectory evaluation in `folder`, refusing one made with other settings (never mixed in)."""
    if study.trajectory is None:
        return
    refuse_other_settings(study, folder)
    write_text(folder, SETTINGS, _settings(study))


def _settings(study: Study) -> str:
    return json.dumps({"eval": eval_options(study), "every": study.trajectory.every}, sort_keys=True)


def refuse_other_settings(study: Study, folder: Path) -> None:
    """A `UserError` when `folder` records another trajectory evaluation than the study's now."""
    file = folder / SETTINGS
    if file.is_file() and file.read_text() != _settings(study):
        raise UserError(
            f"{folder} was evaluated with other trajectory settings (the study file changed: "
            f"{_differences(file.read_text(), _settings(study))}); delete that folder or choose another output_dir"
        )


def _differences(then: str, now: str) -> str:
    """'eval.n: 2 -> 3; every: 4 -> 8': what differs between two recorded settings."""
    try:
        old, new = json.loads(then), json.loads(now)
    except ValueError:
        old = None
    if not isinstance(old, dict):
        return "its record is not readable"
    old_eval = old.get("eval") if isinstance(old.get("eval"), dict) else {}
    pairs = {"every": (old.get("every"), new["every"])}
    pairs.update(
        (f"eval.{key}", (old_eval.get(key, "(unset)"), new["eval"].get(key, "(unset)")))
        for key in sorted(old_eval.keys() | new["eval"].keys())
    )
    return "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in pairs.items() if a != b) or "its record differs"


def done(study: Study, run: Run) -> bool:
    """Every trajectory evaluation of the run has its results (True without a trajectory)."""
    if study.trajectory is None:
        return True
    return all((step_dir(run, s) / "eval_results.json").is_file() for s in study.trajectory.steps[run.condition])


def collect(
    study: Study, run: Run, read: Callable[[Path], dict[str, float] | None], base: Path | None = None
) -> list[dict[str, Any]]:
    """The run's trajectory as [{step, metrics}], step 0 first, only the evaluations that exist. `run.dir` and
    `base` (step 0; default `base_dir`) are where they are read: the study folder or the kept results."""
    if study.trajectory is None:
        return []
    base = base_dir(study) if base is None else base
    refuse_other_settings(study, run.dir / "trajectory")  # --report_only too: never an old evaluation
    refuse_other_settings(study, base)
    points = [(0, base)] + [(s, step_dir(run, s)) for s in study.trajectory.steps[run.condition]]
    out = []
    for step, folder in points:
        metrics = read(folder / "eval_results.json")
        if metrics is not None:
            out.append({"step": step, "metrics": metrics})
    return out


def run_stability(trajectory: list[dict[str, Any]], last: int, metric: str = "pass@1") -> dict[str, float | None]:
    """Final minus peak of `metric` along the trajectory (<= 0) and the std of its last `last` values."""
    values = [p["metrics"].get(metric) for p in trajectory if p["step"] > 0]
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"final_minus_peak": None, "last_spread": None}
    tail = values[-last:]
    return {
        "final_minus_peak": float(values[-1] - max(values)),
        "last_spread": float(np.std(tail, ddof=1)) if len(tail) >= 2 else None,
    }


def stability(trajectories: dict[str, list[dict[str, Any]]], last: int) -> dict[str, Any]:
    """Per seed and summarized over seeds (mean, std, t-interval): final minus peak and the last spread."""
    per_seed = {seed: run_stability(t, last) for seed, t in trajectories.items()}
    return {
        "runs": per_seed,
        "final_minus_peak": summarize([s["final_minus_peak"] for s in per_seed.values()]),
        "last_spread": summarize([s["last_spread"] for s in per_seed.values()]),
    }


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's stability section (Pass@1 points); empty without trajectories."""
    if not results.get("trajectory"):
        return []
    last = results["trajectory"]["last"]
    lines = [
        "## Stability along training (Pass@1, trajectory evaluation)",
        "",
        f"Per run: final minus peak accuracy (0 = the last evaluation is the best; negative = it degraded late) and "
        f"the standard deviation of the last {last} evaluations; mean [95% t-interval] over seeds (n).",
        "",
        "| condition | final minus peak (points) | spread of the last evaluations (points) |",
        "|---|---:|---:|",
    ]
    for name, c in results["conditions"].items():
        # Pass@1 differences in points; a spread has no sign.
        cells = [
            summary_cell("pass@1", c["stability"][key], spread=False, signed=key == "final_minus_peak", bounds=bounds)
            for key, bounds in (("final_minus_peak", (-1.0, 0.0)), ("last_spread", (0.0, None)))
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Pass@1, length and truncation against training step: per condition the mean over seeds, band ±1 std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = {
        n: c["trajectory"] for n, c in results["conditions"].items() if any(c.get("trajectory", {}).values())
    }
    if not conditions:
        return None
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), squeeze=False)
    markers = "osD^v<>ph*"
    clipped = False
    for index, (name, runs) in enumerate(conditions.items()):
        for ax, (metric, label, scale) in zip(axes[0], PANELS, strict=True):
            series = [{p["step"]: p["metrics"].get(metric) for p in t} for t in runs.values() if t]
            steps = sorted(set.intersection(*(set(s) for s in series)))
            values = np.array([[s[t] for t in steps] for s in series], dtype=float) * scale
            mean = np.nanmean(values, axis=0)
            (line,) = ax.plot(
                steps, mean, marker=markers[index % len(markers)], ms=4, label=f"{name} (n={len(series)})"
            )
            if len(series) > 1:
                std = np.nanstd(values, axis=0, ddof=1)
                low, high = clip_band(mean - std, mean + std, (0.0, scale if scale == 100.0 else None))
                clipped |= not (np.allclose(low, mean - std) and np.allclose(high, mean + std))
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("training step")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    where = ", clipped to each metric's range" if clipped else ""
    fig.suptitle(f"trajectory evaluation along training: mean over seeds, band ±1 std{where}", fontsize=9)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 4), 1, 0.95))
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
