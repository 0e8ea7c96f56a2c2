"""sas_trl.evaluation.inspection_report: the numbers, the HTML report and the terminal summary of an Inspection."""

from __future__ import annotations

import torch

from sas_trl import segment_steps
from sas_trl.evaluation.inspection_report import report_html, statistics_of, terminal_summary
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
