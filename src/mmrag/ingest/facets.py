"""What a picture carries that no text layer says, derived without a vision model.

Offline there is no captioner, so a page or image is findable only by the words on it.
These cheap readings of the pixels (plus the OCR or text-layer lines already read off
them, with their boxes) add what a searcher asks about pictures:

- **charts**: bar and line charts read back into a table and sentences (:mod:`.charts`);
- **kind facets**: ``chart`` (with ``bar``/``line``), ``table`` (a grid of ruling lines),
  ``formula`` (math in the text), ``picture`` (many colours, little text: a photo);
- **colours**: the main non-background colours, named in a small vocabulary;
- **orientation**: portrait or landscape, and text turned by a quarter turn (a page
  scanned sideways), which tells apart pages whose words are all the same.

They go into the item's text as one marked line (so BM25 and the text embedder see them)
and into metadata as lists and strings (so filters select them: ``{"facets": "chart"}``,
``{"colors": "red"}``, ``{"orientation": "landscape"}``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .charts import read_charts
from .colors import color_name, color_names

__all__ = ["Facets", "color_name", "describe", "dominant_colors", "orientation"]

log = logging.getLogger(__name__)

_THUMB = 96  # side of the thumbnail colours are counted on
_GRID_SIDE = 800  # longest side the ruling-line test looks at
_MATH_CHARS = set("∑∫√∂∞≈≠≤≥±×÷∏∇∆πθλμσ")
_EQUATION = re.compile(r"[A-Za-z0-9)\]}]\s*(?:=|≤|≥|≈|≠|<|>)\s*[-A-Za-z0-9(\\√∑∫]")
_WORD = re.compile(r"[A-Za-z]{4,}")
_ACHROMATIC = {"black", "grey", "white"}


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((_THUMB, _THUMB), Image.Resampling.BILINEAR),
                      dtype=np.float32).reshape(-1, 3)


def dominant_colors(img: Image.Image, limit: int = 3, min_share: float = 0.04) -> list[str]:
    """The main colour words, background (the commonest colour along the border) left
    out, each covering at least ``min_share`` of the remaining pixels."""
    px = _thumb(img)
    names = color_names(px)
    grid = names.reshape(_THUMB, _THUMB)
    # pale tints over a light ground are the anti-aliased edges of thin lines and text
    # (a red line's fringe reads pink): they do not count towards any colour
    mx, mn = px.max(axis=1), px.min(axis=1)
    sat = (mx - mn) / np.maximum(mx, 1.0)
    names = names[~((sat >= 0.18) & (sat < 0.45) & (mx > 190))]
    border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])
    words, counts = np.unique(border, return_counts=True)
    background = words[int(np.argmax(counts))]
    rest = names[names != background]
    if len(rest) < 0.01 * len(names):
        return [str(background)]
    words, counts = np.unique(rest, return_counts=True)
    order = np.argsort(-counts)
    return [str(words[i]) for i in order[:limit] if counts[i] >= min_share * len(rest)]


def orientation(img: Image.Image) -> str:
    w, h = img.size
    if w > 1.1 * h:
        return "landscape"
    if h > 1.1 * w:
        return "portrait"
    return "square"


def _is_picture(img: Image.Image, lines: Sequence[Any], size: tuple[int, int]) -> bool:
    """A photo has many colours spread over the frame and little of it is text: count the
    4-bit colour bins holding a real share of the pixels (``size``: the lines' frame)."""
    px = _thumb(img).astype(np.int32) >> 4
    bins = px[:, 0] * 256 + px[:, 1] * 16 + px[:, 2]
    counts = np.bincount(bins, minlength=4096)
    busy = int((counts >= 0.002 * len(bins)).sum())
    w, h = size
    text_area = sum(max(0.0, (ln.bbox[2] - ln.bbox[0]) * (ln.bbox[3] - ln.bbox[1]))
                    for ln in lines) / max(w * h, 1)
    return busy >= 40 and text_area < 0.15


def _working_copy(img: Image.Image, side: int = _GRID_SIDE) -> Image.Image:
    """An RGB copy at most ``side`` pixels long, shrunk by an integer box filter (fast on
    a 10k-pixel scan) so every reading below works on the same small image."""
    factor = -(-max(img.size) // side)
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    return rgb.reduce(factor) if factor > 1 else rgb


def _has_grid(img: Image.Image) -> bool:
    """A table's ruling: at least three long horizontal and two long vertical dark lines."""
    dark = np.asarray(img.convert("L")) < 140
    return _lines(dark, axis=1) >= 3 and _lines(dark, axis=0) >= 2


def _lines(dark: np.ndarray, axis: int, share: float = 0.5) -> int:
    """Separate runs of rows (axis=1) or columns (axis=0) that are mostly dark."""
    full = dark.mean(axis=axis) >= share
    return int(np.count_nonzero(full[1:] & ~full[:-1]) + int(full[0])) if full.size else 0


def _has_formula(lines: Sequence[Any]) -> bool:
    """Two or more lines that read as maths (math symbols, or an equation with few
    words), making up a real share of the text: one "x = 3" in prose is not a formula."""
    maths = 0
    for ln in lines:
        text = ln.text
        if sum(c in _MATH_CHARS for c in text) >= 2 or (
                _EQUATION.search(text) and len(_WORD.findall(text)) <= 2):
            maths += 1
    return maths >= 2 and maths >= 0.1 * len(lines)


@dataclass(slots=True)
class Facets:
    kinds: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    orientation: str = ""
    rotation: int = 0
    charts: list[Any] = field(default_factory=list)

    def line(self) -> str:
        """The marked facet line (kinds, colours, orientation) appended to the item's text;
        chart readings become items of their own (see ``Ingestion._facets``)."""
        parts = []
        if self.kinds:
            parts.append("facets: " + ", ".join(self.kinds))
        if self.colors:
            parts.append("colours: " + ", ".join(self.colors))
        if self.orientation:
            turned = f", text rotated {self.rotation} degrees" if self.rotation else ""
            parts.append(f"orientation: {self.orientation}{turned}")
        return "; ".join(parts)

    def text(self) -> str:
        """The facet line and every chart's reading, as one text."""
        return "\n".join([self.line(), *(c.text() for c in self.charts)]).strip()

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"facets": self.kinds, "colors": self.colors,
                                "orientation": self.orientation}
        if self.rotation:
            meta["rotated"] = self.rotation
        if self.charts:
            meta["charts"] = [c.to_dict() for c in self.charts]
        return meta


def describe(img: Image.Image, lines: Sequence[Any] = (), rotation: int = 0) -> Facets:
    """All facets of one image; ``lines`` are its OCR or text-layer lines (``text`` and
    ``bbox`` in ``img`` pixels), ``rotation`` the quarter turn OCR found (degrees)."""
    out = Facets(orientation=orientation(img), rotation=int(rotation) % 360)
    try:
        out.charts = read_charts(img, lines) if lines else []
    except Exception as exc:  # a chart reading must never cost the image its item
        log.debug("chart reading failed: %s", exc)
        out.charts = []
    small = _working_copy(img)
    if out.charts:
        out.kinds.append("chart")
        out.kinds += sorted({c.kind for c in out.charts})
    elif _has_grid(small):
        out.kinds.append("table")
    if _has_formula(lines):
        out.kinds.append("formula")
    if not out.charts and _is_picture(small, lines, img.size):
        out.kinds.append("picture")
    series = [sr.color for c in out.charts for sr in c.series if sr.color]
    colors = dominant_colors(small)
    if "picture" not in out.kinds:  # black text on white paper says nothing
        colors = [c for c in colors if c not in _ACHROMATIC]
    out.colors = list(dict.fromkeys([*series, *colors]))  # series first
    return out
