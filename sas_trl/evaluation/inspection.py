"""`sas-trl inspect`: check SAS's step split and selection on your own model before you train.

For a model and prompts, benchmark problems or an existing samples file: sample (or read) rollouts, score every
token under the model (temperature 1, `truncation.token_logprobs`), segment and select exactly as training
would (the same `SASRule` that `SASConfig.sas_rule` gives for the recipe and flags), and write

* `inspect.html`: every rollout rendered (`sas_trl.render`), under its verdict and under the other one (what
  SAS would zero if it were correct, and if it had failed), with the settings, a legend and the histograms;
* `inspect.png`: histograms of steps per rollout and of step lengths in tokens;
* `inspect.json`: the numbers; `inspect_samples.jsonl`: the rollouts drawn (resumable, and a valid `--samples`).

A samples file is JSON lines (a `{"header": ...}` first line is skipped), each with the completion (`token_ids`,
or `text`), the prompt (`prompt`, or `benchmark` and `id` of a benchmark the options can load) and optionally
the verdict (`correct`: 1 is correct, anything else failed) and `finish` ("length" = truncated). The files
`sas-trl eval` and `sas-trl analyze-truncation` write qualify.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..core import SASRule, count_steps, step_statistics
from ..errors import UserError
from ..render import html_document, html_from_segments, legend_html, render_terminal, segments
from .backends import SamplingSettings, TransformersBackend
from .config import EvalInputs
from .datasets import EvalItem, load_benchmark
from .runner import (
    encode_prompt,
    load_items,
    load_tokenizer,
    make_backend,
    sample_and_grade,
    samples_header,
)
from .truncation import _load_scoring_model, padded, token_logprobs

SAMPLES_FILE = "inspect_samples.jsonl"
REPORT_FILE = "inspect.html"
RESULTS_FILE = "inspect.json"
PLOT_FILE = "inspect.png"
PROMPT_BENCHMARK = "prompt"  # the benchmark name of `--prompt` items


@dataclass(kw_only=True)
class InspectConfig(EvalInputs):
    """Everything `sas-trl inspect` takes. Exactly one source of rollouts: prompts, a samples file or benchmarks."""

    results_root: ClassVar[str] = "inspect_results"

    benchmarks: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    samples: str | None = None
    n: int = 4
    max_tokens: int = 1024
    temperature: float = 1.0  # the paper's rollout temperature
    top_p: float = 1.0
    seed: int = 0
    sas: SASRule = field(default_factory=SASRule)  # what training would apply (`SASConfig.sas_rule`)
    max_rendered: int = 100
    score_batch_size: int = 4

    def __post_init__(self):
        super().__post_init__()
        given = [name for name, v in (("--prompt", self.prompts), ("--samples", self.samples)) if v]
        if len(given) > 1:
            raise UserError("pass either --prompt or --samples, not both")
        if not given and not self.benchmarks:
            raise UserError("nothing to inspect: pass --prompt TEXT, --samples FILE or --benchmarks NAMES")
        if self.max_tokens < 1 or self.max_rendered < 0 or self.score_batch_size < 1:
            raise UserError("--max_tokens and --score_batch_size must be >= 1, --max_rendered >= 0")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise UserError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.samples:
            read_samples(self.samples)  # fields checked now, before any model work

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_p, self.max_tokens, self.seed)


# --------------------------------------------------------------------------------------------------
# Reading rollouts
# --------------------------------------------------------------------------------------------------


def read_samples(path: str) -> list[dict[str, Any]]:
    """The records of a samples file, each checked for a completion and a prompt (UserError naming the line)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--samples {path!r}: no such file")
    records = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"--samples {path!r} line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"--samples {path!r} line {number}: expected a JSON object")
        if "header" in record:
            continue
        if "token_ids" not in record and "text" not in record:
            raise UserError(f"--samples {path!r} line {number}: no completion; needs field 'token_ids' or 'text'")
        if "prompt" not in record and not ("benchmark" in record and "id" in record):
            raise UserError(
                f"--samples {path!r} line {number}: no prompt; needs field 'prompt', or 'benchmark' and 'id'"
            )
        records.append(record)
    if not records:
        raise UserError(f"--samples {path!r} holds no samples")
    return records


@dataclass
class Rollout:
    prompt_text: str
    prompt_ids: tuple[int, ...]
    completion_ids: list[int]
    correct: bool | None  # None: no verdict (a prompt without a gold answer)
    truncated: bool


