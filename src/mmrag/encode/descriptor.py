"""A classic global image descriptor: image-to-image similarity with no learned weights.

For offline indexes (no CLIP) and near-duplicate search: the same picture re-saved as
JPEG, resized or slightly brightened lands next to itself, different scenes apart. It
cannot read meaning ("a dog") and cannot embed text; it lives in its own ``visual`` space.

Four blocks, each L2-normalised and scaled by the square root of its weight, so the
cosine of two vectors is the weighted sum of the blocks' cosines:

- colour: HSV histogram, 8 hues x 3 saturations x 3 values for coloured pixels plus 8
  grey levels for unsaturated ones (their hue is noise), square-rooted (Hellinger
  kernel: a few dominant bins no longer drown the rest);
- edges: HOG-like gradient orientation histograms, 8 unsigned orientations in each cell
  of a 4x4 grid, magnitude-weighted and square-rooted: layout of shapes and text;
- grey thumbnail 16x16, mean-centred: coarse composition, blind to brightness shifts;
- colour thumbnail 4x4 RGB, mean-centred: where the colours are.

Every image is first reduced to 96x96 (aspect ignored, so resizing does not move it), which
is what keeps it fast: about 1-2 ms per 640x480 image on one core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, QueryError
from .base import encoders, l2_normalize

__all__ = ["DescriptorEncoder"]

_SIDE = 96      # working resolution
_GRID = 4       # edge histogram cells per side
_ORIENT = 8     # unsigned orientation bins
_THUMB = 16     # grey thumbnail side
_CTHUMB = 4     # colour thumbnail side
_HUES, _SATS, _VALS, _GREYS = 8, 3, 3, 8
_GREY_SAT = 40  # below this saturation (of 255) a pixel's hue is meaningless

_BLOCKS = {  # name: (width, weight)
    "colour": (_HUES * _SATS * _VALS + _GREYS, 0.35),
    "edges": (_GRID * _GRID * _ORIENT, 0.30),
    "thumb": (_THUMB * _THUMB, 0.25),
    "cthumb": (_CTHUMB * _CTHUMB * 3, 0.10),
}
NATIVE_DIM = sum(w for w, _ in _BLOCKS.values())  # 512


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")  # transparent areas read as paper
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _small(image: Image.Image) -> Image.Image:
    if image.format == "JPEG" and max(image.size) > 4 * _SIDE:
        try:  # decode at 1/2..1/8 scale straight from the DCT: far cheaper than resizing
            image.draft("RGB", (2 * _SIDE, 2 * _SIDE))
        except Exception:
            pass
    rgb = _rgb(image)
    return rgb.resize((_SIDE, _SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _unit(x: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(x))
    return x / n if n > 1e-12 else x


def _soft(values: np.ndarray, bins: int, span: float, circular: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear soft binning: each value splits between its two nearest bin centres, so
    JPEG noise or a small brightness change moves mass smoothly instead of flipping a
    pixel across a hard bin edge."""
    c = values * (bins / span) - 0.5
    lo = np.floor(c)
    frac = (c - lo).astype(np.float32)
    lo = lo.astype(np.int64)
    hi = lo + 1
    if circular:
        lo, hi = lo % bins, hi % bins
    else:
        frac = np.where(lo < 0, 1.0, np.where(hi >= bins, 0.0, frac)).astype(np.float32)
        lo, hi = lo.clip(0, bins - 1), hi.clip(0, bins - 1)
    return lo, hi, frac


