"""Generation backends with one interface: requests in, finished completions out, batch by batch.

* `TransformersBackend`: `model.generate` on whatever device there is, left-padded batches of sequences.
* `VLLMBackend`: one vLLM engine, one request per sample. vLLM is imported only when this backend is built,
  and the request/response mapping (`vllm_inputs`, `vllm_completions`) is plain code that a fake engine can
  exercise.

Same sampling semantics in both: temperature (0 = greedy) and nucleus top_p, no top-k, `max_tokens` new tokens.
A completion's length counts its EOS token; "length" means it hit `max_tokens` without one.

Every sample has its own random stream, seeded from (seed, benchmark, problem id, sample index)
(`request_seed`): which other requests share its batch, the batch size, and whether the run was resumed do
not change what it draws. (transformers' `generate` takes no per-row generator, so `PerRequestSampler` draws
each row's token itself; vLLM gets one request per sample with its own seed.) What can still differ is the
floating-point arithmetic of a batched forward pass on a GPU (bf16 kernels depend on the batch shape); on a
CPU in float32 the samples are the same whatever the batch size.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..rollouts import is_truncated

Key = tuple[str, str, int]  # (benchmark, problem id, sample index)
SEEDING = "per-sample"  # recorded in samples files: each sample's own seed, `request_seed(seed, key)`


@dataclass(frozen=True)
class SamplingSettings:
    """How every sample of `sas-trl eval`, `analyze-truncation` and `inspect` is drawn; checked when built.

    The defaults are the paper's evaluation protocol. The fields are what a samples file's header records.
    """

    temperature: float = 0.6  # 0 = greedy
    top_p: float = 0.95  # nucleus sampling; 1 = the whole distribution
    max_tokens: int = 8192  # new tokens per sample, EOS included
    seed: int = 0  # with the sample's key, seeds its own random stream (`request_seed`)

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise UserError(
                "need --temperature >= 0, 0 < --top_p <= 1 and a token budget (--max_tokens, --long_tokens) >= 1, "
                f"got temperature {self.temperature}, top_p {self.top_p}, max_tokens {self.max_tokens}"
            )


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


def model_identity(model: str) -> str:
    """A local folder's absolute path, or the Hub id as given (what loads it, and what the samples file records)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


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
        from transformers import LogitsProcessorList

        device = self.model.device
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding: every row's next token comes right after its prompt
            input_ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            attention_mask[i, width - len(r.prompt_ids) :] = 1
        processors = []
        if settings.temperature > 0:  # sampled by PerRequestSampler: `generate` then only takes its pick (argmax)
            processors.append(PerRequestSampler([r.key for r in batch], width, settings, device))
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=settings.max_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,  # a model's generation_config may set them; the sampler applies the run's own
            logits_processor=LogitsProcessorList(processors),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
        )
        completions = []
        for request, row in zip(batch, out[:, width:].tolist(), strict=True):
            stop = next((j for j, t in enumerate(row) if t in self.eos_ids), None)
            ids = row[: stop + 1] if stop is not None else row[: settings.max_tokens]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            reason = "length" if is_truncated(ids, self.eos_ids, self.pad_id) else "stop"
            completions.append(Completion(request.key, text, ids, reason))
        return completions


class PerRequestSampler:
    """Temperature, nucleus top_p, then one draw per row from that row's own random stream.

    Row i's k-th token uses the k-th number of a CPU `torch.Generator` seeded with `request_seed(seed, key_i)`
    (inverse-CDF sampling over the token ids), so a sample does not depend on the rows it is batched with.
    Returns scores that are -inf except at the drawn token, for `generate`'s greedy pick. The temperature and
    top_p warpers are transformers' own, so the distribution is exactly what `do_sample=True` would draw from.
    """

    def __init__(self, keys: Sequence[Key], prompt_width: int, settings: SamplingSettings, device):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.prompt_width = prompt_width
        self.temperature = TemperatureLogitsWarper(settings.temperature)
        self.top_p = TopPLogitsWarper(settings.top_p) if settings.top_p < 1.0 else None
        uniforms = []
        for key in keys:
            generator = torch.Generator().manual_seed(request_seed(settings.seed, key))
            uniforms.append(torch.rand(settings.max_tokens, generator=generator, dtype=torch.float64))
        self.uniforms = torch.stack(uniforms).to(device)  # (B, max_tokens)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        scores = self.temperature(input_ids, scores.float())
        if self.top_p is not None:
            scores = self.top_p(input_ids, scores)
        cdf = torch.softmax(scores, dim=-1).double().cumsum(dim=-1)  # (B, V)
        target = (self.uniforms[:, step] * cdf[:, -1]).unsqueeze(1)  # (B, 1), in [0, total)
        # The first token whose cumulative probability exceeds the target; zero-probability tokens never win.
        chosen = torch.searchsorted(cdf, target, right=True).clamp(max=scores.shape[-1] - 1)
        picked = torch.full_like(scores, float("-inf"))
        return picked.scatter_(1, chosen, 0.0)


# --------------------------------------------------------------------------------------------------
# vLLM (GPU only; kept thin)
# --------------------------------------------------------------------------------------------------


def vllm_inputs(
    requests: Sequence[Request], settings: SamplingSettings, sampling_params: Callable
) -> tuple[list[dict], list]:
    """vLLM prompts (token ids) and SamplingParams, one per sample, each with its own seed (`request_seed`).

    One request per sample rather than `n` samples of one prompt: a sample then does not depend on which other
    samples of its problem are drawn in the same call (a resumed run draws only the missing ones). vLLM's
    prefix cache shares the prompt's work between them.
    """
    prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in requests]
    params = [
        sampling_params(
            n=1,
            temperature=settings.temperature,
            top_p=settings.top_p if settings.temperature > 0 else 1.0,
            top_k=-1,
            max_tokens=settings.max_tokens,
            seed=request_seed(settings.seed, r.key),
            skip_special_tokens=True,
        )
        for r in requests
    ]
    return prompts, params


def vllm_completions(requests: Sequence[Request], outputs: Sequence) -> list[Completion]:
    """Map vLLM's RequestOutputs (one per request, `.outputs` holding its one sample) back to the requests."""
    if len(outputs) != len(requests):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
    completions = []
    for request, output in zip(requests, outputs, strict=True):
        if len(output.outputs) != 1:
            raise RuntimeError(f"vLLM returned {len(output.outputs)} samples for {request.key}, expected 1")
        sample = output.outputs[0]
        # vLLM stops only at EOS here (no stop strings), so its "length" is the project's truncation rule.
        reason = "length" if sample.finish_reason == "length" else "stop"
        completions.append(Completion(request.key, sample.text, list(sample.token_ids), reason))
    return completions


class VLLMBackend:
    """One vLLM engine; requests go in chunks of `batch_size` sequences, so finished chunks are saved."""

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
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            prompts, params = vllm_inputs(chunk, settings, self.sampling_params)
            yield vllm_completions(chunk, self.engine.generate(prompts, params, use_tqdm=False))


def make_backend(kind: str, model: str, tokenizer, batch_size: int | None, seed: int, **vllm_kwargs):
    """The generation backend: vLLM when installed with a GPU (or asked for), else transformers."""
    if kind == "vllm" or (kind == "auto" and vllm_available()):
        if not vllm_available():
            raise UserError("--backend vllm needs vllm installed (pip install 'sas-trl[vllm]') and a CUDA GPU")
        return VLLMBackend.load(model_identity(model), batch_size, seed=seed, **vllm_kwargs)
    return TransformersBackend.load(model_identity(model), tokenizer, batch_size)
