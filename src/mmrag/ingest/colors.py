"""Colour words for pixels: the small vocabulary people search with (red, orange,
yellow, green, blue, purple, pink, brown, grey, black, white), by hue, saturation and
value. Shared by the facets (dominant colours) and the chart reader (series colours)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["COLOR_NAMES", "color_name", "color_names"]


COLOR_NAMES = ("black", "grey", "white", "red", "orange", "brown", "yellow", "green",
               "blue", "purple", "pink")
_VOCAB = np.array(COLOR_NAMES)  # indexed by color_names below


def color_name(rgb: Sequence[int]) -> str:
    """A basic colour word for one RGB colour (0..255): the words people search with."""
    arr = color_names(np.asarray(rgb, dtype=np.float32).reshape(1, 3))
    return str(arr[0])


def color_names(rgb: np.ndarray) -> np.ndarray:
    """Colour words for an (n, 3) array of RGB values, by hue, saturation and value."""
    x = rgb / 255.0
    mx, mn = x.max(axis=1), x.min(axis=1)
    v, chroma = mx, mx - mn
    s = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    safe = np.maximum(chroma, 1e-6)
    h = np.where(mx == r, ((g - b) / safe) % 6,
                 np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    idx = np.full(len(x), 1)  # grey
    grey = (s < 0.18) | (chroma < 0.08)
    idx[grey & (v >= 0.88)] = 2
    idx[grey & (v < 0.88)] = 1
    idx[v < 0.2] = 0
    col = ~grey & (v >= 0.2)
    red = (h < 15) | (h >= 345)
    idx[col & red] = 3
    idx[col & red & (s < 0.5) & (v > 0.8)] = 10  # light red reads as pink
    idx[col & (h >= 15) & (h < 45)] = 4
    idx[col & (h >= 15) & (h < 45) & (v < 0.6)] = 5
    idx[col & (h >= 45) & (h < 70)] = 6
    idx[col & (h >= 45) & (h < 70) & (v < 0.5)] = 5
    idx[col & (h >= 70) & (h < 180)] = 7
    idx[col & (h >= 180) & (h < 260)] = 8
    idx[col & (h >= 260) & (h < 300)] = 9
    idx[col & (h >= 300) & (h < 345)] = 10
    return _VOCAB[idx]


