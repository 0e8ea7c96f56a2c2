"""What `sas-trl inspect` writes: the numbers of an `Inspection`, its HTML report, the terminal summary and the
histograms.

`inspect.html` shows every rollout rendered (`sas_trl.render`), under its verdict and under the other one (what
SAS would zero if it were correct, and if it had failed), with the settings, a legend and the histograms. Each
rollout states its verdict, the answer the verifier graded and the reference, and the counting rule with what it
gives for that rollout; all rollouts share one shading scale, the range of their step confidences.
"""

from __future__ import annotations

import base64
import html
import math
import statistics
from pathlib import Path
from typing import Any

import torch

from ..core import SASRule, count_steps, step_statistics, steps_to_zero
from ..output_files import save_figure
from ..render import confidence_scale, html_document, html_from_segments, legend_html, render_terminal, segments
from .inspection_rollouts import Inspection, Rollout


def statistics_of(view: Inspection) -> dict[str, Any]:
    """Steps per rollout, step lengths, confidences and the zeroed fractions under each verdict."""
    steps = count_steps(view.step_ids)  # (B,)
    confidence, counts = step_statistics(view.step_ids, view.logps)  # (B, S)
    present = counts > 0
    reasoning = view.step_ids >= 0
    valid = view.mask.bool()
    lengths = counts[present].tolist()
    verdicts = [r.correct for r in view.rollouts]

    def frac(zero: torch.Tensor) -> float:
        return float(zero.sum() / valid.sum().clamp(min=1))

    return {
        "rollouts": len(view.rollouts),
        "correct": sum(v is True for v in verdicts),
        "failed": sum(v is False for v in verdicts),
        "unknown": sum(v is None for v in verdicts),
        "truncated": sum(r.truncated for r in view.rollouts),
        "steps_per_rollout": steps.tolist(),
        "mean_steps": float(steps.float().mean()) if len(steps) else 0.0,
        "rollouts_without_steps": int((steps == 0).sum()),
        "step_tokens": lengths,
        "median_step_tokens": statistics.median(lengths) if lengths else None,
        "max_step_tokens": max(lengths) if lengths else None,
        "reasoning_frac": float(reasoning.sum() / valid.sum().clamp(min=1)),
        "mean_step_confidence": float(confidence[present].mean()) if lengths else None,
        "zeroed_frac_if_correct": frac(view.zero_if_correct),
        "zeroed_frac_if_failed": frac(view.zero_if_failed),
    }


def answer_note(rollout: Rollout) -> str:
    """The verdict with what decided it: the graded answer and the reference answer(s)."""
    verdict = "no verdict" if rollout.correct is None else "correct" if rollout.correct else "failed"
    answer = rollout.answer if rollout.answer is not None else "none extracted (no </think> or no \\boxed{})"
    reference = " or ".join(rollout.reference) if rollout.reference else "none given"
    cut = "; cut at the token budget" if rollout.truncated else ""
    return f"Verdict: {verdict}{cut}. Answer graded: {answer}. Reference: {reference}."


