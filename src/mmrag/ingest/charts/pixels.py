"""Pixel helpers of the chart reader: axis-line darkness, colour distances, the plot's
palette and its hues."""

from __future__ import annotations

import numpy as np

from ..colors import color_name

INK = 145  # darkness (255 - brightest channel) of an axis line, over two pixels


def longest_run(line: np.ndarray) -> tuple[int, int]:
    """Start and end (exclusive) of the longest run of True in a 1-D bool array."""
    if not line.any():
        return 0, 0
    padded = np.concatenate(([False], line, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])


def distance(region: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Largest per-channel difference from ``colour`` (per channel: a reduction over the
    last axis is ~10x slower)."""
    out = np.abs(region[..., 0].astype(np.int16) - int(colour[0]))
    for ch in (1, 2):
        np.maximum(out, np.abs(region[..., ch].astype(np.int16) - int(colour[ch])), out=out)
    return out


def near(region: np.ndarray, colour: np.ndarray, tol: float) -> np.ndarray:
    return distance(region, colour) <= tol


def palette(region: np.ndarray, min_share: float = 0.004, limit: int = 10
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The background colour and the other frequent colours of ``region`` (4-bit bins,
    each returned as the mean colour of its pixels, near-duplicates merged)."""
    flat = region.reshape(-1, 3)
    keys = (flat[:, 0] >> 4).astype(np.int32) << 8 | (flat[:, 1] >> 4).astype(np.int32) << 4 \
        | (flat[:, 2] >> 4).astype(np.int32)
    counts = np.bincount(keys, minlength=4096)
    sums = np.stack([np.bincount(keys, weights=flat[:, ch], minlength=4096)
                     for ch in range(3)], axis=1)
    means = sums / np.maximum(counts, 1)[:, None]
    # the background is what the plot's edges show most: bars may cover more of it
    h, w = region.shape[:2]
    grid = keys.reshape(h, w)
    i = min(3, h // 4, w // 4)  # inside the axis lines, which a downscale smears
    edge = np.concatenate([grid[i], grid[h - 1 - i], grid[:, i], grid[:, w - 1 - i]])
    bg_key = int(np.bincount(edge, minlength=4096).argmax())
    background = means[bg_key]
    order = [k for k in np.argsort(counts)[::-1][:limit + 1] if k != bg_key][:limit]
    colours: list[np.ndarray] = []
    for key in order:
        if counts[key] < max(24, min_share * len(flat)):
            break
        mean = means[key]
        if np.abs(mean - background).max() < 40:
            continue
        # one colour split by a bin edge or JPEG noise; two greys of adjacent bars
        # differ by 20 or more
        if any(np.abs(mean - c).max() < 16 for c in colours):
            continue
        colours.append(mean)
    return background, colours


def hues(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in degrees (0 where grey) and whether each pixel is coloured at all; the hue
    is computed for the coloured pixels only (a chart is mostly white and grey)."""
    rgb = region.astype(np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    chromatic = (mx - mn) >= 60
    hue = np.zeros(region.shape[:2], np.float32)
    ys, xs = np.nonzero(chromatic)
    if len(ys):
        rr, gg, bb = (c[ys, xs].astype(np.float32) for c in (r, g, b))
        top, chroma = mx[ys, xs], (mx - mn)[ys, xs].astype(np.float32)
        hue[ys, xs] = np.where(top == rr, ((gg - bb) / chroma) % 6,
                               np.where(top == gg, (bb - rr) / chroma + 2,
                                        (rr - gg) / chroma + 4)) * 60.0
    return hue, chromatic


def rgb_name(colour: np.ndarray) -> str:
    return color_name([int(v) for v in colour])
