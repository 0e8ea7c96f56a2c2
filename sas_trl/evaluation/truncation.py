"""`sas-trl analyze-truncation`: how many traces that are correct at a long budget fail when cut short.

The measurement behind SAS (the paper: ~29% for 8K -> 4K). Sample at the long budget, keep the traces that are
correct, cut each at the short budget and grade it again. Traces that fit are unchanged; traces that now fail
became "verifier-failed" only because of the cut. For those, report the tokens they lost and the step
confidence profile of what the short budget kept: the mean token log-prob of each "\\n\\n" step under the
model itself (temperature 1, as SAS computes it, `SASRule.segment` + `step_statistics`), by step position and by
decile of relative position, with the fraction of steps SAS's failed-side shield would zero (ratio r). Correct
traces that fit in the short budget give the contrast profile.

With `--n` samples per problem as a GRPO group, it also reports the median number of steps per rollout at the long
budget and the share of mislabelled traces (correct at long, failed when cut) that sit in a mixed group, where
another sample of the problem is correct at the short budget so GRPO gives the mislabelled one a negative
advantage (in an all-fail group the advantage is 0 and no method can act). On the built-in `addition` benchmark
every step has a label (`sas_trl.step_labels`: correct, wrong, redundant): it reports their shares and SAS's
selection against them at the short budget (the rule of `--recipe` and the `--sas_*` flags, applied to every
rollout cut as training would cut it): of the steps SAS shields in failed rollouts, the share that were correct;
of the steps it zeroes in correct rollouts, the share that were redundant or wrong. Each of the testbed's criteria
(`testbed.CRITERIA`, docs/testbed.md) is reported next to its target.

Outputs in the output folder: truncation_samples.jsonl (the long samples, resumable like `sas-trl eval`),
truncation.json and truncation.png.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..constants import THINK_END
from ..core import SASRule, step_statistics
from ..errors import UserError
from ..output_files import save_figure, write_text
from ..segmentation import count_steps
from ..step_labels import NAMES
from .config import EvalInputs
from .datasets import BUILTIN
from .sampling import SamplingRun, load_items, load_tokenizer, open_grader
from .scoring import padded, scoring_model, token_logprobs
from .testbed import check_criteria, mixed_group_share, step_label_results, zeroed_steps

SAMPLES_FILE = "truncation_samples.jsonl"
RESULTS_FILE = "truncation.json"
PLOT_FILE = "truncation.png"
MAX_POSITIONS = 32  # step positions reported one by one (the deciles cover every step)


@dataclass(kw_only=True)
class TruncationConfig(EvalInputs):
    """Everything `sas-trl analyze-truncation` takes. Sampling defaults are the paper's evaluation protocol; the
    long budget is the sampling budget (`sampling.max_tokens`)."""

    results_root: ClassVar[str] = "truncation_results"

    n: int = 4
    short_tokens: int = 4096
    sas: SASRule = field(default_factory=SASRule)  # the rule whose shield is overlaid (its ratio, counting, ...)
    score_batch_size: int = 4

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.short_tokens < self.long_tokens:
            raise UserError(f"need 1 <= --short_tokens < --long_tokens, got {self.short_tokens}, {self.long_tokens}")
        if self.score_batch_size < 1:
            raise UserError("--score_batch_size must be >= 1")

    @property
    def long_tokens(self) -> int:
        return self.sampling.max_tokens


# --------------------------------------------------------------------------------------------------
# Pure pieces
# --------------------------------------------------------------------------------------------------


def confidence_profile(
    step_ids: torch.Tensor, token_logps: torch.Tensor, is_correct: bool, rule: SASRule | float = 0.3
) -> dict[str, Any]:
    """Step confidence by position and by decile of relative position, and where SAS would zero steps.

    Args:
        step_ids: LongTensor (B, T) from `segment_steps` (-1 outside steps).
        token_logps: FloatTensor (B, T), the model's own log-probs of the tokens.
        is_correct: how SAS would see these traces (True: its correct side zeroes the least confident steps;
            False: its failed-side shield zeroes the most confident ones).
        rule: the SAS rule (or just its ratio, other settings the paper's); the traces count as truncated when
            failed (they are cut traces), so failed_scope "truncated" shields them too.

    Returns:
        {"traces", "steps_per_trace", "by_position": [{"step", "mean_confidence", "count"}],
         "by_decile": [{"decile", "mean_confidence", "count", "sas_zeroed"}]}; decile d holds the steps j of a
        trace with N steps for which floor(10 j / N) = d.
    """
    batch = step_ids.size(0)
    confidence, counts = step_statistics(step_ids, token_logps)  # (B, S) each
    present = counts > 0
    rule = rule if isinstance(rule, SASRule) else SASRule(ratio=rule)
    verdicts = torch.full((batch,), is_correct)
    zero = rule.zero_mask(step_ids, token_logps, verdicts, is_truncated=~verdicts)  # (B, T)
    zeroed = zeroed_steps(step_ids, zero, confidence.size(1))

    num_steps = present.sum(dim=1, keepdim=True)  # (B, 1)
    position = torch.arange(confidence.size(1)).expand_as(confidence)
    decile = (10 * position).div(num_steps.clamp(min=1), rounding_mode="floor")
    by_position = []
    for j in range(min(confidence.size(1), MAX_POSITIONS)):
        keep = present[:, j]
        if keep.any():
            by_position.append(
                {"step": j, "mean_confidence": confidence[keep, j].mean().item(), "count": int(keep.sum())}
            )
    by_decile = []
    for d in range(10):
        keep = present & (decile == d)
        count = int(keep.sum())
        by_decile.append(
            {
                "decile": d,
                "mean_confidence": confidence[keep].mean().item() if count else None,
                "count": count,
                "sas_zeroed": zeroed[keep].float().mean().item() if count else None,
            }
        )
    return {
        "traces": batch,
        "steps_per_trace": num_steps.float().mean().item() if batch else 0.0,
        "by_position": by_position,
        "by_decile": by_decile,
    }


def profile_traces(
    model, tokenizer, prompts: list, completions: list, is_correct: bool, rule: SASRule, batch_size: int
) -> dict[str, Any] | None:
    """`confidence_profile` of completions (token ids) after their prompts, or None without traces."""
    if not completions:
        return None
    logps = token_logprobs(model, prompts, completions, batch_size)
    ids, mask = padded(completions, tokenizer.pad_token_id or 0, torch.long)
    logp_table, _ = padded([lp.tolist() for lp in logps], 0.0, torch.float32)
    step_ids = rule.segment(ids, mask, tokenizer)
    return confidence_profile(step_ids, logp_table, is_correct, rule)


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def run_truncation(config: TruncationConfig, backend=None) -> dict[str, Any]:
    """Sample (or resume), cut, re-grade, profile; writes truncation.json and truncation.png."""
    items = load_items(config)
    tokenizer = load_tokenizer(config.model)
    run = SamplingRun.open(config, items, tokenizer, SAMPLES_FILE, backend)
    short = config.short_tokens
    with open_grader(config.reward_format) as reward:
        run.draw(reward, keep_token_ids=True)
        prompts = run.prompt_ids()
        records = run.records()
        answers = {(it.benchmark, it.id): it.answers for it in items}
        cut_all = [r for r in records if r["tokens"] > short]
        kept_all = [tokenizer.decode(r["token_ids"][:short], skip_special_tokens=True) for r in cut_all]
        regraded_all = reward.grade(kept_all, [answers[(r["benchmark"], r["id"])] for r in cut_all])
    correct = [r for r in records if r["correct"] == 1.0]
    fit = [r for r in correct if r["tokens"] <= short]
    short_ok = {id(r): r["correct"] == 1.0 for r in records}  # what the reward says of each rollout cut at short
    short_ok.update({id(r): score == 1.0 for r, score in zip(cut_all, regraded_all, strict=True)})
    cut = [r for r in cut_all if r["correct"] == 1.0]
    kept_texts = {id(r): text for r, text in zip(cut_all, kept_all, strict=True)}
    flipped = [(r, kept_texts[id(r)]) for r in cut if not short_ok[id(r)]]
    lost = [r["tokens"] - short for r, _ in flipped]

    builtin = [r for r in records if r["benchmark"] == BUILTIN]
    needs_model = flipped or fit or builtin
    model = scoring_model(run.backend, config.model) if needs_model else None  # no traces: nothing to score
    profiles = {
        "flipped": profile_traces(
            model,
            tokenizer,
            [prompts[(r["benchmark"], r["id"])] for r, _ in flipped],
            [r["token_ids"][:short] for r, _ in flipped],
            False,
            config.sas,
            config.score_batch_size,
        ),
        "fit": profile_traces(
            model,
            tokenizer,
            [prompts[(r["benchmark"], r["id"])] for r in fit],
            [r["token_ids"] for r in fit],
            True,
            config.sas,
            config.score_batch_size,
        ),
    }
    steps = rollout_steps(tokenizer, [r["token_ids"] for r in records], config.sas)
    flagged = {id(r) for r, _ in flipped}
    results = {
        "model": config.model,
        "settings": {
            "n": config.n,
            "long_tokens": config.long_tokens,
            "short_tokens": config.short_tokens,
            "temperature": config.sampling.temperature,
            "top_p": config.sampling.top_p,
            "seed": config.sampling.seed,
            "ratio": config.sas.ratio,
            "sas": config.sas.settings(),
            "reward_format": config.reward_format,
            "benchmarks": list(config.benchmarks),
        },
        "samples": len(records),
        "correct_long": len(correct),
        "pass_at_1": len(correct) / len(records) if records else None,
        "median_steps": float(statistics.median(steps)) if steps else None,
        "fit_short": len(fit),
        "cut": len(cut),
        "flipped": len(flipped),
        "flipped_fraction": len(flipped) / len(correct) if correct else None,  # of the traces correct at long
        "flipped_fraction_of_cut": len(flipped) / len(cut) if cut else None,
        "flipped_lost_only_answer": (
            sum(THINK_END in text for _, text in flipped) / len(flipped) if flipped else None
        ),  # reasoning finished ("</think>" kept) but the boxed answer was cut
        "mislabelled_in_mixed_groups": mixed_group_share(
            [(r["benchmark"], r["id"]) for r in records],
            [id(r) in flagged for r in records],
            [short_ok[id(r)] for r in records],
        ),
        "tokens_lost": _describe(lost),
        "tokens_lost_all": lost,
        "profiles": profiles,
    }
    if builtin:
        questions = {(it.benchmark, it.id): it.messages[-1]["content"] for it in items if it.benchmark == BUILTIN}
        verdicts = [short_ok[id(r)] for r in builtin]
        results |= step_label_results(model, tokenizer, builtin, prompts, questions, verdicts, config)
    results["criteria"] = check_criteria(results)
    out = config.resolved_output_dir()
    write_text(out, RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    plot(results, out / PLOT_FILE)
    return results


def rollout_steps(tokenizer, completions: list, rule: SASRule) -> list[int]:
    """SAS's steps per rollout (token ids, as sampled at the long budget)."""
    if not completions:
        return []
    ids, mask = padded(completions, tokenizer.pad_token_id or 0, torch.long)
    return count_steps(rule.segment(ids, mask, tokenizer)).tolist()


def _describe(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "median": float(statistics.median(values)),
        "min": min(values),
        "max": max(values),
    }


def summary_text(results: dict[str, Any]) -> str:
    """A few lines for the console."""
    s = results["settings"]
    lines = [
        f"{results['model']}: {results['samples']} samples at {s['long_tokens']} tokens, "
        f"{results['correct_long']} correct; {results['fit_short']} fit in {s['short_tokens']} tokens, "
        f"{results['cut']} were cut."
    ]
    if results["flipped_fraction"] is None:
        lines.append("No correct trace: nothing to cut.")
    else:
        lines.append(
            f"Verifier-failed after the cut: {results['flipped']} of {results['correct_long']} correct traces "
            f"({100 * results['flipped_fraction']:.1f}%)."
        )
    if results["tokens_lost"]:
        t = results["tokens_lost"]
        lines.append(f"Tokens they lost: mean {t['mean']:.1f}, median {t['median']:.0f}, max {t['max']}.")
        share = 100 * results["flipped_lost_only_answer"]
        lines.append(f"Of those, {share:.1f}% had closed their reasoning (</think>) and lost only the answer.")
    labels = results.get("step_labels")
    if labels and labels["steps"]:
        lines.append(
            f"Step labels at {s['long_tokens']} tokens ({labels['steps']} steps): "
            + ", ".join(f"{100 * labels[name]:.1f}% {name}" for name in NAMES.values())
            + "."
        )
    chosen = results.get("selection_vs_labels")
    if chosen:
        lines.append(
            f"SAS at {s['short_tokens']} tokens: of the {chosen['shielded_steps']} steps it shields in failed "
            f"rollouts, {_percent(chosen['shielded_correct'])} were correct (of all their steps: "
            f"{_percent(chosen.get('failed_steps_correct'))}); of the {chosen['zeroed_steps']} it zeroes in correct "
            f"rollouts, {_percent(chosen['zeroed_redundant_or_wrong'])} were redundant or wrong (of all their steps: "
            f"{_percent(chosen.get('correct_steps_redundant_or_wrong'))})"
            + (f" ({chosen['left_out']} rollout(s) left out: steps not aligned with the text)." if chosen["left_out"]
               else ".")
        )  # fmt: skip
    lines.append("Testbed criteria (docs/testbed.md):")
    for c in results.get("criteria") or check_criteria(results):
        verdict = {True: "holds", False: "FAILS", None: "not measured"}[c["holds"]]
        lines.append(f"  {c['criterion']}: {_value(c['value'])} (target {c['target']}): {verdict}")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:g}" if float(value).is_integer() else f"{value:.3f}"


