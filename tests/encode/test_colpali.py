"""ColPali / ColQwen2 late-interaction encoder on tiny random-weight checkpoints (wiring).

The checkpoints are built in code (tests/conftest.py), saved with ``save_pretrained`` and
loaded back through ``ColPaliEncoder(path)``; random weights prove wiring, never quality.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmrag.encode.base import Encoder, encoders
from mmrag.encode.colpali import ColPaliEncoder
from mmrag.errors import ConfigError
from mmrag.search.late import maxsim

from ..conftest import COLPALI_DIM

FAMILIES = ["tiny_colpali_path", "tiny_colqwen2_path"]
QUERIES = ["a red car", "the dog of the photo with a cat"]


def _pages() -> list[Image.Image]:
    """Three distinct pages of different sizes (ColQwen2 gives them different token counts)."""
    rng = np.random.default_rng(0)
    sizes = [(48, 64), (32, 32), (64, 40)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module", params=FAMILIES)
def enc(request) -> ColPaliEncoder:
    return ColPaliEncoder(str(request.getfixturevalue(request.param)), batch_size=4)


@pytest.fixture(scope="module")
def pages() -> list[Image.Image]:
    return _pages()


def _check_matrices(mats: list[np.ndarray], n: int) -> None:
    assert len(mats) == n
    for m in mats:
        assert m.dtype == np.float32 and m.ndim == 2 and m.shape[1] == COLPALI_DIM
        assert m.shape[0] > 0
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)


def test_colpali_wiring_shapes_and_token_normalisation(enc, pages):
    _check_matrices(enc.encode_images_multi(pages), 3)
    _check_matrices(enc.encode_queries_multi(QUERIES), 2)
    assert enc.dim == COLPALI_DIM and enc.space == "colpali"
    assert isinstance(enc, Encoder)


def test_colpali_wiring_padding_removed(enc, pages):
    """Batched results equal one-at-a-time results: padding rows are dropped, not kept."""
    batched = enc.encode_images_multi(pages) + enc.encode_queries_multi(QUERIES)
    alone = [enc.encode_images_multi([p])[0] for p in pages]
    alone += [enc.encode_queries_multi([q])[0] for q in QUERIES]
    for b, a in zip(batched, alone, strict=True):
        assert b.shape == a.shape
        np.testing.assert_allclose(b, a, atol=1e-4)
    # the two queries differ in length, so the padded batch really had padding
    assert batched[3].shape[0] != batched[4].shape[0]


def test_colpali_wiring_self_query_ranks_first(enc, pages):
    """MaxSim is exact: a page queried by its own tokens scores n_tokens, above the rest."""
    mats = enc.encode_images_multi(pages)
    for i, m in enumerate(mats):
        scores = maxsim(m, mats)
        assert int(np.argmax(scores)) == i
        assert scores[i] == pytest.approx(len(m), rel=1e-5)
        assert all(scores[j] < scores[i] - 1e-4 for j in range(len(mats)) if j != i)


def test_colpali_wiring_deterministic(enc, pages):
    first = enc.encode_images_multi(pages)
    again = enc.encode_images_multi(pages)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(enc.encode_text(QUERIES), enc.encode_text(QUERIES))


def test_colpali_wiring_single_vectors_are_normalised_means(enc, pages):
    vecs = enc.encode_images(pages)
    mats = enc.encode_images_multi(pages)
    assert vecs.shape == (3, COLPALI_DIM) and vecs.dtype == np.float32
    for v, m in zip(vecs, mats, strict=True):
        mean = m.mean(axis=0)
        np.testing.assert_allclose(v, mean / np.linalg.norm(mean), atol=1e-5)
    q = enc.encode_text(QUERIES)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert enc.encode_text([]).shape == (0, COLPALI_DIM)
    assert enc.encode_images_multi([]) == []


def test_colpali_wiring_describe_names_family(enc):
    d = enc.describe()
    assert d["encoder"] == "colpali" and d["dim"] == COLPALI_DIM
    assert d["model_type"] in ("colpali", "colqwen2")


def test_colpali_registered_under_both_names():
    assert encoders.get("colpali") is ColPaliEncoder
    assert encoders.get("colqwen2") is ColPaliEncoder


def test_colpali_bad_models_raise_one_line_config_error(tmp_path, tiny_clip_path):
    for bad in ("", str(tmp_path / "missing" / "model"), str(tmp_path)):
        with pytest.raises(ConfigError) as err:
            ColPaliEncoder(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not ColPali"):
        ColPaliEncoder(str(tiny_clip_path))
