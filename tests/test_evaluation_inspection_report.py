"""sas_trl.evaluation.inspection_report: the numbers, the HTML report and the terminal summary of an Inspection."""

from __future__ import annotations

import pytest
import torch

from sas_trl import segment_steps
from sas_trl.evaluation.inspection_report import integer_bins, report_html, statistics_of, terminal_summary
from sas_trl.evaluation.inspection_rollouts import Inspection, Rollout
from sas_trl.evaluation.scoring import padded
from sas_trl.tiny import build_tokenizer

TEXTS = [
    "3 + 4 = 7\n\nLet me double-check: 3 + 4 = 7\n\n7 + 5 = 12\n\n</think>\\boxed{12}",
    "1 + 2 = 3\n\n<script>x</script>\n\n3 + 1 = 4\n\nLet me",
]


def view(tok) -> Inspection:
    """Two rollouts (correct; failed and truncated); SAS's masks: the first step if correct, the last if failed."""
    items = [
        Rollout("Add 3, 4, 5.", (5, 6), tok(TEXTS[0])["input_ids"], True, False),
        Rollout("Add 1, 2, 1.", (5, 7), tok(TEXTS[1])["input_ids"], False, True),
    ]
    ids, mask = padded([r.completion_ids for r in items], tok.pad_token_id or 0, torch.long)
    logps = torch.full(ids.shape, -0.5) * mask
    step_ids = segment_steps(ids, mask, tok)
    last = step_ids.max(dim=1, keepdim=True).values
    return Inspection(items, ids, mask, logps, step_ids, step_ids == 0, (step_ids == last) & (step_ids >= 0))


def test_statistics_count_verdicts_steps_and_zeroed_tokens():
    tok = build_tokenizer()
    v = view(tok)
    stats = statistics_of(v)
    assert stats["rollouts"] == 2 and stats["correct"] == 1 and stats["failed"] == 1 and stats["unknown"] == 0
    assert stats["truncated"] == 1 and stats["steps_per_rollout"] == [3, 4] and stats["mean_steps"] == 3.5
    assert sum(stats["step_tokens"]) == int((v.step_ids >= 0).sum()) and stats["rollouts_without_steps"] == 0
    assert stats["mean_step_confidence"] == -0.5
    tokens = int(v.mask.sum())
    assert stats["zeroed_frac_if_correct"] == float(v.zero_if_correct.sum() / tokens) > 0


def test_report_escapes_text_and_shows_both_verdicts():
    tok = build_tokenizer()
    v = view(tok)
    page = report_html(v, tok, statistics_of(v), {"sas_ratio": 0.3}, "m<odel>", max_rendered=1)
    assert "<script>" not in page and "m&lt;odel&gt;" in page
    assert "The first 1 of 2 rollouts" in page and "what SAS would zero if it had failed" in page
    assert page.count('<div class="sas-rollout">') == 2  # rollout 0 as correct, and as if it had failed


def test_terminal_summary_shows_a_correct_and_a_failed_rollout():
    tok = build_tokenizer()
    v = view(tok)
    text = terminal_summary(v, tok, statistics_of(v), "m", color=False)
    assert text.startswith("m: 2 rollouts (1 correct, 1 failed, 0 without a verdict, 1 truncated)")
    assert "rollout #0" in text and "rollout #1" in text and "\x1b[" not in text


def test_each_rollout_states_its_verdict_answers_and_counting_rule():
    from dataclasses import replace

    tok = build_tokenizer()
    v = view(tok)
    v.rollouts[0] = replace(v.rollouts[0], answer="12", reference=("12",))
    page = report_html(v, tok, statistics_of(v), {"sas_ratio": 0.3}, "m", max_rendered=2)
    assert "Verdict: correct. Answer graded: 12. Reference: 12." in page
    assert "Verdict: failed; cut at the token budget. Answer graded: none extracted" in page
    assert "Reference: none given." in page
    # rollout 0 has 3 steps: correct zeroes ceil(0.9) = 1; as if failed, 3 - ceil(2.1) = 0
    assert "Counting (paper): r = 0.3, 3 steps, correct: zero ceil(r x N) = ceil(0.9) = 1 step." in page
    assert "r = 0.3, 3 steps, failed: zero N - ceil((1 - r) x N) = 3 - ceil(2.1) = 0 steps." in page
    assert "r = 0.3, 4 steps, failed: zero N - ceil((1 - r) x N) = 4 - ceil(2.8) = 1 step." in page


def test_counting_note_says_when_the_settings_leave_a_rollout_alone():
    from sas_trl.core import SASRule
    from sas_trl.evaluation.inspection_report import counting_note

    steps = torch.tensor([0, 0, 1, 2, -1])  # 3 steps
    note = counting_note(SASRule(strategy="correct_only"), steps, correct=False, truncated=False)
    assert note.endswith("but sas_strategy 'correct_only' leaves failed rollouts alone: 0 zeroed.")
    assert "fewer than sas_min_steps = 4: 0 zeroed" in counting_note(SASRule(min_steps=4), steps, True, False)
    release = counting_note(SASRule(count_mode="release"), steps, correct=True, truncated=False)
    assert "zero ceil(N - 1 + r) = ceil(2.3) = 3 steps." in release
    token = counting_note(SASRule(granularity="token", ratio=0.5), steps, correct=True, truncated=False)
    assert "4 tokens, correct: zero ceil(r x N) = ceil(2) = 2 tokens." in token


def test_one_shading_scale_spans_the_observed_confidences():
    import re

    tok = build_tokenizer()
    v = view(tok)
    v.logps = torch.where(v.step_ids == 0, -0.1, -1.0) * v.mask  # step 0 confident (0.905), the rest 0.368
    page = report_html(v, tok, statistics_of(v), {"sas_ratio": 0.3}, "m", max_rendered=2)
    assert '0.37 <span class="ramp"' in page and "</span> 0.90 (the range of the steps shown)" in page
    shades = {
        float(a)
        for a in re.findall(
            r'class="step[^"]*" id="r\d+-s\d+" title="[^"]*" style="background:rgba\(9,105,218,([\d.]+)\)', page
        )
    }
    assert shades == {0.04, 0.5}  # the lowest and highest observed confidence take the scale's two ends


@pytest.mark.parametrize("values", [[3], [0, 1, 1, 4], [2, 5, 17, 60, 61], list(range(7, 200, 3))])
def test_histogram_bars_cover_whole_numbers_only(values):
    edges = integer_bins(values)
    assert all((e + 0.5).is_integer() for e in edges) and len(edges) - 1 <= 40
    assert edges[0] < min(values) and max(values) < edges[-1]
    widths = {b - a for a, b in zip(edges, edges[1:], strict=False)}
    assert len(widths) == 1 and (widths == {1.0} or max(values) - min(values) + 1 > 40)  # one number a bar if it fits
