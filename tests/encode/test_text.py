from __future__ import annotations

import numpy as np
import pytest

from mmrag.encode import encoders
from mmrag.encode.base import Encoder
from mmrag.encode.text import SentenceTransformerEncoder
from mmrag.errors import ConfigError, QueryError


def test_minilm_loads_offline_and_describes_itself(minilm):
    assert isinstance(minilm, Encoder)
    assert minilm.space == "text" and minilm.supports_text and not minilm.supports_images
    assert minilm.describe() == {"encoder": "sentence-transformers",
                                 "model": "all-MiniLM-L6-v2", "dim": minilm.dim}
    assert minilm.dim == 384
    assert encoders.get("sentence-transformers") is SentenceTransformerEncoder


def test_minilm_shapes_dtype_and_unit_norm(minilm):
    texts = ["a photo of a dog", "quarterly tax report", "x" * 5000, ""]
    vecs = minilm.encode_text(texts)
    assert vecs.shape == (4, minilm.dim)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert minilm.encode_text([]).shape == (0, minilm.dim)


def test_minilm_semantic_sanity(minilm):
    dog, puppy, tax = minilm.encode_text(
        ["a photo of a dog", "a puppy playing", "quarterly tax report"])
    assert float(dog @ puppy) > float(dog @ tax) + 0.1


def test_minilm_batching_does_not_change_vectors(minilm):
    texts = [f"document number {i} about {w}" for i, w in enumerate(["cats", "ships", "tax"] * 3)]
    whole = minilm.encode_text(texts)
    one_by_one = np.vstack([minilm.encode_text([t]) for t in texts])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-4)


def test_text_encoder_refuses_images(minilm):
    from PIL import Image

    with pytest.raises(QueryError, match="cannot embed images"):
        minilm.encode_images([Image.new("RGB", (8, 8))])


def test_missing_sentence_transformer_model_is_a_config_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match="no-such-model") as info:
        SentenceTransformerEncoder(str(missing))
    assert "\n" not in str(info.value)
