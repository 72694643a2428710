"""The text of a chart: numbers for the value axis, category labels matched to bars or
ticks (words OCR ran together split back), legend entries, titles."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from .parts import Axis, Plot, Token
from .pixels import near

_NUM = re.compile(r"^([-\u2212\u2013+]?)\s*([$\u20ac\u00a3\u00a5]?)\s*"
                  r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+)\s*(%|k|K|M|B|bn)?$")


_TRAILING_TICK = re.compile(r"(?<=\d)\s*[-\u2013\u2014_|]+$")


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def parse_number(text: str) -> tuple[float, tuple[str, str]] | None:
    """``"1,200"`` → 1200.0, ``"−5%"`` → -5.0 with affix ("", "%"); a tick mark OCR read
    as a trailing dash ("50-") is dropped. None for anything that is not one number."""
    m = _NUM.match(_TRAILING_TICK.sub("", text.strip()))
    if not m:
        return None
    sign, cur, digits, suffix = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    value = float(digits.replace(",", ""))
    if sign in ("-", "\u2212", "\u2013"):
        value = -value
    return value, (cur, suffix)


def read_tokens(lines: Sequence[Any], scale: float) -> list[Token]:
    out = []
    for line in lines:
        text = " ".join(str(line.text).split())
        if not text:
            continue
        x0, y0, x1, y1 = (float(v) * scale for v in line.bbox)
        tok = Token(text, x0, y0, x1, y1, float(getattr(line, "confidence", 1.0)))
        parsed = parse_number(text)
        if parsed is not None:
            tok.value, tok.affix = parsed
        out.append(tok)
    return out


def split_words(tok: Token) -> list[Token]:
    """A line's words, each with its share of the box by character offset (a line
    running vertically, as on a turned chart, is kept whole)."""
    if tok.h > tok.w:
        return [tok]
    text = tok.text
    n = max(len(text), 1)
    out = []
    for m in re.finditer(r"\S+", text):
        x0 = tok.x0 + tok.w * m.start() / n
        x1 = tok.x0 + tok.w * m.end() / n
        out.append(Token(m.group(), x0, tok.y0, x1, tok.y1, tok.conf))
    return out


def split_run_together(word: Token, parts: int) -> list[Token] | None:
    """``JanFebMar`` → Jan, Feb, Mar; ``201920202021`` → 2019, 2020, 2021; None when
    the word does not split into ``parts`` alike pieces."""
    pieces = [p for p in _CAMEL.split(word.text) if p]
    if len(pieces) != parts:
        if word.text.isdigit() and parts > 1 and len(word.text) % parts == 0:
            size = len(word.text) // parts
            pieces = [word.text[i:i + size] for i in range(0, len(word.text), size)]
        else:
            return None
    out, pos, n = [], 0, len(word.text)
    for p in pieces:
        x0 = word.x0 + word.w * pos / n
        pos += len(p)
        out.append(Token(p, x0, word.y0, word.x0 + word.w * pos / n, word.y1, word.conf))
    return out


def split_alike(word: Token) -> list[Token]:
    """``FebMarApr`` → Feb, Mar, Apr when every piece is a capitalised word (or a year);
    anything else (``LLaMA``, ``iPhone``) stays whole."""
    pieces = [p for p in _CAMEL.split(word.text) if p]
    if len(pieces) > 1 and all(re.fullmatch(r"[A-Z][a-z]+\.?", p) for p in pieces):
        return split_run_together(word, len(pieces)) or [word]
    if word.text.isdigit() and len(word.text) >= 8 and len(word.text) % 4 == 0:
        years = len(word.text) // 4
        parts = split_run_together(word, years)
        if parts and all(re.fullmatch(r"(?:19|20)\d\d", p.text) for p in parts):
            return parts
    return [word]


def even_centres(words: list[Token]) -> list[float]:
    """Word centres, snapped to an even spacing when they nearly have one: the boxes of
    words OCR ran together are only estimated from character offsets."""
    centres = [w.cx for w in words]
    if len(centres) < 3:
        return centres
    idx = np.arange(len(centres))
    step, start = np.polyfit(idx, centres, 1)
    fitted = start + step * idx
    if step > 0 and np.abs(fitted - centres).max() < 0.3 * step:
        return [float(c) for c in fitted]
    return centres


def label_row(tokens: list[Token], plot: Plot, below: bool, exclude: set[int],
              row_gap: float, edge: float | None = None) -> list[Token]:
    """The first text row beyond ``edge`` (default the plot's bottom, or its top for
    hanging bars): the category labels."""
    if below:
        y = plot.bottom if edge is None else edge
        cands = [t for t in tokens if y - 2 <= t.y0 <= y + row_gap]
    else:
        y = plot.top if edge is None else edge
        cands = [t for t in tokens if y - row_gap <= t.y1 <= y + 2]
    cands = [t for t in cands if id(t) not in exclude and t.cx >= plot.left - 2 * t.h
             and t.cx <= plot.right + 2 * t.h]
    if not cands:
        return []
    first = min(cands, key=lambda t: t.y0) if below else max(cands, key=lambda t: t.y1)
    return sorted([t for t in cands if abs(t.cy - first.cy) <= 0.7 * first.h],
                  key=lambda t: t.x0)


def assign(words: list[Token], centres: list[float], bounds: list[tuple[float, float]]
            ) -> list[str]:
    """Words to slots (by centre within a slot's span); a word spanning several slot
    centres is split back into the words OCR ran together."""
    names: list[list[str]] = [[] for _ in centres]
    for word in words:
        inside = [i for i, c in enumerate(centres) if word.x0 <= c <= word.x1]
        if len(inside) > 1:
            parts = split_run_together(word, len(inside))
            if parts is not None:
                for i, p in zip(inside, parts, strict=True):
                    names[i].append(p.text)
                continue
        best = None
        for i, (lo, hi) in enumerate(bounds):
            if lo <= word.cx <= hi:
                best = i
        if best is not None:
            names[best].append(word.text)
    return [" ".join(n) for n in names]


def slot_bounds(centres: list[float]) -> list[tuple[float, float]]:
    if len(centres) == 1:
        return [(-1e9, 1e9)]
    mids = [(a + b) / 2 for a, b in pairwise(centres)]
    lo = [centres[0] - (mids[0] - centres[0])] + mids
    hi = mids + [centres[-1] + (centres[-1] - mids[-1])]
    return list(zip(lo, hi, strict=True))


def legend_names(arr: np.ndarray, colours: list[np.ndarray], tokens: list[Token],
                 exclude: set[int], tol: float, plot: Plot) -> list[str]:
    """Per series colour, the text with a swatch of that colour just left of it (a legend
    entry), each text used once; "" where none is found. Only level text near the plot
    counts: a rotated axis title beside the next panel's bars is no legend."""
    H = arr.shape[0]
    pw, ph = plot.right - plot.left, plot.bottom - plot.top
    scores: list[tuple[int, int, int]] = []  # (pixels, series, token)
    for ti, t in enumerate(tokens):
        if id(t) in exclude or t.value is not None or len(t.text) < 2 or t.w < t.h:
            continue
        if not (plot.left - 0.3 * pw <= t.cx <= plot.right + 0.3 * pw
                and plot.top - 0.3 * ph <= t.cy <= plot.bottom):
            continue
        x0, x1 = int(max(0, t.x0 - 3 * t.h)), int(max(0, t.x0 - 1))
        y0, y1 = int(max(0, t.y0 + t.h / 4)), int(min(H, t.y1 - t.h / 4))
        if x1 - x0 < 2 or y1 - y0 < 1:
            continue
        window = arr[y0:y1, x0:x1]
        for ci, colour in enumerate(colours):
            n = int(near(window, colour, tol).sum())
            if n >= 4:
                scores.append((n, ci, ti))
    names = [""] * len(colours)
    taken: set[int] = set()
    for _n, ci, ti in sorted(scores, reverse=True):
        if not names[ci] and ti not in taken:
            names[ci] = tokens[ti].text
            taken.add(ti)
    return names


def axis_title(tokens: list[Token], axis: Axis, plot: Plot, exclude: set[int]) -> str:
    """Text left of the value labels beside the plot, running upwards (an axis title;
    level text there is the previous panel's categories or legend)."""
    cands = [t for t in tokens if id(t) not in exclude and t.value is None
             and t.cx <= min(u.x0 for u in axis.tokens) and t.x1 >= axis.tokens[0].x0
             - 6 * axis.height and plot.top - axis.step_px <= t.cy <= plot.bottom + axis.step_px
             and t.conf >= 0.8 and t.h > 1.2 * t.w]
    # text running upwards reads from the bottom
    return " ".join(t.text for t in sorted(cands, key=lambda t: -t.cy))


def chart_title(tokens: list[Token], plot: Plot, exclude: set[int], others: list[Plot]) -> str:
    """The tallest level text just above the plot; text inside or just under another
    panel (its annotations, tick labels and axis title) is not this one's title."""
    def elsewhere(t: Token) -> bool:
        return any(o.left <= t.cx <= o.right and o.top <= t.y0 and t.y1 <= o.bottom + 5 * t.h
                   for o in others)

    above = [t for t in tokens if id(t) not in exclude and t.value is None
             and t.y1 <= plot.top + 2 and plot.top - t.y1 <= 3 * t.h and t.w >= t.h
             and plot.left <= t.cx <= plot.right and t.conf >= 0.8 and not elsewhere(t)]
    if not above:
        return ""
    return max(above, key=lambda t: (t.h, -abs(t.cx - (plot.left + plot.right) / 2))).text


def below_label(tokens: list[Token], row: list[Token], plot: Plot,
                exclude: set[int]) -> str:
    """The level text right under the category labels (the category axis title)."""
    if not row:
        return ""
    bottom = max(t.y1 for t in row)
    h = float(np.median([t.h for t in row]))
    under = [t for t in tokens if id(t) not in exclude and t not in row and t.w >= t.h
             and bottom - 2 <= t.y0 <= bottom + 2 * h and plot.left <= t.cx <= plot.right
             and t.conf >= 0.8]
    if not under:
        return ""
    first = min(under, key=lambda t: t.y0)
    same_row = [t for t in under if abs(t.cy - first.cy) <= 0.7 * first.h]
    # several texts there are a second line of category labels ("(EM)"), not a title
    return first.text if len(same_row) == 1 else ""