def counting_note(rule: SASRule, step_ids: torch.Tensor, correct: bool, truncated: bool) -> str:
    """The counting rule and what it gives for one rollout under a verdict, e.g. "r = 0.3, 3 steps, correct:
    zero ceil(0.3 x 3) = ceil(0.9) = 1 step". `step_ids`: (T,) from the rule's segmentation."""
    if rule.needs_labels:  # an oracle counts nothing: it reads the step labels
        return f"Oracle {rule.selection!r}: zeroes by the ground-truth step labels, not by a count."
    unit = "token" if rule.granularity == "token" else "step"
    n = int((step_ids >= 0).sum()) if unit == "token" else int(count_steps(step_ids[None])[0])
    k = int(steps_to_zero(torch.tensor([n]), torch.tensor([correct]), rule.ratio, rule.count_mode)[0])
    r = rule.ratio
    if rule.count_mode == "release":
        formula = (
            f"ceil(N - 1 + r) = ceil({n - 1 + r:g})"
            if correct
            else f"N - ceil(N - 1 + (1 - r)) = {n} - ceil({n - r:g})"
        )
    else:
        formula = (
            f"ceil(r x N) = ceil({r * n:.4g})" if correct else f"N - ceil((1 - r) x N) = {n} - ceil({(1 - r) * n:.4g})"
        )
    kind = "correct" if correct else "failed"

    def units(count: int) -> str:
        return f"{count} {unit}{'' if count == 1 else 's'}"

    text = f"Counting ({rule.count_mode}): r = {r:g}, {units(n)}, {kind}: zero {formula} = {units(k)}"
    touched = rule.strategy == "both" or rule.strategy == ("correct_only" if correct else "failed_only")
    if not touched:
        return f"{text}; but sas_strategy {rule.strategy!r} leaves {kind} rollouts alone: 0 zeroed."
    if n < rule.min_steps:
        return f"{text}; but fewer than sas_min_steps = {rule.min_steps}: 0 zeroed."
    if not correct and rule.failed_scope == "truncated" and not truncated:
        return f"{text}; but sas_failed_scope 'truncated' shields only truncated rollouts: 0 zeroed."
    return text + "."


