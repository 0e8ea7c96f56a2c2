"""Generation backends with one interface: requests in, finished completions out, batch by batch.

* `TransformersBackend`: `model.generate` on whatever device there is, left-padded batches of sequences.
* `VLLMBackend`: one vLLM engine; each problem's remaining samples are one request with `n` samples. vLLM is
  imported only when this backend is built, and the request/response mapping (`vllm_inputs`,
  `vllm_completions`) is plain code that a fake engine can exercise.

Same sampling semantics in both: temperature (0 = greedy) and nucleus top_p, no top-k, `max_tokens` new tokens.
A completion's length counts its EOS token; "length" means it hit `max_tokens` without one.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

import torch

from ..rollouts import is_truncated

Key = tuple[str, str, int]  # (benchmark, problem id, sample index)


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 8192
    seed: int = 0


@dataclass(frozen=True)
class Request:
    """One sample to draw: `prompt_ids` is the chat-templated prompt, tokenized."""

    key: Key
    prompt_ids: tuple[int, ...]


@dataclass(frozen=True)
class Completion:
    key: Key
    text: str
    token_ids: list[int]  # EOS included when the model stopped
    finish_reason: str  # "length" when the token budget cut it (sas_trl.rollouts.is_truncated), else "stop"

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def request_seed(seed: int, key: Key) -> int:
    """A stable per-request seed (Python's hash() of strings changes between processes)."""
    return zlib.crc32(f"{seed}:{key[0]}:{key[1]}:{key[2]}".encode())


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# transformers
# --------------------------------------------------------------------------------------------------


class TransformersBackend:
    """Sampling with `model.generate`, `batch_size` sequences per call (requests are taken in order)."""

    default_batch_size = 64

    def __init__(self, model, tokenizer, batch_size: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size or self.default_batch_size
        eos = model.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        self.eos_ids = set(eos) | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())
        if not self.eos_ids:
            raise ValueError("the model and tokenizer define no EOS token; generation could never stop")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids)

    @classmethod
    def load(cls, model_path: str, tokenizer, batch_size: int | None = None, device: torch.device | None = None):
        from transformers import AutoModelForCausalLM

        device = device or pick_device()
        dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
        return cls(model, tokenizer, batch_size)

    @torch.no_grad()
    def generate(self, requests: Sequence[Request], settings: SamplingSettings) -> Iterator[list[Completion]]:
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            yield self._generate_batch(batch, settings)

    def _generate_batch(self, batch: Sequence[Request], settings: SamplingSettings) -> list[Completion]:
        device = self.model.device
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding: every row's next token comes right after its prompt
            input_ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            attention_mask[i, width - len(r.prompt_ids) :] = 1
        if settings.temperature > 0:
            sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
            # One seed per batch from its first request: the same batch of the same command samples the same.
            torch.manual_seed(request_seed(settings.seed, batch[0].key))
        else:
            sampling = {"do_sample": False, "temperature": None, "top_p": None}
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=settings.max_tokens,
            top_k=0,  # vLLM's default: no top-k (a model's generation_config may set 50)
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            **sampling,
        )
        completions = []
        for request, row in zip(batch, out[:, width:].tolist(), strict=True):
            stop = next((j for j, t in enumerate(row) if t in self.eos_ids), None)
            ids = row[: stop + 1] if stop is not None else row[: settings.max_tokens]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            reason = "length" if is_truncated(ids, self.eos_ids, self.pad_id) else "stop"
            completions.append(Completion(request.key, text, ids, reason))
        return completions


# --------------------------------------------------------------------------------------------------
# vLLM (GPU only; kept thin)
# --------------------------------------------------------------------------------------------------


def group_requests(requests: Sequence[Request]) -> list[list[Request]]:
    """Consecutive requests of the same problem (same benchmark, id and prompt) become one group."""
    return [list(g) for _, g in groupby(requests, key=lambda r: (r.key[0], r.key[1], r.prompt_ids))]


def vllm_inputs(
    groups: Sequence[Sequence[Request]], settings: SamplingSettings, sampling_params: Callable
) -> tuple[list[dict], list]:
    """vLLM prompts (token ids) and one SamplingParams per group, drawing `n = len(group)` samples."""
    prompts = [{"prompt_token_ids": list(group[0].prompt_ids)} for group in groups]
    params = [
        sampling_params(
            n=len(group),
            temperature=settings.temperature,
            top_p=settings.top_p if settings.temperature > 0 else 1.0,
            top_k=-1,
            max_tokens=settings.max_tokens,
            seed=request_seed(settings.seed, group[0].key),
            skip_special_tokens=True,
        )
        for group in groups
    ]
    return prompts, params


def vllm_completions(groups: Sequence[Sequence[Request]], outputs: Sequence) -> list[Completion]:
    """Map vLLM's RequestOutputs (one per group, `.outputs` one per sample) back to the requests."""
    if len(outputs) != len(groups):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(groups)} prompts")
    completions = []
    for group, output in zip(groups, outputs, strict=True):
        samples = sorted(output.outputs, key=lambda o: o.index)
        if len(samples) != len(group):
            raise RuntimeError(f"vLLM returned {len(samples)} samples for {group[0].key[:2]}, expected {len(group)}")
        for request, sample in zip(group, samples, strict=True):
            # vLLM stops only at EOS here (no stop strings), so its "length" is the project's truncation rule.
            reason = "length" if sample.finish_reason == "length" else "stop"
            completions.append(Completion(request.key, sample.text, list(sample.token_ids), reason))
    return completions


class VLLMBackend:
    """One vLLM engine; requests go in chunks of about `batch_size` sequences, so finished chunks are saved."""

    default_batch_size = 4096

    def __init__(self, engine, sampling_params: Callable, batch_size: int | None = None):
        self.engine = engine
        self.sampling_params = sampling_params
        self.batch_size = batch_size or self.default_batch_size

    @classmethod
    def load(cls, model_path: str, batch_size: int | None = None, seed: int = 0, **engine_kwargs):
        import vllm  # lazily: a CUDA-only dependency

        engine = vllm.LLM(model=model_path, seed=seed, **engine_kwargs)
        return cls(engine, vllm.SamplingParams, batch_size)

    def generate(self, requests: Sequence[Request], settings: SamplingSettings) -> Iterator[list[Completion]]:
        chunk: list[list[Request]] = []
        for group in [*group_requests(requests), None]:
            if chunk and (group is None or sum(map(len, chunk)) + len(group) > self.batch_size):
                prompts, params = vllm_inputs(chunk, settings, self.sampling_params)
                yield vllm_completions(chunk, self.engine.generate(prompts, params, use_tqdm=False))
                chunk = []
            if group is not None:
                chunk.append(group)
