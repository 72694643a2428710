"""The model-free ``descriptor`` encoder: near-duplicates stay nearest, scenes differ."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from mmrag.encode import encoders
from mmrag.encode.base import Encoder
from mmrag.encode.descriptor import DescriptorEncoder
from mmrag.errors import ConfigError, QueryError

PALETTE = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (230, 200, 40), (240, 240, 240),
           (20, 20, 20), (150, 60, 170), (30, 170, 170), (240, 140, 30), (120, 120, 120)]


def scene(i: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Ten distinct synthetic scenes: background, shapes, stripes and text differ."""
    rng = np.random.default_rng(i)
    bg = PALETTE[i]
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    w, h = size
    for k in range(3 + i % 4):
        fill = PALETTE[(i + 3 + 2 * k) % len(PALETTE)]
        x0, y0 = int(rng.integers(0, w - 120)), int(rng.integers(0, h - 120))
        x1, y1 = x0 + int(rng.integers(60, 200)), y0 + int(rng.integers(60, 200))
        (d.ellipse if (i + k) % 2 else d.rectangle)((x0, y0, x1, y1), fill=fill)
    if i % 3 == 0:  # stripes: strong oriented edges
        for x in range(0, w, 24):
            d.line((x, 0, x + (i - 4) * 20, h), fill=PALETTE[(i + 5) % 10], width=4)
    d.text((20, h - 40), f"scene {i}", fill=PALETTE[(i + 1) % 10])
    return img


def jpeg(img: Image.Image, quality: int = 60) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def variants(img: Image.Image) -> dict[str, Image.Image]:
    return {
        "jpeg": jpeg(img),
        "resized": img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS),
        "upsized": img.resize((img.width * 3 // 2, img.height * 3 // 2)),
        "brighter": ImageEnhance.Brightness(img).enhance(1.15),
        "contrast": ImageEnhance.Contrast(img).enhance(0.9),
        "jpeg+small": jpeg(img.resize((320, 240)), quality=50),
    }


@pytest.fixture(scope="module")
def enc() -> DescriptorEncoder:
    return DescriptorEncoder()


@pytest.fixture(scope="module")
def scenes() -> list[Image.Image]:
    return [scene(i) for i in range(10)]


@pytest.fixture(scope="module")
def base_vecs(enc, scenes) -> np.ndarray:
    return enc.encode_images(scenes)


def test_registered_and_protocol():
    e = encoders.create("descriptor", model="ignored", device="cpu", batch_size=8)
    assert isinstance(e, Encoder)
    assert e.space == "visual" and e.supports_images and not e.supports_text
    d = e.describe()
    assert d["encoder"] == "descriptor" and d["dim"] == e.dim


def test_text_is_refused(enc):
    with pytest.raises(QueryError):
        enc.encode_text(["a red circle"])


def test_shape_dtype_and_unit_norm(enc, base_vecs):
    assert base_vecs.shape == (10, enc.dim)
    assert base_vecs.dtype == np.float32
    assert np.all(np.isfinite(base_vecs))
    np.testing.assert_allclose(np.linalg.norm(base_vecs, axis=1), 1.0, atol=1e-5)
    assert enc.encode_images([]).shape == (0, enc.dim)


def test_deterministic_and_batch_equals_single(enc, scenes, base_vecs):
    again = DescriptorEncoder().encode_images(scenes)
    np.testing.assert_array_equal(again, base_vecs)
    for i in (0, 4, 9):
        single = enc.encode_images([scenes[i]])[0]
        np.testing.assert_allclose(single, base_vecs[i], atol=1e-6)


def test_distinct_scenes_are_not_duplicates(base_vecs):
    sims = base_vecs @ base_vecs.T
    off = sims[~np.eye(len(sims), dtype=bool)]
    assert off.max() < 0.8, f"two different scenes look alike: {off.max():.3f}"


@pytest.mark.parametrize("kind", ["jpeg", "resized", "upsized", "brighter", "contrast",
                                  "jpeg+small"])
def test_near_duplicate_is_nearest(enc, scenes, base_vecs, kind):
    queries = enc.encode_images([variants(img)[kind] for img in scenes])
    sims = queries @ base_vecs.T
    assert list(sims.argmax(axis=1)) == list(range(len(scenes)))
    own = np.diag(sims)
    others = np.where(np.eye(len(scenes), dtype=bool), -1.0, sims).max(axis=1)
    assert own.min() > 0.9, own
    assert np.all(own - others > 0.2), (own, others)


def test_colour_scenes_far_apart(enc):
    red, blue, red2 = enc.encode_images([Image.new("RGB", (200, 150), (210, 20, 20)),
                                         Image.new("RGB", (200, 150), (20, 20, 210)),
                                         Image.new("RGB", (300, 100), (200, 30, 25))])
    assert float(red @ blue) < 0.7
    assert float(red @ red2) > float(red @ blue) + 0.25


def test_modes_and_alpha_are_accepted(enc):
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent: reads as white
    white = Image.new("RGB", (64, 64), "white")
    grey = Image.new("L", (64, 64), 128)
    vecs = enc.encode_images([rgba, white, grey, Image.new("P", (10, 10))])
    assert np.all(np.isfinite(vecs))
    assert float(vecs[0] @ vecs[1]) > 0.99


def test_other_dim_projects(scenes):
    small = DescriptorEncoder(dim=128)
    v = small.encode_images(scenes[:4] + [jpeg(scenes[0])])
    assert v.shape == (5, 128)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert int(np.argmax(v[:4] @ v[4])) == 0
    with pytest.raises(ConfigError):
        DescriptorEncoder(dim=2)


def test_fast_enough(enc, scenes):
    batch = scenes * 3
    start = time.perf_counter()
    enc.encode_images(batch)
    rate = len(batch) / (time.perf_counter() - start)
    assert rate > 50, f"{rate:.0f} images/s"  # target 100+/s; loose for shared CI cores
