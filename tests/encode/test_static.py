"""The model2vec text encoder: distilled offline from the bundled MiniLM, cached, reloaded."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag import Index
from mmrag.encode import StaticEncoder, encoders, static
from mmrag.errors import ConfigError, QueryError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def enc(cache):
    return encoders.create("model2vec", cache_dir=cache)  # distils once (~20 s)


def test_distilled_model_is_cached_on_disk(enc, cache):
    folder = static.distilled_path(cache)
    assert (folder / "config.json").is_file()
    assert enc.dim == static.DISTILL_DIMS
    assert "model2vec" in enc.describe()["encoder"]


def test_second_load_reuses_the_cache(enc, cache, monkeypatch):
    def fail(_folder):
        raise AssertionError("distilled again")

    monkeypatch.setattr(static, "_distill", fail)
    again = StaticEncoder(cache_dir=cache)
    texts = ["puffins nest in burrows on cliff tops"]
    np.testing.assert_allclose(again.encode_text(texts), enc.encode_text(texts), atol=1e-6)


def test_vectors_are_unit_norm_and_follow_meaning(enc):
    vecs = enc.encode_text(["seabirds breeding in a colony on the sea cliffs",
                            "gulls and puffins nesting on coastal rocks",
                            "the quarterly invoice lists unpaid tax"])
    assert vecs.shape == (3, enc.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2]) + 0.1


def test_empty_input_gives_an_empty_matrix(enc):
    assert enc.encode_text([]).shape == (0, enc.dim)


def test_loads_a_model2vec_folder_by_path(enc, cache):
    folder = str(static.distilled_path(cache))
    by_path = StaticEncoder(model=folder)
    assert by_path.model_name == folder
    text = ["a field guide to sea birds"]
    np.testing.assert_allclose(by_path.encode_text(text), enc.encode_text(text), atol=1e-6)


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found") as err:
        StaticEncoder(model=str(tmp_path / "nope"))
    assert "\n" not in str(err.value)


def test_images_are_refused(enc):
    from PIL import Image

    with pytest.raises(QueryError, match="cannot embed images"):
        enc.encode_images([Image.new("RGB", (8, 8))])


def test_index_with_static_text_encoder_finds_by_meaning(tmp_path, cache):
    index = Index(tmp_path / "idx", show_progress=False, profile="offline",
                  encode={"text_encoder": "model2vec", "cache_dir": cache,
                          "image_descriptor": False})
    index.add([b"Puffins dig burrows on grassy cliff tops and raise one chick.",
               b"The invoice is due within thirty days of the billing date."])
    hits = index.search("where do seabirds nest", mode="dense", k=2)
    assert "Puffins" in hits[0].item.text
    assert index.info()["encoders"]["text"]["encoder"] == "model2vec"
