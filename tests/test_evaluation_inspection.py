"""sas_trl.evaluation.inspection: rollouts read or sampled, segmented and selected exactly as training would."""

from __future__ import annotations

import json

import pytest
import torch

from sas_trl import segment_steps, select_zero_mask
from sas_trl.core import SASRule
from sas_trl.errors import UserError
from sas_trl.evaluation.inspection import InspectConfig, inspect_rollouts, run_inspect
from sas_trl.evaluation.inspection_report import statistics_of
from sas_trl.evaluation.inspection_rollouts import Rollout
from sas_trl.tiny import build_tokenizer

TEXTS = [
    "3 + 4 = 7\n\nLet me double-check: 3 + 4 = 7\n\n7 + 5 = 12\n\n</think>\\boxed{12}",
    "1 + 2 = 3\n\n<script>x</script>\n\n3 + 1 = 4\n\nLet me",
]


def rollouts(tok):
    return [
        Rollout("Add 3, 4, 5.", (5, 6), tok(TEXTS[0])["input_ids"], True, False),
        Rollout("Add 1, 2, 1.", (5, 7), tok(TEXTS[1])["input_ids"], False, True),
    ]


@pytest.mark.parametrize(
    "sas",
    [
        SASRule(),
        SASRule(ratio=0.5, ranking="std", count_mode="release"),
        SASRule(granularity="token", strategy="correct_only"),
        SASRule(failed_scope="truncated", think_end=None),
        SASRule(ratio=0.5, min_steps=4),
    ],
    ids=["paper", "std-release", "token-correct_only", "truncated-no_think_end", "min_steps"],
)
def test_masks_are_the_training_functions_under_both_verdicts(sas):
    tok = build_tokenizer()
    items = rollouts(tok)
    logps = [torch.linspace(-3, -0.1, len(r.completion_ids)) for r in items]
    view = inspect_rollouts(items, logps, tok, sas)
    mask = view.mask
    step_ids = segment_steps(
        view.ids, mask, tok, sas.delimiter, sas.think_end, trim_unterminated=sas.trim_unterminated
    )
    assert torch.equal(view.step_ids, step_ids)
    for correct, zero in ((True, view.zero_if_correct), (False, view.zero_if_failed)):
        expected = select_zero_mask(
            step_ids,
            view.logps,
            torch.tensor([correct, correct]),
            sas.ratio,
            strategy=sas.strategy,
            granularity=sas.granularity,
            ranking=sas.ranking,
            failed_scope=sas.failed_scope,
            is_truncated=torch.tensor([False, True]),
            count_mode=sas.count_mode,
            min_steps=sas.min_steps,
        )
        assert torch.equal(zero, expected)
    stats = statistics_of(view)
    assert stats["rollouts"] == 2 and stats["correct"] == 1 and stats["failed"] == 1 and stats["truncated"] == 1
    assert sum(stats["step_tokens"]) == int((step_ids >= 0).sum())


def test_bad_settings_and_inputs_name_what_is_wrong(tmp_path):
    with pytest.raises(UserError, match="sas_ranking='median'"):
        SASRule(ranking="median")
    with pytest.raises(UserError, match="sas_ratio=1.5"):
        SASRule(ratio=1.5)
    with pytest.raises(UserError, match="nothing to inspect"):
        InspectConfig(model="m")
    with pytest.raises(UserError, match="either --prompt or --samples"):
        InspectConfig(model="m", prompts=["x"], samples="s.jsonl")
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(UserError, match="nope.jsonl.*no such file"):
        InspectConfig(model="m", samples=str(missing))


def test_run_inspect_on_an_eval_samples_file(tmp_path, tiny_model_dir):
    # What `sas-trl eval` writes: text (no token ids), benchmark and id, the verdict and the finish reason.
    path = tmp_path / "eval_samples.jsonl"
    lines = [{"header": {"model": "x"}}]
    lines += [
        {"benchmark": "addition", "id": "0", "sample": 0, "correct": 1.0, "finish": "stop", "text": TEXTS[0]},
        {"benchmark": "addition", "id": "1", "sample": 0, "correct": 0.0, "finish": "length", "text": TEXTS[1]},
        {"prompt": "Add 2, 2.", "text": "2 + 2 = 4\n\n</think>\\boxed{4}"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = InspectConfig(model=str(tiny_model_dir), samples=str(path), output_dir=str(tmp_path / "out"))
    results = run_inspect(config)
    assert results["rollouts"] == 3 and results["correct"] == 1 and results["failed"] == 1 and results["unknown"] == 1
    assert results["steps_per_rollout"] == [3, 4, 1] and results["truncated"] == 1
    page = (tmp_path / "out" / "inspect.html").read_text()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page
    assert "data:image/png;base64," in page and page.count('<div class="sas-rollout">') == 6
    saved = json.loads((tmp_path / "out" / "inspect.json").read_text())
    assert saved["settings"]["sas_ratio"] == 0.3 and saved["steps_per_rollout"] == [3, 4, 1]
    assert "correct: 3 steps" in results["terminal"] and "failed, truncated: 4 steps" in results["terminal"]