def _colour(small: Image.Image) -> np.ndarray:
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32).reshape(-1, 3)
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    # how much a pixel counts as coloured: greys and near-blacks have no reliable hue
    w_col = np.clip((s - _GREY_SAT + 16) / 32, 0, 1) * np.clip((v - 16) / 32, 0, 1)
    n_col = _HUES * _SATS * _VALS
    hist = np.zeros(_BLOCKS["colour"][0], dtype=np.float32)
    dims = (_soft(h, _HUES, 256.0, circular=True),
            _soft(np.clip(s - _GREY_SAT, 0, None), _SATS, 256.0 - _GREY_SAT),
            _soft(v, _VALS, 256.0))
    for corner in range(8):  # trilinear: the 8 neighbouring (h, s, v) bins
        idx = np.zeros(len(h), dtype=np.int64)
        wt = w_col.copy()
        for axis, (lo, hi, frac) in enumerate(dims):
            up = (corner >> axis) & 1
            idx = idx * (_HUES, _SATS, _VALS)[axis] + (hi if up else lo)
            wt = wt * (frac if up else 1.0 - frac)
        hist[:n_col] += np.bincount(idx, weights=wt, minlength=n_col)[:n_col]
    lo, hi, frac = _soft(v, _GREYS, 256.0)
    w_grey = 1.0 - w_col
    hist[n_col:] += np.bincount(lo, weights=w_grey * (1 - frac), minlength=_GREYS)
    hist[n_col:] += np.bincount(hi, weights=w_grey * frac, minlength=_GREYS)
    return np.sqrt(hist / max(float(hist.sum()), 1e-6))


def _edges(grey: np.ndarray) -> np.ndarray:
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, 1:-1] = grey[:, 2:] - grey[:, :-2]
    gy[1:-1, :] = grey[2:, :] - grey[:-2, :]
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned: dark-on-light = light-on-dark
    ob = np.minimum((ang * (_ORIENT / np.pi)).astype(np.int64), _ORIENT - 1)
    cell = _SIDE // _GRID
    rows = np.arange(_SIDE) // cell
    cb = (rows[:, None] * _GRID + rows[None, :]) * _ORIENT + ob
    hist = np.bincount(cb.ravel(), weights=mag.ravel(),
                       minlength=_BLOCKS["edges"][0]).astype(np.float32)
    return np.sqrt(hist / max(float(hist.sum()), 1e-6))


def _thumb(image: Image.Image, side: int) -> np.ndarray:
    arr = np.asarray(image.resize((side, side), Image.Resampling.BOX), dtype=np.float32)
    arr = arr / 255.0
    return (arr - arr.mean(axis=(0, 1))).ravel()  # per channel: brightness-shift blind


def describe_image(image: Image.Image) -> np.ndarray:
    """The native 512-d descriptor of one image (float32, unit length)."""
    small = _small(image)
    grey_img = small.convert("L")
    grey = np.asarray(grey_img, dtype=np.float32) / 255.0
    blocks = {"colour": _colour(small), "edges": _edges(grey),
              "thumb": _thumb(grey_img, _THUMB), "cthumb": _thumb(small, _CTHUMB)}
    parts = [_unit(blocks[name].astype(np.float32)) * np.sqrt(weight)
             for name, (_w, weight) in _BLOCKS.items()]
    return _unit(np.concatenate(parts)).astype(np.float32)


@encoders.register("descriptor")
class DescriptorEncoder:
    """Model-free image encoder in the ``visual`` space (see the module docstring).

    ``dim`` other than 512 applies a fixed seeded random projection (Johnson-Lindenstrauss:
    cosines are kept approximately), so the output width can match a store's layout.
    """

    space = "visual"
    supports_text = False
    supports_images = True

    def __init__(self, dim: int = NATIVE_DIM, **_: Any):
        if int(dim) < 8:
            raise ConfigError(f"descriptor encoder dim must be >= 8, got {dim!r}")
        self.dim = int(dim)
        self._proj: np.ndarray | None = None
        if self.dim != NATIVE_DIM:
            rng = np.random.default_rng(20240611)  # fixed: vectors must be reproducible
            self._proj = (rng.standard_normal((NATIVE_DIM, self.dim)) / np.sqrt(self.dim)
                          ).astype(np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.stack([describe_image(img) for img in images])
        if self._proj is not None:
            out = out @ self._proj
        return l2_normalize(out)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        raise QueryError("the descriptor encoder embeds images only; "
                         "search its 'visual' space with an image query")

    def describe(self) -> dict[str, Any]:
        return {"encoder": "descriptor", "model": "hsv80+eoh4x4x8+grey16+rgb4-v1",
                "dim": self.dim}