def report_html(
    view: Inspection, tokenizer, stats: dict, settings: dict, model: str, max_rendered: int, plot: Path | None = None
) -> str:
    """The report page: settings, summary, histograms, then each rollout under its verdict and the other one."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(repr(v))}</code></td></tr>" for k, v in settings.items()
    )
    facts = (
        f"{stats['rollouts']} rollouts ({stats['correct']} correct, {stats['failed']} failed, {stats['unknown']} "
        f"without a verdict, {stats['truncated']} truncated); {stats['mean_steps']:.1f} steps per rollout on average, "
        f"{stats['rollouts_without_steps']} with none; median step {stats['median_step_tokens']} tokens, longest "
        f"{stats['max_step_tokens']}; {100 * stats['reasoning_frac']:.0f}% of tokens are reasoning. SAS would zero "
        f"{100 * stats['zeroed_frac_if_correct']:.1f}% of the tokens if every rollout were correct and "
        f"{100 * stats['zeroed_frac_if_failed']:.1f}% if every rollout had failed."
    )
    image = ""
    if plot is not None and plot.is_file():
        data = base64.b64encode(plot.read_bytes()).decode()
        image = f'<img alt="histograms" style="max-width:100%" src="data:image/png;base64,{data}">'
    shown = min(max_rendered, len(view.rollouts))
    confidence, counts = step_statistics(view.step_ids[:shown], view.logps[:shown])  # (B, S) mean log-probs
    scale = confidence_scale(confidence[counts > 0].exp().tolist())  # one scale for every rollout shown
    parts = [
        f"<h2 style='font:600 18px system-ui'>SAS inspection: {html.escape(model)}</h2>",
        f"<p style='font:13px system-ui;max-width:1100px'>{html.escape(facts)}</p>",
        f"<table style='font:12px system-ui;margin-bottom:10px'>{rows}</table>",
        image,
        legend_html(settings.get("sas_ratio"), scale),
    ]
    rule = SASRule.from_settings(settings)
    if shown < len(view.rollouts):
        parts.append(f"<p style='font:13px system-ui'>The first {shown} of {len(view.rollouts)} rollouts:</p>")
    for i in range(shown):
        r = view.rollouts[i]
        verdict = True if r.correct is None else r.correct
        title = f"#{i} · prompt: {r.prompt_text[:200]}" + ("…" if len(r.prompt_text) > 200 else "")
        if r.correct is None:
            title += " · no verdict: shown as if correct"
        notes = (answer_note(r), counting_note(rule, view.step_ids[i], verdict, r.truncated))
        main = _render(view, tokenizer, i, verdict, r, title, f"r{i}", scale, notes)
        other_notes = (counting_note(rule, view.step_ids[i], not verdict, r.truncated),)
        other = _render(view, tokenizer, i, not verdict, r, None, f"r{i}o", scale, other_notes, as_verdict=not verdict)
        label = "if it had failed" if verdict else "if it were correct"
        parts.append(
            f"{main}<details style='margin:-10px 0 22px 70px;font:12px system-ui'><summary>what SAS would zero "
            f"{label}</summary>{other}</details>"
        )
    return html_document("".join(parts), title=f"SAS inspection: {model}")


def _render(view, tokenizer, i, verdict, rollout, title, uid, scale, notes, as_verdict=None) -> str:
    segs = segments(view.ids[i], tokenizer, view.step_ids[i], view.logps[i], view.zero_for(i, verdict), view.mask[i])
    shown = rollout.correct if as_verdict is None else as_verdict
    return html_from_segments(
        segs, shown, is_truncated=rollout.truncated, title=title, uid=uid, notes=notes, scale=scale
    )


def terminal_summary(view: Inspection, tokenizer, stats: dict, model: str, color: bool | None = None) -> str:
    """A few lines of numbers, then the first correct and the first failed rollout, rendered for the terminal."""
    lines = [
        f"{model}: {stats['rollouts']} rollouts ({stats['correct']} correct, {stats['failed']} failed, "
        f"{stats['unknown']} without a verdict, {stats['truncated']} truncated)",
        f"steps per rollout: mean {stats['mean_steps']:.1f}, {stats['rollouts_without_steps']} rollouts without a "
        f"step; step length: median {stats['median_step_tokens']} tokens, max {stats['max_step_tokens']}",
        f"SAS would zero {100 * stats['zeroed_frac_if_correct']:.1f}% of tokens if all were correct, "
        f"{100 * stats['zeroed_frac_if_failed']:.1f}% if all had failed",
    ]
    picks = []
    for wanted in (True, False, None):
        i = next((k for k, r in enumerate(view.rollouts) if r.correct is wanted), None)
        if i is not None:
            picks.append(i)
    for i in picks[:2]:
        r = view.rollouts[i]
        verdict = True if r.correct is None else r.correct
        lines.append("")
        lines.append(f"rollout #{i}, prompt: {r.prompt_text[:80]!r}")
        lines.append(
            render_terminal(
                view.ids[i],
                tokenizer,
                view.step_ids[i],
                view.logps[i],
                view.zero_for(i, verdict),
                r.correct,
                mask=view.mask[i],
                is_truncated=r.truncated,
                color=color,
            )
        )
    return "\n".join(lines)


def integer_bins(values: list[int], max_bins: int = 40) -> list[float]:
    """Histogram edges for whole-number values: each bar covers whole numbers only (edges at k - 0.5), one number
    per bar when they span at most `max_bins`, else `width` numbers per bar."""
    low, high = min(values), max(values)
    width = max(1, math.ceil((high - low + 1) / max_bins))
    count = math.ceil((high - low + 1) / width)
    return [low - 0.5 + width * i for i in range(count + 1)]


def plot_histograms(stats: dict[str, Any], path: Path) -> Path:
    """Two panels: steps per rollout, and step lengths in tokens; bars and ticks on whole numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    steps = stats["steps_per_rollout"]
    if steps:
        left.hist(steps, bins=integer_bins(steps), color="tab:blue", alpha=0.8, edgecolor="white")
    left.set_xlabel("steps per rollout")
    left.set_ylabel("rollouts")
    left.set_title(f"steps per rollout (mean {stats['mean_steps']:.1f})", fontsize=10)
    lengths = stats["step_tokens"]
    if lengths:
        right.hist(lengths, bins=integer_bins(lengths), color="tab:green", alpha=0.8, edgecolor="white")
        right.set_title(f"step length (median {stats['median_step_tokens']} tokens)", fontsize=10)
    else:
        right.text(0.5, 0.5, "no step", ha="center", va="center", transform=right.transAxes)
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlabel("tokens per step")
    right.set_ylabel("steps")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return path
