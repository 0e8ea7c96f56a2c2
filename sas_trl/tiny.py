"""A tiny model and tokenizer built locally, for CPU runs, tests and notebooks (no download).

The tokenizer knows whole "words" of the built-in arithmetic task ("\\n\\n", " + ", "</think>", ...)
and falls back to single ASCII characters for anything else, so any ASCII text round-trips. A
word-level vocabulary of this kind lets a 0.5M-parameter model learn the task on a laptop CPU in
minutes, where characters or BPE take far longer.

`<think>` and `</think>` are ordinary tokens, not special ones: TRL decodes completions with
`skip_special_tokens=True`, which would otherwise erase `</think>` before the reward sees it.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from .constants import PROMPT_SUFFIX

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "<unk>"
WORDS = [
    "<think>",
    "</think>",
    "\n\n",
    " + ",
    " = ",
    "\\boxed{",
    "Add ",
    "Let me double-check: ",
    PROMPT_SUFFIX,
]
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # printable ASCII plus space and "\n"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\n<think>\\n' }}{% endif %}"
)


def build_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """The tiny word-plus-character tokenizer (about 110 tokens)."""
    vocab = {token: i for i, token in enumerate([PAD, EOS, UNK, *WORDS, *CHARS])}
    words = sorted(WORDS, key=len, reverse=True)  # longest match first
    pattern = "|".join(re.escape(w) for w in words) + r"|[\s\S]"
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama sized for a CPU (the defaults give about 0.1M parameters)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def save_tiny_model(path: str | Path, **model_kwargs) -> Path:
    """Build the tiny tokenizer and model and save both to `path` (a folder usable as `model_name_or_path`)."""
    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, **model_kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