class _GradeKnown:
    """Grades only the completions that have gold answers (a bare `--prompt` has none: its verdict is unknown)."""

    def __init__(self, reward):
        self.reward = reward

    def grade(self, texts, answers):
        known = [i for i, a in enumerate(answers) if a]
        scores = self.reward.grade([texts[i] for i in known], [answers[i] for i in known]) if known else []
        out: list[float | None] = [None] * len(texts)
        for i, score in zip(known, scores, strict=True):
            out[i] = score
        return out


def _verdict(correct) -> bool | None:
    return None if correct is None else correct == 1.0


def _prompt_text(item: EvalItem) -> str:
    return "".join(m["content"] for m in item.messages)


def rollouts_from_samples(config: InspectConfig, tokenizer) -> list[Rollout]:
    records = read_samples(config.samples)
    needed = sorted({r["benchmark"] for r in records if "prompt" not in r})
    items = {
        (it.benchmark, it.id): it
        for name in needed
        for it in load_benchmark(name, config.sources, config.data_dir, config.limit, config.addition_terms)
    }
    out = []
    for r in records:
        if "prompt" in r:
            messages = [{"role": "user", "content": r["prompt"]}]
        else:
            item = items.get((r["benchmark"], str(r["id"])))
            if item is None:
                raise UserError(f"--samples {config.samples!r}: benchmark {r['benchmark']} has no problem {r['id']!r}")
            messages = item.messages
        ids = r.get("token_ids")
        if ids is None:
            ids = tokenizer(r["text"], add_special_tokens=False)["input_ids"]
        text = "".join(m["content"] for m in messages)
        correct = _verdict(r.get("correct"))
        out.append(Rollout(text, encode_prompt(tokenizer, messages), list(ids), correct, r.get("finish") == "length"))
    return out


def sample_rollouts(config: InspectConfig, tokenizer, backend=None) -> tuple[list[Rollout], Any]:
    """Draw n rollouts per prompt or benchmark problem (resumable); returns them and the backend."""
    from ..rewards import MathVerifyReward
    from .store import SampleStore

    if config.prompts:
        items = [
            EvalItem(PROMPT_BENCHMARK, str(i), [{"role": "user", "content": p}], [])
            for i, p in enumerate(config.prompts)
        ]
    else:
        items = load_items(config)
    out = config.resolved_output_dir()
    store = SampleStore(out / SAMPLES_FILE, samples_header(config), overwrite=config.overwrite)
    backend = backend or make_backend(config.backend, config.model, tokenizer, config.batch_size, config.seed)
    reward = MathVerifyReward(format=config.reward_format, workers=1)
    try:
        sample_and_grade(
            items, config.n, store, backend, tokenizer, config.sampling, _GradeKnown(reward), True, config.progress
        )
    finally:
        reward.close()
    rollouts = []
    for item in items:
        prompt_ids = encode_prompt(tokenizer, item.messages)
        for j in range(config.n):
            r = store.get((item.benchmark, item.id, j))
            truncated = r["finish"] == "length"
            rollouts.append(Rollout(_prompt_text(item), prompt_ids, r["token_ids"], _verdict(r["correct"]), truncated))
    return rollouts, backend


# --------------------------------------------------------------------------------------------------
# Segment and select as training would
# --------------------------------------------------------------------------------------------------


@dataclass
class Inspection:
    """Every rollout padded to (B, T), with SAS's view under both verdicts."""

    rollouts: list[Rollout]
    ids: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T)
    logps: torch.Tensor  # (B, T), the model's log-probs of the tokens (0 on padding)
    step_ids: torch.Tensor  # (B, T)
    zero_if_correct: torch.Tensor  # (B, T)
    zero_if_failed: torch.Tensor  # (B, T)

    def zero_for(self, i: int, correct: bool) -> torch.Tensor:
        return (self.zero_if_correct if correct else self.zero_if_failed)[i]


