"""sas_trl.evaluation.scoring: token log-probs under the model, padding, and which model scores."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sas_trl.evaluation import scoring
from sas_trl.evaluation.backends import TransformersBackend
from sas_trl.evaluation.scoring import padded, scoring_model, token_logprobs


def test_token_logprobs_match_a_direct_computation(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [[5, 6, 7], [8], [9, 10]]
    completions = [[11, 12], [13, 14, 15, 16], [17]]
    batched = token_logprobs(model, prompts, completions, batch_size=3)
    single = token_logprobs(model, prompts, completions, batch_size=1)
    for p, c, a, b in zip(prompts, completions, batched, single, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
        expected = torch.stack([logits[len(p) - 1 + t, c[t]] for t in range(len(c))])
        assert a.shape == (len(c),) and torch.allclose(a, expected, atol=1e-5) and torch.allclose(a, b, atol=1e-5)


def test_padded_right_pads_and_masks():
    values, mask = padded([[1, 2, 3], [4], []], 0, torch.long)
    assert values.tolist() == [[1, 2, 3], [4, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    floats, _ = padded([[-0.5], [-1.0, -2.0]], 0.0, torch.float32)
    assert floats.dtype == torch.float32 and floats.tolist() == [[-0.5, 0.0], [-1.0, -2.0]]
    empty, empty_mask = padded([[], []], -1, torch.long)  # never zero-width: the SAS functions need T >= 1
    assert empty.shape == (2, 1) and not empty_mask.any()


def test_scoring_reuses_a_transformers_backends_model_and_loads_otherwise(tiny_model_dir, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    backend = TransformersBackend(model, AutoTokenizer.from_pretrained(tiny_model_dir))
    loaded = []
    monkeypatch.setattr(scoring, "load_scoring_model", lambda m: loaded.append(m) or "fresh")
    assert scoring_model(backend, "ignored") is model and loaded == []
    assert scoring_model(None, str(tiny_model_dir)) == "fresh" and loaded == [str(tiny_model_dir)]


def test_load_scoring_model_is_in_eval_mode_on_the_cpu(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = scoring.load_scoring_model(str(tiny_model_dir))
    assert not model.training and model.dtype == torch.float32
    assert model.device.type in ("cpu", "mps")
