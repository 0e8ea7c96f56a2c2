"""sas_trl.evaluation.backends: transformers sampling semantics and the vLLM request/output mapping."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from sas_trl.errors import UserError
from sas_trl.evaluation import SamplingSettings, TransformersBackend, VLLMBackend
from sas_trl.evaluation.backends import Request, make_backend, request_seed, vllm_completions


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return TransformersBackend(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, batch_size=3)


def test_transformers_backend_sampling_semantics(tiny_backend):
    tokenizer = tiny_backend.tokenizer
    prompt = tuple(tokenizer("Add 3, 4.\n<think>\n")["input_ids"])
    long_prompt = tuple(tokenizer("Add 3, 4, 5, 6, 7.\n<think>\n")["input_ids"])
    requests = [Request(("b", str(i), 0), long_prompt if i % 2 else prompt) for i in range(5)]

    def run(settings):
        return [c for batch in tiny_backend.generate(requests, settings) for c in batch]

    greedy = run(SamplingSettings(temperature=0.0, max_tokens=12))
    assert [c.key for c in greedy] == [r.key for r in requests]  # order kept across batches (3 + 2)
    assert greedy[0].token_ids == greedy[2].token_ids  # greedy: same prompt, same output, whatever the padding
    assert all(len(c.token_ids) <= 12 for c in greedy)
    for c in greedy:
        assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
        assert c.truncated == (tokenizer.eos_token_id not in c.token_ids)
        if not c.truncated:
            assert c.token_ids[-1] == tokenizer.eos_token_id  # EOS counts, nothing after it
    sampled = SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=12, seed=3)
    assert [c.token_ids for c in run(sampled)] == [c.token_ids for c in run(sampled)]  # seeded
    other = SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=12, seed=4)
    assert [c.token_ids for c in run(sampled)] != [c.token_ids for c in run(other)]


def test_samples_do_not_depend_on_the_batch_size(tiny_backend):
    """Each sample has its own random stream: batch sizes 1, 3 and 9 draw the very same samples."""
    tokenizer = tiny_backend.tokenizer
    prompts = ["Add 3, 4.\n<think>\n", "Add 3, 4, 5, 6, 7.\n<think>\n", "Add 1, 2, 9.\n<think>\n"]  # unequal lengths
    requests = [
        Request(("b", str(i), j), tuple(tokenizer(p)["input_ids"])) for i, p in enumerate(prompts) for j in range(3)
    ]
    settings = SamplingSettings(temperature=1.0, top_p=0.95, max_tokens=16, seed=5)
    drawn = {}
    for batch_size in (1, 3, 9):
        backend = TransformersBackend(tiny_backend.model, tokenizer, batch_size=batch_size)
        drawn[batch_size] = [c.token_ids for batch in backend.generate(requests, settings) for c in batch]
    assert drawn[1] == drawn[3] == drawn[9]
    assert len({tuple(ids) for ids in drawn[1]}) > 1  # really sampled
    # A resume that draws only the last sample of a problem gets what the full run drew for it.
    alone = [c.token_ids for batch in tiny_backend.generate(requests[5:6], settings) for c in batch]
    assert alone == drawn[1][5:6]


class FakeEngine:
    """Stands in for `vllm.LLM`: records calls, returns RequestOutput-shaped objects (samples out of order)."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        outputs = []
        for prompt, p in zip(prompts, params, strict=True):
            samples = [
                SimpleNamespace(
                    index=j,
                    text=f"{prompt['prompt_token_ids'][0]}:{j}",
                    token_ids=(1,) * (j + 2),
                    finish_reason="length" if j == 1 else "stop",
                )
                for j in range(p["n"])
            ]
            outputs.append(SimpleNamespace(outputs=samples[::-1]))
        return outputs


def test_vllm_backend_maps_requests_and_outputs():
    engine = FakeEngine()
    backend = VLLMBackend(engine, sampling_params=dict, batch_size=4)
    requests = [Request(("b", "p0", j), (10, 11)) for j in range(2)]
    requests += [Request(("b", "p1", 1), (20,))]  # sample 0 of p1 was already saved
    requests += [Request(("b", "p2", j), (30,)) for j in range(2)]
    settings = SamplingSettings(temperature=0.6, top_p=0.95, max_tokens=99, seed=1)
    batches = list(backend.generate(requests, settings))

    assert [len(b) for b in batches] == [4, 1]  # chunks of batch_size samples
    (prompts, params), _ = engine.calls
    assert prompts == [{"prompt_token_ids": [10, 11]}] * 2 + [{"prompt_token_ids": [20]}, {"prompt_token_ids": [30]}]
    assert [p["n"] for p in params] == [1, 1, 1, 1]  # one request per sample, each with its own seed
    assert all(p["temperature"] == 0.6 and p["top_p"] == 0.95 and p["max_tokens"] == 99 for p in params)
    assert all(p["top_k"] == -1 and p["skip_special_tokens"] for p in params)
    assert [p["seed"] for p in params] == [request_seed(1, r.key) for r in requests[:4]]
    assert len({p["seed"] for p in params}) == 4
    completions = [c for b in batches for c in b]
    assert [c.key for c in completions] == [r.key for r in requests]
    assert [c.text for c in completions] == ["10:0", "10:0", "20:0", "30:0", "30:0"]
    assert all(c.finish_reason == "stop" for c in completions)

    # A sample's seed is its own: a resume that draws only p0's second sample gives it the same seed.
    resumed = VLLMBackend(FakeEngine(), sampling_params=dict)
    list(resumed.generate(requests[1:2], settings))
    assert resumed.engine.calls[0][1][0]["seed"] == params[1]["seed"]

    greedy = VLLMBackend(FakeEngine(), sampling_params=dict)
    list(greedy.generate(requests[:1], SamplingSettings(temperature=0.0)))
    assert greedy.engine.calls[0][1][0]["top_p"] == 1.0


def test_vllm_mapping_rejects_mismatched_outputs():
    requests = [Request(("b", "p", j), (1,)) for j in range(3)]
    with pytest.raises(RuntimeError, match="0 samples .* expected 1"):
        vllm_completions(requests[:1], [SimpleNamespace(outputs=[])])
    with pytest.raises(RuntimeError, match="outputs for 3 requests"):
        vllm_completions(requests, [])


@pytest.mark.parametrize(
    "bad", [{"temperature": -0.1}, {"top_p": 0.0}, {"top_p": 1.5}, {"max_tokens": 0}], ids=lambda d: next(iter(d))
)
def test_sampling_settings_refuse_bad_values_naming_them(bad):
    with pytest.raises(UserError, match=r"--temperature >= 0, 0 < --top_p <= 1 .*got temperature") as err:
        SamplingSettings(**bad)
    name, value = next(iter(bad.items()))
    assert f"{name} {value}" in str(err.value)
    assert SamplingSettings(temperature=0.0, top_p=1.0, max_tokens=1).max_tokens == 1  # the edges are valid


def test_make_backend_refuses_vllm_without_a_gpu(monkeypatch):
    import sas_trl.evaluation.backends as backends

    monkeypatch.setattr(backends, "vllm_available", lambda: False)
    with pytest.raises(UserError, match="--backend vllm needs vllm installed"):
        make_backend("vllm", "m", None, None, 0)
    monkeypatch.setattr(TransformersBackend, "load", classmethod(lambda cls, *a: ("transformers", *a)))
    assert make_backend("auto", "owner/name", "tok", 2, 0) == ("transformers", "owner/name", "tok", 2)
