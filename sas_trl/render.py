"""See what SAS does to one rollout: its steps, their confidence and the steps SAS zeroes, as HTML or terminal text.

Pure functions over what the core computes (`segment_steps`, `select_zero_mask`) for one rollout:

    token_ids (T,), step_ids (T,), token_logps (T,), zero (T,), mask (T,), the verdict, the tokenizer

`segments` cuts the rollout into display blocks (reasoning steps, the part outside the steps such as
`</think>` and the answer, and padding); `render_html` and `render_terminal` draw them. A step is shaded by
its confidence exp(mean token log-prob) (the geometric-mean probability of its tokens, in [0, 1]), on a scale
that spans the confidences shown (`confidence_scale`), so that small differences stay visible; zeroed steps get
a red frame and label, their text left as readable as any other; the per-step mean log-prob shows on hover
(HTML) or in a column (terminal). Long steps are
collapsed (HTML: the rest opens on click; terminal: head ... tail), and a strip of one cell per step keeps a
4,000-token rollout scannable. Everything the model wrote is HTML-escaped.

Rendering runs only when someone looks (logging, `sas-trl inspect`, notebooks), never in the training step.
"""

from __future__ import annotations

import html
import math
import os
import sys
from dataclasses import dataclass

import torch

from .core import step_statistics

STEP, OUTSIDE, PADDING = "step", "outside", "padding"
HEAD_CHARS = 480  # characters of a long step shown before it collapses (HTML)
TERMINAL_WIDTH = 100


@dataclass(frozen=True)
class Segment:
    """A display block of one rollout.

    kind: "step" (reasoning step `step`), "outside" (valid tokens in no step: `</think>`, the answer, the
        last token of an unterminated rollout in release mode, tool output) or "padding".
    pieces: the block's text cut where the zero mask changes, as (text, zeroed) pairs (one piece unless
        selection is per token).
    mean_logp: the step's confidence as SAS ranks it with ranking "mean" (None outside steps).
    zeroed_tokens: how many of its tokens SAS gave advantage 0.
    """

    kind: str
    step: int
    start: int
    end: int
    pieces: tuple[tuple[str, bool], ...]
    mean_logp: float | None
    zeroed_tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.pieces)

    @property
    def tokens(self) -> int:
        return self.end - self.start

    @property
    def zeroed(self) -> bool:
        return any(z for _, z in self.pieces)

    @property
    def confidence(self) -> float | None:
        """exp(mean log-prob) in [0, 1], or None outside steps."""
        return None if self.mean_logp is None or math.isnan(self.mean_logp) else math.exp(self.mean_logp)


