"""`sas-trl inspect`: check SAS's step split and selection on your own model before you train.

For a model and prompts, benchmark problems or an existing samples file: sample (or read) rollouts
(`inspection_rollouts`), score every token under the model (temperature 1, `scoring.token_logprobs`), segment
and select exactly as training would (the `SASRule` that `SASConfig.sas_rule` gives for the same recipe and flags), and
write (`inspection_report`)

* `inspect.html`: every rollout rendered under its verdict and under the other one;
* `inspect.png`: histograms of steps per rollout and of step lengths in tokens;
* `inspect.json`: the numbers; `inspect_samples.jsonl`: the rollouts drawn (resumable, and a valid `--samples`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..core import SASRule
from ..errors import UserError
from ..output_files import write_text
from ..selection import labels_of, pad_labels
from .backends import SamplingSettings
from .config import EvalInputs
from .inspection_report import plot_histograms, report_html, statistics_of, terminal_summary
from .inspection_rollouts import (
    Inspection,
    Rollout,
    prompt_items,
    read_samples,
    rollouts_from_samples,
    sample_rollouts,
)
from .sampling import load_items, load_tokenizer
from .scoring import padded, scoring_model, token_logprobs

SAMPLES_FILE = "inspect_samples.jsonl"
REPORT_FILE = "inspect.html"
RESULTS_FILE = "inspect.json"
PLOT_FILE = "inspect.png"


@dataclass(kw_only=True)
class InspectConfig(EvalInputs):
    """Everything `sas-trl inspect` takes. Exactly one source of rollouts: prompts, a samples file or benchmarks."""

    results_root: ClassVar[str] = "inspect_results"

    benchmarks: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    samples: str | None = None
    n: int = 4
    # The paper's rollout temperature, the whole distribution, and a short budget.
    sampling: SamplingSettings = field(default_factory=lambda: SamplingSettings(1.0, 1.0, 1024))
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
        if self.max_rendered < 0 or self.score_batch_size < 1:
            raise UserError("--score_batch_size must be >= 1, --max_rendered >= 0")
        if self.samples:
            read_samples(self.samples)  # fields checked now, before any model work


# --------------------------------------------------------------------------------------------------
# Segment and select as training would
# --------------------------------------------------------------------------------------------------


def inspect_rollouts(rollouts: list[Rollout], token_logps: list[torch.Tensor], tokenizer, rule: SASRule) -> Inspection:
    """Segment and select with training's rule (`SASRule.segment`, `SASRule.zero_mask`), for a correct and for a
    failed verdict."""
    ids, mask = padded([r.completion_ids for r in rollouts], tokenizer.pad_token_id or 0, torch.long)
    logps, _ = padded([lp.tolist() for lp in token_logps], 0.0, torch.float32)
    step_ids = rule.segment(ids, mask, tokenizer)
    truncated = torch.tensor([r.truncated for r in rollouts])
    labels = None
    if rule.needs_labels:  # an oracle: ground truth per step (the command admits built-in problems only)
        texts = [tokenizer.decode(r.completion_ids, skip_special_tokens=True) for r in rollouts]
        labels = pad_labels([labels_of(r.prompt_text, text) or () for r, text in zip(rollouts, texts, strict=True)])
    zeros = []
    for correct in (True, False):
        generator = torch.Generator().manual_seed(0)  # selections that draw keys (random), reproducibly
        zeros.append(
            rule.zero_mask(
                step_ids,
                logps,
                torch.full((len(rollouts),), correct),
                is_truncated=truncated,
                generator=generator,
                labels=labels,
            )
        )
    return Inspection(rollouts, ids, mask, logps, step_ids, *zeros)


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def run_inspect(config: InspectConfig, backend=None) -> dict[str, Any]:
    """Sample or read, score, segment and select; writes inspect.html, inspect.png and inspect.json."""
    tokenizer = load_tokenizer(config.model)
    if config.samples:
        rollouts = rollouts_from_samples(config.samples, config, tokenizer)
    else:
        items = prompt_items(config.prompts) if config.prompts else load_items(config)  # before the model loads
        rollouts, backend = sample_rollouts(config, items, tokenizer, SAMPLES_FILE, backend)
    model = scoring_model(backend, config.model)
    logps = token_logprobs(
        model, [r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts], config.score_batch_size
    )
    view = inspect_rollouts(rollouts, logps, tokenizer, config.sas)
    stats = statistics_of(view)
    out = config.resolved_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    plot_histograms(stats, out / PLOT_FILE)
    settings = config.sas.settings()
    write_text(
        out,
        REPORT_FILE,
        report_html(view, tokenizer, stats, settings, config.model, config.max_rendered, out / PLOT_FILE),
    )
    results = {"model": config.model, "settings": settings, **stats}
    write_text(out, RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    results["terminal"] = terminal_summary(view, tokenizer, stats, config.model)
    return results