def plot(results: dict[str, Any], path: Path) -> Path:
    """Two panels: step confidence by position decile (with SAS's zeroed fraction), and tokens lost."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    s = results["settings"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{10 * d}-{10 * d + 10}%" for d in range(10)]
    x = list(range(10))
    flipped, fit = results["profiles"]["flipped"], results["profiles"]["fit"]
    if flipped:
        shield = [b["sas_zeroed"] or 0.0 for b in flipped["by_decile"]]
        bars = left.twinx()
        bars.bar(x, shield, color="tab:orange", alpha=0.25, label=f"shielded by SAS (r={s['ratio']})")
        bars.set_ylim(0, 1)
        bars.set_ylabel("fraction of steps SAS zeroes (cut traces)")
        bars.legend(loc="upper right", fontsize=8)
    for profile, name, color in (
        (flipped, "correct, then failed when cut", "tab:red"),
        (fit, "correct within the short budget", "tab:blue"),
    ):
        if profile:
            ys = [b["mean_confidence"] for b in profile["by_decile"]]
            points = [(xi, y) for xi, y in zip(x, ys, strict=True) if y is not None]
            label = f"{name} ({profile['traces']} traces)"
            left.plot([p[0] for p in points], [p[1] for p in points], "o-", color=color, label=label)
    left.set_xticks(x, labels, rotation=45, fontsize=8)
    left.set_xlabel(f"step position within the first {s['short_tokens']} tokens")
    left.set_ylabel("mean step confidence (token log-prob)")
    left.set_title("Step confidence of the kept reasoning")
    if flipped or fit:
        left.legend(loc="lower left", fontsize=8)
    else:
        left.text(0.5, 0.5, "no correct trace", ha="center", va="center", transform=left.transAxes)

    lost = results["tokens_lost_all"]
    if lost:
        right.hist(lost, bins=min(30, max(5, len(lost) // 3)), color="tab:red", alpha=0.8)
        right.set_xlabel("tokens lost to the cut")
        right.set_ylabel("traces")
    else:
        right.text(0.5, 0.5, "no correct trace was cut", ha="center", va="center", transform=right.transAxes)
    fraction = results["flipped_fraction"]
    headline = "n/a" if fraction is None else f"{100 * fraction:.1f}%"
    right.set_title(f"{headline} of correct traces fail when cut {s['long_tokens']} -> {s['short_tokens']} tokens")
    fig.suptitle(f"Truncation analysis: {results['model']}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path
