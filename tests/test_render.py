"""The rollout renderer: blocks where the core's step ids and zero mask say, escaped text, both output kinds."""

from __future__ import annotations

import re

import pytest
import torch

from sas_trl import segment_steps, select_zero_mask
from sas_trl.render import (
    OUTSIDE,
    PADDING,
    STEP,
    render_html,
    render_terminal,
    segments,
    summary,
)
from sas_trl.tiny import build_tokenizer

STEPS = [
    "3 + 4 = 7\n\n",
    "Let me double-check: 3 + 4 = 7\n\n",
    "<script>alert('x')</script> & 7 + 5 = 12\n\n",
    "12 + 1 = 13\n\n",
]
ANSWER = "</think>\\boxed{13}"


@pytest.fixture(scope="module")
def rollout():
    """A known rollout: 4 steps, an answer, EOS, 3 padding tokens; step 1 is the least confident, step 3 the most."""
    tok = build_tokenizer()
    ids = torch.tensor(tok("".join(STEPS) + ANSWER + tok.eos_token)["input_ids"] + [tok.pad_token_id] * 3)
    mask = (ids != tok.pad_token_id).long()
    step_ids = segment_steps(ids[None], mask[None], tok)[0]
    logps = torch.tensor([-0.5, -2.0, -0.3, -0.05])[step_ids.clamp(min=0)].where(step_ids >= 0, torch.nan)
    return tok, ids, mask, step_ids, logps


def zero_for(rollout, correct: bool, ratio: float = 0.5) -> torch.Tensor:
    _, _, _, step_ids, logps = rollout
    return select_zero_mask(step_ids[None], logps[None], torch.tensor([correct]), ratio)[0]


def test_segments_follow_the_step_ids_and_the_zero_mask(rollout):
    tok, ids, mask, step_ids, logps = rollout
    zero = zero_for(rollout, correct=True)  # ceil(0.5 * 4) = 2 least confident: steps 1 and 0
    segs = segments(ids, tok, step_ids, logps, zero, mask)
    assert [s.kind for s in segs] == [STEP] * 4 + [OUTSIDE, PADDING]
    assert [s.text for s in segs[:4]] == STEPS
    assert segs[4].text == ANSWER + tok.eos_token and segs[5].tokens == 3
    assert [s.zeroed for s in segs] == [True, True, False, False, False, False]
    for s in segs[:4]:  # each block's zero flag is the mask over exactly its tokens
        assert bool(zero[s.start : s.end].all()) == s.zeroed and bool(zero[s.start : s.end].any()) == s.zeroed
    assert [round(s.mean_logp, 3) for s in segs[:4]] == [-0.5, -2.0, -0.3, -0.05]
    facts = summary(segs)
    assert facts["steps"] == 4 and facts["zeroed_steps"] == 2
    assert facts["zeroed_frac"] == pytest.approx(float(zero.sum() / mask.sum()))


def test_failed_rollout_marks_its_most_confident_steps(rollout):
    tok, ids, mask, step_ids, logps = rollout
    zero = zero_for(rollout, correct=False)  # 4 - ceil(0.5 * 4) = 2 most confident: steps 3 and 2
    segs = segments(ids, tok, step_ids, logps, zero, mask)
    assert [s.step for s in segs if s.zeroed] == [2, 3]


def test_html_marks_exactly_the_zeroed_steps(rollout):
    tok, ids, mask, step_ids, logps = rollout
    zero = zero_for(rollout, correct=True)
    page = render_html(ids, tok, step_ids, logps, zero, True, mask=mask, uid="t")
    blocks = re.findall(r'<div class="step( z)?" id="t-s(\d+)" title="([^"]*)"', page)
    assert [(int(i), bool(z)) for z, i, _ in blocks] == [(0, True), (1, True), (2, False), (3, False)]
    assert "mean log-prob -2.000" in blocks[1][2]  # the per-step mean log-prob on hover
    assert page.count('class="z"') == 2  # the strip: one cell per step, zeroed ones outlined
    assert "✓ correct" in page and "4 steps · 2 zeroed" in page and "3 padding tokens" in page


def test_html_escapes_model_text(rollout):
    tok, ids, mask, step_ids, logps = rollout
    page = render_html(ids, tok, step_ids, logps, zero_for(rollout, True), True, mask=mask, title="<b>prompt</b>")
    assert "<script>" not in page and "<b>prompt</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; 7 + 5 = 12" in page
    assert "&lt;/think&gt;" in page


def test_standalone_html_is_a_document_with_legend(rollout):
    tok, ids, mask, step_ids, logps = rollout
    page = render_html(ids, tok, step_ids, logps, zero_for(rollout, False), False, mask=mask, standalone=True)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "sas-legend" in page
    assert "✗ failed" in page and "<script" not in page


