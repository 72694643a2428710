"""Wiring tests on tiny random-weight CLIP and SigLIP checkpoints (see conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmrag.encode import CLIPEncoder, encoders
from mmrag.encode.base import Encoder
from mmrag.errors import ConfigError


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(64, 48), (40, 90), (33, 33), (128, 96)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for w, h in (sizes[i % len(sizes)] for i in range(n))]


@pytest.fixture(scope="module", params=["clip", "siglip", "siglip2"])
def tiny(request):
    path = request.getfixturevalue(f"tiny_{request.param}_path")
    return request.param, CLIPEncoder(str(path), batch_size=3)


def test_wiring_loads_from_saved_checkpoint(tiny):
    kind, enc = tiny
    assert isinstance(enc, Encoder)
    assert enc.space == "clip" and enc.supports_text and enc.supports_images
    assert enc.model_type == kind
    assert enc.dim == (16 if kind == "clip" else 32)  # projection_dim vs SigLIP hidden size
    if kind == "siglip2":
        assert {"pixel_attention_mask", "spatial_shapes"} <= enc._image_params
    assert enc.describe() == {"encoder": "clip", "model": enc.model_name, "dim": enc.dim}
    assert encoders.get("clip") is CLIPEncoder and encoders.get("siglip") is CLIPEncoder


def test_wiring_text_and_images_share_a_normalised_space(tiny):
    _, enc = tiny
    txt = enc.encode_text(["a photo of a dog", "a red car", "cat"])
    img = enc.encode_images(_images(5))
    assert txt.shape == (3, enc.dim) and img.shape == (5, enc.dim)
    assert txt.dtype == img.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    assert (txt @ img.T).shape == (3, 5)
    assert enc.encode_text([]).shape == (0, enc.dim)
    assert enc.encode_images([]).shape == (0, enc.dim)


def test_wiring_images_deterministic_and_distinct(tiny):
    _, enc = tiny
    imgs = _images(4)
    a = enc.encode_images([imgs[0], imgs[0], imgs[1]])
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)  # may sit in different batches
    assert not np.allclose(a[0], a[2], atol=1e-4)
    np.testing.assert_array_equal(enc.encode_images(imgs[:1])[0], enc.encode_images(imgs[:1])[0])


def test_wiring_batched_equals_single_across_prefetch(tiny):
    _, enc = tiny
    imgs = _images(7, seed=3)  # batch_size 3: three batches, the prefetch thread runs
    batched = enc.encode_images(imgs)
    single = np.vstack([enc.encode_images([im]) for im in imgs])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    texts = ["a photo of the dog", "a", "blue car red car", "puppy", "of the cat"]
    np.testing.assert_allclose(enc.encode_text(texts),
                               np.vstack([enc.encode_text([t]) for t in texts]), atol=1e-5)


def test_wiring_non_rgb_images_are_converted(tiny):
    _, enc = tiny
    rgb = _images(1, seed=5)[0]
    for mode in ("L", "RGBA", "P", "CMYK"):
        vec = enc.encode_images([rgb.convert(mode)])
        assert vec.shape == (1, enc.dim) and np.isfinite(vec).all()
    np.testing.assert_allclose(enc.encode_images([rgb.convert("RGBA")]),
                               enc.encode_images([rgb]), atol=1e-6)


def test_wiring_text_padding_follows_the_model(tiny):
    kind, enc = tiny
    assert enc._padding == ("longest" if kind == "clip" else "max_length")
    long = " ".join(["dog"] * 100)
    vec = enc.encode_text([long, "cat"])  # truncated to the position table, no crash
    assert vec.shape == (2, enc.dim)


def test_wiring_different_texts_differ(tiny):
    _, enc = tiny
    a, b = enc.encode_text(["a photo of a dog", "blue car"])
    assert not np.allclose(a, b, atol=1e-4)


def test_missing_model_is_one_line_config_error(tmp_path):
    missing = tmp_path / "not-a-model"
    with pytest.raises(ConfigError, match="not-a-model") as info:
        CLIPEncoder(str(missing))
    assert "\n" not in str(info.value)
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_uncached_hub_id_is_one_line_config_error():
    # HF_HUB_OFFLINE=1 (conftest): resolved from the local cache only, never downloaded
    with pytest.raises(ConfigError, match="'mmrag-test/no-such-clip'") as info:
        CLIPEncoder("mmrag-test/no-such-clip")
    assert "\n" not in str(info.value) and info.value.__suppress_context__


def test_folder_without_weights_is_config_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=str(tmp_path.name)):
        CLIPEncoder(str(tmp_path))


def test_empty_model_name_is_config_error():
    with pytest.raises(ConfigError, match="needs a model"):
        CLIPEncoder("")


def test_text_only_checkpoint_is_config_error():
    from mmrag.encode.text import bundled_model_path

    with pytest.raises(ConfigError, match="cannot load vision model"):
        CLIPEncoder(bundled_model_path())  # MiniLM: no image processor


def test_single_tower_model_is_not_a_dual_encoder(tmp_path, tiny_clip_path):
    import shutil

    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=16)).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copy(tiny_clip_path / name, tmp_path / name)
    with pytest.raises(ConfigError, match="not a dual text/image encoder"):
        CLIPEncoder(str(tmp_path))


def test_wiring_concurrent_text_queries_agree(tiny):
    from concurrent.futures import ThreadPoolExecutor

    _, enc = tiny
    texts = [f"a photo of the {w}" for w in ("dog", "cat", "car", "puppy")] * 4
    expected = enc.encode_text(texts)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: enc.encode_text([t])[0], texts))
    np.testing.assert_allclose(np.vstack(got), expected, atol=1e-5)
