from __future__ import annotations

import numpy as np
import pytest

from mmrag.encode import HashingEncoder, encoders
from mmrag.encode.base import Encoder
from mmrag.errors import ConfigError, QueryError


def test_hashing_is_deterministic_across_instances():
    texts = ["The quick brown fox", "jumps over the lazy dog", ""]
    a = HashingEncoder(dim=64).encode_text(texts)
    b = encoders.create("hashing", dim=64).encode_text(texts)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 64) and a.dtype == np.float32


def test_hashing_vectors_are_unit_norm_except_empty():
    vecs = HashingEncoder().encode_text(["alpha beta", "gamma", "", "!!!"])
    norms = np.linalg.norm(vecs, axis=1)
    np.testing.assert_allclose(norms[:2], 1.0, atol=1e-6)
    np.testing.assert_array_equal(norms[2:], 0.0)


def test_hashing_similarity_follows_word_overlap():
    enc = HashingEncoder(dim=1024)
    base, near, far = enc.encode_text(["red sports car engine", "red sports car wheels",
                                       "quarterly tax report"])
    assert float(base @ near) > float(base @ far)
    assert float(base @ near) > 0.3


def test_hashing_bigrams_distinguish_word_order():
    enc = HashingEncoder(dim=4096)
    a, b = enc.encode_text(["dog bites man", "man bites dog"])
    assert 0.0 < float(a @ b) < 0.999  # same unigrams, different bigrams


def test_hashing_sublinear_tf():
    enc = HashingEncoder(dim=4096)
    once, many, other = enc.encode_text(["apple pear", "apple apple apple apple pear", "pear"])
    # raw counts would give pear·many = 1/sqrt(4²+3²+1+1) ≈ 0.19; 1 + log tf gives ≈ 0.29
    assert float(many @ other) > 0.25
    assert float(once @ many) > float(once @ other) - 0.1


def test_hashing_contract_and_errors():
    enc = HashingEncoder(dim=32, model="ignored", device="cpu")
    assert isinstance(enc, Encoder)
    assert enc.space == "text" and enc.describe()["dim"] == 32
    assert enc.encode_text([]).shape == (0, 32)
    with pytest.raises(QueryError):
        enc.encode_images([])
    with pytest.raises(ConfigError):
        HashingEncoder(dim=1)