def test_long_steps_collapse_and_keep_all_text():
    tok = build_tokenizer()
    long_step = "1 + 1 = 2 " * 200 + "\n\n"
    ids = torch.tensor(tok(long_step + "</think>")["input_ids"])
    step_ids = segment_steps(ids[None], torch.ones_like(ids)[None], tok)[0]
    logps = torch.full(ids.shape, -0.1)
    page = render_html(ids, tok, step_ids, logps, torch.zeros_like(ids, dtype=torch.bool), True, head_chars=100)
    assert "<details><summary> … " in page
    assert re.sub(r"<[^>]+>", "", page).count("1 + 1 = 2") == 200  # collapsed, not cut


def test_terminal_plain_marks_zeroed_steps(rollout):
    tok, ids, mask, step_ids, logps = rollout
    text = render_terminal(ids, tok, step_ids, logps, zero_for(rollout, True), True, mask=mask, color=False)
    lines = text.splitlines()
    assert lines[0].startswith("correct: 4 steps, 2 zeroed")
    marks = [line[:3] for line in lines[1:5]]
    assert marks == ["[x]", "[x]", "[ ]", "[ ]"]
    assert "\x1b[" not in text and "Let me double-check: 3 + 4 = 7⏎⏎" in lines[2]
    assert "(3 padding tokens)" in lines[-1] and "outside" in lines[-2]


def test_terminal_colour_and_long_steps(rollout):
    tok, ids, mask, step_ids, logps = rollout
    text = render_terminal(ids, tok, step_ids, logps, zero_for(rollout, True), True, mask=mask, color=True, width=40)
    assert "\x1b[31m[x]" in text  # zeroed steps in red
    long_line = text.splitlines()[3]  # step 2, 42 characters of text
    assert long_line.startswith("[ ]   2") and " … " in long_line and long_line.endswith("12⏎⏎")
    assert len(long_line) == 40


def test_token_level_zeroing_marks_parts_of_a_step(rollout):
    tok, ids, mask, step_ids, logps = rollout
    zero = torch.zeros_like(ids, dtype=torch.bool)
    zero[2] = True  # one token of step 0
    segs = segments(ids, tok, step_ids, logps, zero, mask)
    assert segs[0].zeroed and segs[0].zeroed_tokens == 1 and len(segs[0].pieces) == 3
    assert render_terminal(ids, tok, step_ids, logps, zero, True, mask=mask, color=False).splitlines()[1][:3] == "[~]"


def test_shapes_must_agree(rollout):
    tok, ids, mask, step_ids, logps = rollout
    with pytest.raises(ValueError, match="shape"):
        segments(ids[:-1], tok, step_ids, logps, torch.zeros_like(ids, dtype=torch.bool), mask)


def test_zeroed_steps_stay_readable_framed_not_struck_through(rollout):
    from sas_trl.render import CSS

    tok, ids, mask, step_ids, logps = rollout
    page = render_html(ids, tok, step_ids, logps, zero_for(rollout, True), True, mask=mask, standalone=True)
    assert "line-through" not in page and "repeating-linear-gradient" not in page  # no strike, no hatching
    assert ".sas-rollout .step.z{border:2px solid #cf222e" in CSS and 'content:"adv 0"' in CSS
    zeroed_text = re.findall(r'<div class="step z"[^>]*>.*?<span class="txt">(.*?)</span></div>', page)
    assert zeroed_text[1].startswith("Let me double-check: 3 + 4 = 7")  # plain text, no overlay span
    partly = torch.zeros_like(ids, dtype=torch.bool)
    partly[2] = True  # one token of step 0: only that part is underlined
    page = render_html(ids, tok, step_ids, logps, partly, True, mask=mask)
    assert page.count('<span class="zt">') == 1


def test_shading_scale_spans_the_given_confidences():
    from sas_trl.render import DARKEST, LIGHTEST, confidence_color, confidence_scale, legend_html

    scale = confidence_scale([0.42, 0.61, None, 0.55])
    assert scale == (0.42, 0.61)
    assert confidence_color(0.42, scale) == f"rgba(9,105,218,{LIGHTEST:.3f})"
    assert confidence_color(0.61, scale) == f"rgba(9,105,218,{DARKEST:.3f})"
    assert confidence_color(0.42, (0.0, 1.0)) != confidence_color(0.61, (0.0, 1.0))
    assert confidence_scale([0.5]) == (0.45, 0.55) and confidence_scale([]) == (0.0, 1.0)
    assert "0.42 <span" in legend_html(0.3, scale) and "0.61 (the range" in legend_html(0.3, scale)


def test_notes_are_shown_escaped(rollout):
    tok, ids, mask, step_ids, logps = rollout
    page = render_html(ids, tok, step_ids, logps, zero_for(rollout, True), True, mask=mask, notes=("a <b> note",))
    assert '<div class="note">a &lt;b&gt; note</div>' in page
