"""encode.precision: the dtype choice, and bf16 MiniLM vectors staying close to float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmrag.encode._util import native_bf16, torch_dtype
from mmrag.encode.text import SentenceTransformerEncoder
from mmrag.errors import ConfigError


def test_explicit_precisions_map_to_torch_dtypes() -> None:
    assert torch_dtype("float32", "cpu") is torch.float32
    assert torch_dtype("bfloat16", "cpu") is torch.bfloat16
    assert torch_dtype("float16", "cuda") is torch.float16


def test_auto_follows_the_hardware() -> None:
    expected = torch.bfloat16 if native_bf16() else torch.float32
    assert torch_dtype("auto", "cpu") is expected
    assert torch_dtype("auto", "cuda:0") is torch.float16


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="encode.precision"):
        torch_dtype("int3", "cpu")


def test_bfloat16_minilm_vectors_match_float32() -> None:
    texts = ["late interaction scores pages by MaxSim over token vectors",
             "a scanned invoice with a table of line items and totals",
             "the cat sat on the mat"]
    fp32 = SentenceTransformerEncoder(precision="float32").encode_text(texts)
    bf16 = SentenceTransformerEncoder(precision="bfloat16").encode_text(texts)
    assert bf16.dtype == np.float32
    cos = (fp32 * bf16).sum(axis=1)
    assert cos.min() > 0.999
    # and the ranking of one query against the texts is the same
    query = SentenceTransformerEncoder(precision="bfloat16").encode_text(["MaxSim token"])
    assert np.argmax(fp32 @ query[0]) == np.argmax(bf16 @ query[0])
