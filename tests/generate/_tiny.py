"""A tokenizer for tiny random-weight models, built in code (nothing is downloaded).

Byte-level with no merges, so every character is one token and any text round-trips, plus
the special tokens chat templates and VLM processors look for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SPECIAL", "byte_tokenizer"]

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
           "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<image>"]


def byte_tokenizer() -> Any:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import AddedToken, Qwen2Tokenizer

    tok = Qwen2Tokenizer(vocab={c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))},
                         merges=[])
    tok.add_special_tokens({"additional_special_tokens": [
        AddedToken(s, special=True, normalized=False) for s in SPECIAL]})
    return tok