def segments(
    token_ids: torch.Tensor,
    tokenizer,
    step_ids: torch.Tensor,
    token_logps: torch.Tensor,
    zero: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> list[Segment]:
    """Cut one rollout into display blocks.

    Args:
        token_ids: LongTensor (T,), the completion.
        step_ids: LongTensor (T,) from `segment_steps` (-1 outside steps).
        token_logps: FloatTensor (T,), the log-probs SAS ranked steps by (NaN allowed outside steps).
        zero: BoolTensor (T,) from `select_zero_mask`.
        mask: (T,), nonzero for valid tokens; default all valid.
    """
    token_ids, step_ids = token_ids.cpu().long(), step_ids.cpu().long()
    zero = zero.cpu().bool()
    valid = torch.ones_like(step_ids, dtype=torch.bool) if mask is None else mask.cpu() != 0
    if not token_ids.shape == step_ids.shape == zero.shape == valid.shape == token_logps.shape:
        raise ValueError("token_ids, step_ids, token_logps, zero and mask must all have shape (T,)")
    if token_ids.numel() == 0:
        return []
    means, _ = step_statistics(step_ids[None], torch.nan_to_num(token_logps.cpu().float(), nan=0.0)[None])
    means = means[0].tolist()
    # A block is a run of one step id (or of "outside", -1, or padding, -2); pieces are runs of one zero value.
    block = torch.where(valid, step_ids, -2)
    piece_key = block * 2 + zero.long()
    starts = torch.cat([torch.zeros(1, dtype=torch.long), torch.nonzero(piece_key[1:] != piece_key[:-1])[:, 0] + 1])
    ends = torch.cat([starts[1:], torch.tensor([len(block)])])
    spans = list(zip(starts.tolist(), ends.tolist(), strict=True))
    texts = tokenizer.batch_decode(
        [token_ids[s:e].tolist() for s, e in spans], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    out: list[Segment] = []
    for (start, end), text in zip(spans, texts, strict=True):
        b, zeroed = int(block[start]), bool(zero[start])
        piece, zeroed_tokens = (text, zeroed), (end - start) * zeroed
        if out and out[-1].end == start and _block_of(out[-1]) == b:
            last = out[-1]
            out[-1] = Segment(
                last.kind,
                last.step,
                last.start,
                end,
                (*last.pieces, piece),
                last.mean_logp,
                last.zeroed_tokens + zeroed_tokens,
            )
            continue
        kind = STEP if b >= 0 else OUTSIDE if b == -1 else PADDING
        out.append(Segment(kind, max(b, -1), start, end, (piece,), means[b] if b >= 0 else None, zeroed_tokens))
    return out


def _block_of(segment: Segment) -> int:
    return segment.step if segment.kind == STEP else -1 if segment.kind == OUTSIDE else -2


def _padding(tokens: int) -> str:
    return f"{tokens} padding token{'' if tokens == 1 else 's'}"


def verdict_label(is_correct: bool | None, is_truncated: bool | None = None) -> str:
    label = "verdict unknown" if is_correct is None else "correct" if is_correct else "failed"
    return label + (", truncated" if is_truncated else "")


def summary(segs: list[Segment]) -> dict[str, float | int]:
    """Steps, zeroed steps and the zeroed fraction of the valid tokens of one rollout."""
    steps = [s for s in segs if s.kind == STEP]
    valid = sum(s.tokens for s in segs if s.kind != PADDING)
    zeroed_tokens = sum(s.zeroed_tokens for s in segs)
    return {
        "steps": len({s.step for s in steps}),
        "zeroed_steps": len({s.step for s in steps if s.zeroed}),
        "tokens": valid,
        "zeroed_frac": zeroed_tokens / valid if valid else 0.0,
    }


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------

CSS = """
.sas-rollout{font:13px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:0 0 18px 0}
.sas-rollout .head{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:0 0 6px 0}
.sas-rollout .badge{border-radius:10px;padding:1px 9px;font-weight:600;font-size:12px}
.sas-rollout .correct{background:#d1f0d9;color:#116329}
.sas-rollout .failed{background:#ffd8d3;color:#a40e26}
.sas-rollout .unknown{background:#e8e8e8;color:#444}
.sas-rollout .facts{color:#57606a;font-size:12px}
.sas-rollout .strip{display:flex;flex-wrap:wrap;gap:2px;margin:4px 0 8px 0}
.sas-rollout .strip a{display:block;width:12px;height:16px;border-radius:2px;border:1px solid #d0d7de}
.sas-rollout .strip a.z{border:2px solid #cf222e;width:10px;height:14px}
.sas-rollout .steps{border-left:3px solid #d0d7de;padding-left:6px}
.sas-rollout .step{display:flex;gap:8px;align-items:flex-start;margin:2px 0;padding:3px 6px;border-radius:4px;
 border:1px solid transparent}
.sas-rollout .step.z{border:2px solid #cf222e;border-left-width:6px;padding:2px 5px 2px 1px}
.sas-rollout .num{flex:0 0 64px;font:11px/1.6 ui-monospace,monospace;color:#57606a;text-align:right}
.sas-rollout .step.z .num{color:#cf222e;font-weight:700}
.sas-rollout .step.z .num:after{content:"adv 0";display:block;font-size:10px}
.sas-rollout .txt{flex:1;white-space:pre-wrap;word-break:break-word;color:#1f2328;
 font:12.5px/1.5 ui-monospace,SFMono-Regular,monospace}
.sas-rollout .zt{border-bottom:2px solid #cf222e}
.sas-rollout .note{color:#1f2328;font-size:12px;margin:0 0 4px 0}
.sas-rollout .note b{font-weight:600}
.sas-rollout .nl{color:#8c959f;font-size:11px;margin-left:3px}
.sas-rollout .outside{background:#f6f8fa;color:#57606a}
.sas-rollout .pad{color:#8c959f;font-style:italic;font-size:12px;padding:2px 6px}
.sas-rollout details{display:inline}
.sas-rollout summary{display:inline;cursor:pointer;color:#0969da;font-family:system-ui,sans-serif;font-size:12px}
.sas-legend{font:12px/1.5 system-ui,sans-serif;color:#57606a;display:flex;flex-wrap:wrap;gap:14px;align-items:center;
 margin:0 0 12px 0}
.sas-legend .ramp{display:inline-block;width:120px;height:10px;vertical-align:middle;border:1px solid #d0d7de;
 background:linear-gradient(90deg,rgba(9,105,218,.06),rgba(9,105,218,.62))}
.sas-legend .sw{display:inline-block;width:22px;height:12px;vertical-align:middle;border-radius:2px}
"""

# The shading's opacity range: light enough at the low end that text on the darkest step stays readable.
LIGHTEST, DARKEST = 0.04, 0.5


def confidence_scale(confidences) -> tuple[float, float]:
    """(low, high): the range of the given step confidences, the ends of the shading scale.

    A single value (or none) gives a range around it, so it is shaded mid-scale.
    """
    values = [c for c in confidences if c is not None and not math.isnan(c)]
    if not values:
        return (0.0, 1.0)
    low, high = min(values), max(values)
    if high - low < 1e-6:
        return (max(low - 0.05, 0.0), min(high + 0.05, 1.0))
    return (low, high)


def confidence_color(confidence: float | None, scale: tuple[float, float] = (0.0, 1.0)) -> str:
    """Background of a step: blue, darker for more confident steps (confidence = exp(mean log-prob)).

    `scale` = (low, high): a step at `low` gets the lightest shade, one at `high` the darkest.
    """
    if confidence is None:
        return "transparent"
    low, high = scale
    position = (confidence - low) / (high - low) if high > low else 0.5
    return f"rgba(9,105,218,{LIGHTEST + (DARKEST - LIGHTEST) * min(max(position, 0.0), 1.0):.3f})"


def legend_html(ratio: float | None = None, scale: tuple[float, float] = (0.0, 1.0)) -> str:
    """What the colours and marks mean; `scale` is the shading's (low, high) confidence."""
    r = "" if ratio is None else f" (r = {ratio:g})"
    low, high = scale
    ramp = f"linear-gradient(90deg,{confidence_color(low, scale)},{confidence_color(high, scale)})"
    return (
        '<div class="sas-legend">'
        f'<span>step confidence exp(mean log-prob): {low:.2f} <span class="ramp" style="background:{ramp}"></span> '
        f"{high:.2f} (the range of the steps shown)</span>"
        '<span><span class="sw" style="border:2px solid #cf222e;border-left-width:6px"></span> '
        "advantage set to 0 by SAS (&quot;adv 0&quot;)</span>"
        '<span><span class="sw" style="background:#f6f8fa;border:1px solid #d0d7de"></span> '
        "outside the reasoning (&lt;/think&gt;, the answer): never zeroed</span>"
        f"<span>correct rollout: its least confident steps are zeroed{r}; failed rollout: its most confident "
        "steps are shielded (zeroed). Hover a step for its mean log-prob.</span></div>"
    )


def _pieces_html(pieces: tuple[tuple[str, bool], ...], head_chars: int) -> str:
    """Escaped text of a block; after `head_chars` characters the rest goes into a collapsed <details>."""
    shown, hidden, used = [], [], 0
    # The delimiter belongs to the step it ends: show its trailing newlines as a mark, not as blank lines.
    last_text = pieces[-1][0] if pieces else ""
    newlines = len(last_text) - len(last_text.rstrip("\n"))
    if newlines and last_text.strip("\n"):
        pieces = (*pieces[:-1], (last_text[:-newlines], pieces[-1][1]))
    else:
        newlines = 0
    # A wholly zeroed step is framed as a block; only the zeroed parts of a partly zeroed one are underlined.
    partly = any(z for _, z in pieces) and not all(z for _, z in pieces)
    for text, zeroed in pieces:
        cut = max(0, min(len(text), head_chars - used)) if used < head_chars else 0
        # Collapse only when enough is left to be worth a click.
        if cut < len(text) and sum(len(t) for t, _ in pieces) - head_chars < 120:
            cut = len(text)
        for part, target in ((text[:cut], shown), (text[cut:], hidden)):
            if part:
                escaped = html.escape(part)
                target.append(f'<span class="zt">{escaped}</span>' if zeroed and partly else escaped)
        used += len(text)
    out = "".join(shown)
    if hidden:
        more = sum(len(t) for t, _ in pieces) - head_chars
        out += f"<details><summary> … {more} more characters</summary>{''.join(hidden)}</details>"
    return out + (f'<span class="nl">{"⏎" * newlines}</span>' if newlines else "")


def render_html(
    token_ids: torch.Tensor,
    tokenizer,
    step_ids: torch.Tensor,
    token_logps: torch.Tensor,
    zero: torch.Tensor,
    is_correct: bool | None,
    *,
    mask: torch.Tensor | None = None,
    is_truncated: bool | None = None,
    title: str | None = None,
    uid: str = "r",
    head_chars: int = HEAD_CHARS,
    standalone: bool = False,
    notes: tuple[str, ...] = (),
    scale: tuple[float, float] | None = None,
) -> str:
    """One rollout as HTML: a header, a strip of one cell per step, then every step as a shaded block.

    Args: as `segments` (tensors of shape (T,)), plus
        is_correct: the verdict SAS used (None: unknown).
        title: a line above the rollout (escaped), e.g. the prompt.
        uid: prefix of the element ids (unique per page, so the strip's links jump to the right steps).
        standalone: a whole HTML document with its stylesheet and legend (a wandb.Html cell, a file).
        notes: lines under the header (escaped), e.g. the answer and the counting rule.
        scale: the shading's (low, high) confidence; default: the range of this rollout's steps.
    """
    segs = segments(token_ids, tokenizer, step_ids, token_logps, zero, mask)
    return html_from_segments(
        segs,
        is_correct,
        is_truncated=is_truncated,
        title=title,
        uid=uid,
        head_chars=head_chars,
        standalone=standalone,
        notes=notes,
        scale=scale,
    )


def html_from_segments(
    segs: list[Segment],
    is_correct: bool | None,
    *,
    is_truncated: bool | None = None,
    title: str | None = None,
    uid: str = "r",
    head_chars: int = HEAD_CHARS,
    standalone: bool = False,
    notes: tuple[str, ...] = (),
    scale: tuple[float, float] | None = None,
) -> str:
    """`render_html` from blocks already cut by `segments`."""
    facts = summary(segs)
    if scale is None:
        scale = confidence_scale(s.confidence for s in segs if s.kind == STEP)
    kind = "unknown" if is_correct is None else "correct" if is_correct else "failed"
    mark = {"correct": "✓", "failed": "✗", "unknown": "?"}[kind]
    head = (
        f'<div class="head"><span class="badge {kind}">{mark} {verdict_label(is_correct, is_truncated)}</span>'
        f'<span class="facts">{facts["steps"]} steps · {facts["zeroed_steps"]} zeroed · '
        f"{100 * facts['zeroed_frac']:.0f}% of {facts['tokens']} tokens get advantage 0</span></div>"
    )
    cells, blocks = [], []
    for seg in segs:
        if seg.kind == PADDING:
            blocks.append(f'<div class="pad">· {_padding(seg.tokens)}</div>')
            continue
        if seg.kind == OUTSIDE:
            blocks.append(
                '<div class="step outside" title="outside the reasoning: never zeroed"><span class="num">—</span>'
                f'<span class="txt">{_pieces_html(seg.pieces, head_chars)}</span></div>'
            )
            continue
        tip = f"step {seg.step}: mean log-prob {seg.mean_logp:.3f}, {seg.tokens} tokens" + (
            ", advantage 0" if seg.zeroed else ""
        )
        z = " z" if seg.zeroed else ""
        anchor = f"{html.escape(uid)}-s{seg.step}"
        color = confidence_color(seg.confidence, scale)
        cells.append(f'<a class="{z.strip()}" href="#{anchor}" title="{tip}" style="background:{color}"></a>')
        blocks.append(
            f'<div class="step{z}" id="{anchor}" title="{tip}" style="background:{color}">'
            f'<span class="num">{seg.step} · {seg.mean_logp:.2f}</span>'
            f'<span class="txt">{_pieces_html(seg.pieces, head_chars)}</span></div>'
        )
    title_html = f'<div class="facts">{html.escape(title)}</div>' if title else ""
    notes_html = "".join(f'<div class="note">{html.escape(note)}</div>' for note in notes)
    body = (
        f'<div class="sas-rollout">{title_html}{head}{notes_html}<div class="strip">{"".join(cells)}</div>'
        f'<div class="steps">{"".join(blocks)}</div></div>'
    )
    return html_document(legend_html(scale=scale) + body) if standalone else body


def html_document(body: str, title: str = "SAS: rendered rollouts") -> str:
    """A self-contained HTML page around rendered rollouts (no script, no external resource)."""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>body{{margin:16px;background:#fff}}{CSS}</style></head><body>{body}</body></html>"
    )


# --------------------------------------------------------------------------------------------------
# Terminal
# --------------------------------------------------------------------------------------------------

_RESET, _RED, _DIM, _BOLD = "\x1b[0m", "\x1b[31m", "\x1b[2m", "\x1b[1m"
_BARS = " ▁▂▃▄▅▆▇█"


def use_color(stream=None) -> bool:
    """Colour when writing to a terminal and NO_COLOR is unset (https://no-color.org)."""
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def _one_line(text: str, width: int) -> str:
    """The text on one line ("\\n" shown as ⏎), long text as head … tail."""
    flat = text.replace("\n", "⏎")
    if len(flat) <= width:
        return flat
    keep = max(width - 3, 2)  # " … " takes 3
    head = keep * 2 // 3
    return f"{flat[:head]} … {flat[len(flat) - (keep - head) :]}"


def render_terminal(
    token_ids: torch.Tensor,
    tokenizer,
    step_ids: torch.Tensor,
    token_logps: torch.Tensor,
    zero: torch.Tensor,
    is_correct: bool | None,
    *,
    mask: torch.Tensor | None = None,
    is_truncated: bool | None = None,
    color: bool | None = None,
    width: int = TERMINAL_WIDTH,
) -> str:
    """One rollout as terminal lines: a header, then one line per step (zeroed steps marked).

    A line reads `[x]  12  -1.84 ▂ text`: the zero mark (`x` advantage 0, blank kept), the step index, its
    mean log-prob, a bar of its confidence exp(mean log-prob), and its text on one line. `color=None` colours
    when stdout is a terminal; without colour the marks alone carry the information.
    """
    color = use_color() if color is None else color
    segs = segments(token_ids, tokenizer, step_ids, token_logps, zero, mask)
    facts = summary(segs)

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    lines = [
        paint(f"{verdict_label(is_correct, is_truncated)}", _BOLD)
        + f": {facts['steps']} steps, {facts['zeroed_steps']} zeroed, "
        f"{100 * facts['zeroed_frac']:.0f}% of {facts['tokens']} tokens get advantage 0"
    ]
    text_width = max(width - 19, 20)  # 19: the mark, index, log-prob and bar columns
    for seg in segs:
        if seg.kind == PADDING:
            lines.append(paint(f"         ({_padding(seg.tokens)})", _DIM))
        elif seg.kind == OUTSIDE:
            lines.append(paint(f"[ ]   -  {'outside':>9}   {_one_line(seg.text, text_width)}", _DIM))
        else:
            bar = _BARS[round((len(_BARS) - 1) * (seg.confidence or 0.0))]
            partial = seg.zeroed and any(not z for _, z in seg.pieces)
            mark = "~" if partial else "x" if seg.zeroed else " "
            line = f"[{mark}] {seg.step:>3}  {seg.mean_logp:>7.2f} {bar} {_one_line(seg.text, text_width)}"
            lines.append(paint(line, _RED) if seg.zeroed else line)
    return "\n".join(lines)