def inspect_rollouts(rollouts: list[Rollout], token_logps: list[torch.Tensor], tokenizer, rule: SASRule) -> Inspection:
    """Segment and select with training's rule (`SASRule.segment`, `SASRule.zero_mask`), for a correct and for a
    failed verdict."""
    ids, mask = padded([r.completion_ids for r in rollouts], tokenizer.pad_token_id or 0, torch.long)
    logps, _ = padded([lp.tolist() for lp in token_logps], 0.0, torch.float32)
    step_ids = rule.segment(ids, mask, tokenizer)
    truncated = torch.tensor([r.truncated for r in rollouts])
    zeros = []
    for correct in (True, False):
        generator = torch.Generator().manual_seed(0)  # selections that draw keys (random), reproducibly
        zeros.append(
            rule.zero_mask(
                step_ids, logps, torch.full((len(rollouts),), correct), is_truncated=truncated, generator=generator
            )
        )
    return Inspection(rollouts, ids, mask, logps, step_ids, *zeros)


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


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def run_inspect(config: InspectConfig, backend=None) -> dict[str, Any]:
    """Sample or read, score, segment and select; writes inspect.html, inspect.png and inspect.json."""
    tokenizer = load_tokenizer(config.model)
    if config.samples:
        rollouts = rollouts_from_samples(config, tokenizer)
    else:
        if not config.prompts:
            load_items(config)  # benchmark names and data checked before the model loads
        rollouts, backend = sample_rollouts(config, tokenizer, backend)
    model = backend.model if isinstance(backend, TransformersBackend) else _load_scoring_model(config.model)
    logps = token_logprobs(
        model, [r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts], config.score_batch_size
    )
    view = inspect_rollouts(rollouts, logps, tokenizer, config.sas)
    stats = statistics_of(view)
    out = config.resolved_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    plot_histograms(stats, out / PLOT_FILE)
    settings = config.sas.settings()
    (out / REPORT_FILE).write_text(
        report_html(view, tokenizer, stats, settings, config.model, config.max_rendered, out / PLOT_FILE)
    )
    results = {"model": config.model, "settings": settings, **stats}
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    results["terminal"] = terminal_summary(view, tokenizer, stats, config.model)
    return results


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
    parts = [
        f"<h2 style='font:600 18px system-ui'>SAS inspection: {html.escape(model)}</h2>",
        f"<p style='font:13px system-ui;max-width:1100px'>{html.escape(facts)}</p>",
        f"<table style='font:12px system-ui;margin-bottom:10px'>{rows}</table>",
        image,
        legend_html(settings.get("sas_ratio")),
    ]
    shown = min(max_rendered, len(view.rollouts))
    if shown < len(view.rollouts):
        parts.append(f"<p style='font:13px system-ui'>The first {shown} of {len(view.rollouts)} rollouts:</p>")
    for i in range(shown):
        r = view.rollouts[i]
        verdict = True if r.correct is None else r.correct
        title = f"#{i} · prompt: {r.prompt_text[:200]}" + ("…" if len(r.prompt_text) > 200 else "")
        if r.correct is None:
            title += " · no verdict: shown as if correct"
        main = _render(view, tokenizer, i, verdict, r, title, f"r{i}")
        other = _render(view, tokenizer, i, not verdict, r, None, f"r{i}o", as_verdict=not verdict)
        label = "if it had failed" if verdict else "if it were correct"
        parts.append(
            f"{main}<details style='margin:-10px 0 22px 70px;font:12px system-ui'><summary>what SAS would zero "
            f"{label}</summary>{other}</details>"
        )
    return html_document("".join(parts), title=f"SAS inspection: {model}")


def _render(view, tokenizer, i, verdict, rollout, title, uid, as_verdict=None) -> str:
    segs = segments(view.ids[i], tokenizer, view.step_ids[i], view.logps[i], view.zero_for(i, verdict), view.mask[i])
    shown = rollout.correct if as_verdict is None else as_verdict
    return html_from_segments(segs, shown, is_truncated=rollout.truncated, title=title, uid=uid)


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


def plot_histograms(stats: dict[str, Any], path: Path) -> Path:
    """Two panels: steps per rollout, and step lengths in tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    steps = stats["steps_per_rollout"]
    if steps:
        left.hist(steps, bins=range(0, max(steps) + 2), color="tab:blue", alpha=0.8, align="left")
    left.set_xlabel("steps per rollout")
    left.set_ylabel("rollouts")
    left.set_title(f"steps per rollout (mean {stats['mean_steps']:.1f})", fontsize=10)
    lengths = stats["step_tokens"]
    if lengths:
        right.hist(lengths, bins=min(40, max(5, len(set(lengths)))), color="tab:green", alpha=0.8)
        right.set_title(f"step length (median {stats['median_step_tokens']} tokens)", fontsize=10)
    else:
        right.text(0.5, 0.5, "no step", ha="center", va="center", transform=right.transAxes)
    right.set_xlabel("tokens per step")
    right.set_ylabel("steps")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
