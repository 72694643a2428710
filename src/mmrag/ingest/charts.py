"""Bar and line charts read back into numbers, from the pixels plus the text read off them.

    charts = read_charts(image, ocr.lines)     # [] unless it is confidently a chart
    charts[0].table()                          # Markdown: | Month | Sales | ...
    charts[0].sentences()                      # ["Sales peaks in June (42).", ...]

No model is involved: the OCR (or text-layer) lines already carry the tick labels with
their boxes, and a chart's geometry does the rest.

1. **Value axis.** Numeric labels stacked in a column (right edges or centres aligned,
   one panel per run without a big gap) whose values fit ``value = a·y + b`` with a
   small residual: at least three labels, or two and a drawn axis line beside them.
2. **Plot area.** The axis line next to the labels (a long dark run) bounds it; without
   one, a step and a half beyond the outer labels, cut at the text rows around it. The
   next panel's labels end it on the right.
3. **Bars** are filled rectangles of one colour sharing a baseline (both ends of every
   rectangle are candidates, so bars below zero count too); a bar's value is read at its
   far end. Touching bars of different colours form a group, one per category.
   **Lines** are thin curves of one hue spanning most of the plot, read column by column
   at the category positions (the tick marks under the axis, else the labels).
4. **Categories** are the text row beyond the baseline, split into words and matched
   to bars or ticks by position (words OCR ran together, "JanFebMar", are split back).
   Series names come from legend entries (text with a swatch of the series colour
   just left of it), else the axis title.

Horizontal bar charts are read the same way on the transposed image. Anything unsure
(a fit that is not linear, bars of odd widths, stacked bars, a line that covers too little
of the plot) gives no chart rather than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .chart_text import Chart, Series, category_unit

__all__ = ["Chart", "Series", "read_charts"]

MAX_SIDE = 1600  # pixels: larger images are read downscaled (the labels stay legible)
_DARK = 110  # brightest channel of an axis line
_NUM = re.compile(r"^([-\u2212\u2013+]?)\s*([$\u20ac\u00a3\u00a5]?)\s*"
                  r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+)\s*(%|k|K|M|B|bn)?$")
_TRAILING_TICK = re.compile(r"(?<=\d)\s*[-\u2013\u2014_|]+$")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


@dataclass(slots=True)
class _Token:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    conf: float = 1.0
    value: float | None = None
    affix: tuple[str, str] = ("", "")

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def h(self) -> float:
        return max(self.y1 - self.y0, 1.0)

    @property
    def w(self) -> float:
        return max(self.x1 - self.x0, 1.0)


@dataclass(slots=True)
class _Axis:
    tokens: list[_Token]
    a: float  # value = a * y + b (y in pixels)
    b: float
    step_px: float
    lo: float
    hi: float
    affix: tuple[str, str]

    def value(self, y: float) -> float:
        return self.a * y + self.b

    @property
    def left(self) -> float:
        return max(t.x1 for t in self.tokens)

    @property
    def top(self) -> float:
        return min(t.cy for t in self.tokens)

    @property
    def bottom(self) -> float:
        return max(t.cy for t in self.tokens)

    @property
    def height(self) -> float:
        return float(np.median([t.h for t in self.tokens]))


@dataclass(slots=True)
class _Plot:
    left: int
    top: int
    right: int
    bottom: int
    spine: bool  # an axis line was found next to the labels
    ticks: list[float] = field(default_factory=list)  # x of the tick marks under it


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


def _tokens(lines: Sequence[Any], scale: float) -> list[_Token]:
    out = []
    for line in lines:
        text = " ".join(str(line.text).split())
        if not text:
            continue
        x0, y0, x1, y1 = (float(v) * scale for v in line.bbox)
        tok = _Token(text, x0, y0, x1, y1, float(getattr(line, "confidence", 1.0)))
        parsed = parse_number(text)
        if parsed is not None:
            tok.value, tok.affix = parsed
        out.append(tok)
    return out


def _words(tok: _Token) -> list[_Token]:
    """A line's words, each with its share of the box by character offset."""
    text = tok.text
    n = max(len(text), 1)
    out = []
    for m in re.finditer(r"\S+", text):
        x0 = tok.x0 + tok.w * m.start() / n
        x1 = tok.x0 + tok.w * m.end() / n
        out.append(_Token(m.group(), x0, tok.y0, x1, tok.y1, tok.conf))
    return out


def _split_run_together(word: _Token, parts: int) -> list[_Token] | None:
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
        out.append(_Token(p, x0, word.y0, word.x0 + word.w * pos / n, word.y1, word.conf))
    return out


# --- value axis ---------------------------------------------------------------------------

def _fit(tokens: list[_Token]) -> tuple[float, float, float] | None:
    ys = np.array([t.cy for t in tokens])
    vs = np.array([t.value for t in tokens], dtype=float)
    if len(set(vs.tolist())) < len(vs) or np.ptp(ys) <= 0:
        return None
    a, b = np.polyfit(ys, vs, 1)
    resid = np.abs(a * ys + b - vs)
    return float(a), float(b), float(resid.max() / max(np.ptp(vs), 1e-9))


def _axis_from(group: list[_Token]) -> _Axis | None:
    group = sorted(group, key=lambda t: t.cy)
    h = float(np.median([t.h for t in group]))
    if any(b.cy - a.cy < 0.8 * h for a, b in zip(group, group[1:], strict=False)):
        return None  # two labels on one row: not a stacked column
    fit = _fit(group)
    while fit is not None and fit[2] > 0.02 and len(group) >= 4:
        a, b, _ = fit  # one misread label: drop the worst and try again, once
        worst = max(range(len(group)), key=lambda i: abs(a * group[i].cy + b
                                                         - (group[i].value or 0.0)))
        group = group[:worst] + group[worst + 1:]
        fit = _fit(group)
        if fit is not None and fit[2] > 0.02:
            return None
    if fit is None or fit[2] > 0.02 or fit[0] == 0:
        return None
    values = [t.value for t in group]
    # ordered labels only: value changes monotonically down the column
    if not all((q - p) * fit[0] > 0 for p, q in zip(values, values[1:], strict=False)):  # type: ignore[operator]
        return None
    step = float(np.median(np.diff([t.cy for t in group])))
    affixes = [t.affix for t in group]
    affix = max(set(affixes), key=affixes.count)
    return _Axis(group, fit[0], fit[1], step, float(min(values)), float(max(values)),  # type: ignore[type-var]
                 affix)


def _value_axes(tokens: list[_Token]) -> list[_Axis]:
    """Columns of numeric labels that read as a linear scale, one per panel."""
    nums = [t for t in tokens if t.value is not None]
    if len(nums) < 2:
        return []
    axes: list[_Axis] = []
    used: set[int] = set()
    for key in (lambda t: t.x1, lambda t: t.cx):
        for t in sorted(nums, key=key):
            if id(t) in used:
                continue
            tol = 0.8 * t.h
            column = [u for u in nums if id(u) not in used and abs(key(u) - key(t)) <= tol]
            column.sort(key=lambda u: u.cy)
            if len(column) < 2:
                continue
            gaps = np.diff([u.cy for u in column])
            typical = float(np.median(gaps))
            runs, run = [], [column[0]]
            for u, gap in zip(column[1:], gaps, strict=True):
                if gap > 2.2 * typical:  # the next panel down
                    runs.append(run)
                    run = []
                run.append(u)
            runs.append(run)
            for run in runs:
                axis = _axis_from(run) if len(run) >= 2 else None
                if axis is not None:
                    axes.append(axis)
                    used.update(id(u) for u in axis.tokens)
    return axes


# --- plot area ------------------------------------------------------------------------------

def _longest_run(line: np.ndarray) -> tuple[int, int]:
    """Start and end (exclusive) of the longest run of True in a 1-D bool array."""
    if not line.any():
        return 0, 0
    padded = np.concatenate(([False], line, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])


def _plot_area(dark: np.ndarray, axis: _Axis, tokens: list[_Token],
               others: list[_Axis]) -> _Plot | None:
    H, W = dark.shape
    h = axis.height
    left = int(axis.left) + 1
    right = W
    for other in others:  # the next panel's labels end this one
        if other is not axis and other.tokens[0].x0 > left and \
                min(other.bottom, axis.bottom) >= max(other.top, axis.top) - 2 * axis.step_px:
            right = min(right, int(min(t.x0 for t in other.tokens)) - 1)
    if right - left < 4 * h:
        return None
    y0 = int(max(0, axis.top - 3 * axis.step_px))
    y1 = int(min(H, axis.bottom + 3 * axis.step_px))
    span = axis.bottom - axis.top
    spine = None
    for x in range(left, min(right, left + int(4 * h) + 2)):
        s, e = _longest_run(dark[y0:y1, x])
        if e - s >= 0.9 * span and y0 + s <= axis.top + 2 and y0 + e >= axis.bottom - 2:
            spine = (x, y0 + s, y0 + e)
            break
    if spine is not None:
        x, top, bottom = spine
        s, e = _longest_run(dark[min(bottom - 1, H - 1), x:right])
        if e - s >= 0.3 * (right - x):
            right = x + e
        plot = _Plot(x + 2, top, right, bottom - 1, True)
    else:
        top = axis.top - 1.5 * axis.step_px
        bottom = axis.bottom + 1.5 * axis.step_px
        for t in tokens:  # text rows just outside the labelled range bound the plot
            if t in axis.tokens or t.x1 < left or t.x0 > right:
                continue
            if t.y0 > axis.bottom + 0.3 * axis.step_px:
                bottom = min(bottom, t.y0 - 1)
            elif t.y1 < axis.top - 0.3 * axis.step_px:
                top = max(top, t.y1 + 1)
        plot = _Plot(left + int(h), int(max(0, top)), right, int(min(H, bottom)), False)
    if plot.bottom - plot.top < 2 * axis.step_px or plot.right - plot.left < 3 * h:
        return None
    return plot


def _ticks(dark: np.ndarray, plot: _Plot, h: float) -> list[float]:
    """x of the short tick marks hanging under the plot's bottom axis line."""
    H = dark.shape[0]
    band = dark[min(plot.bottom + 3, H - 1):min(plot.bottom + 3 + max(2, int(h / 3)), H),
                plot.left - 2:plot.right + 1]
    if band.size == 0:
        return []
    cols = band.all(axis=0) if band.shape[0] > 1 else band[0]
    out, run = [], []
    for i, on in enumerate(cols):
        if on:
            run.append(i)
        elif run:
            if len(run) <= max(3, h / 4):
                out.append(plot.left - 2 + float(np.mean(run)))
            run = []
    return out


# --- colour series ----------------------------------------------------------------------

def _palette(region: np.ndarray, min_share: float = 0.004, limit: int = 10
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The background colour and the other frequent colours of ``region`` (4-bit bins,
    each returned as the mean colour of its pixels, near-duplicates merged)."""
    flat = region.reshape(-1, 3)
    keys = (flat[:, 0] >> 4).astype(np.int32) << 8 | (flat[:, 1] >> 4).astype(np.int32) << 4 \
        | (flat[:, 2] >> 4).astype(np.int32)
    counts = np.bincount(keys, minlength=4096)
    order = np.argsort(counts)[::-1]
    bg_key = int(order[0])
    background = flat[keys == bg_key].mean(axis=0)
    colours: list[np.ndarray] = []
    for key in order[1:limit + 1]:
        if counts[key] < max(24, min_share * len(flat)):
            break
        mean = flat[keys == key].mean(axis=0)
        if np.abs(mean - background).max() < 40:
            continue
        if any(np.abs(mean - c).max() < 24 for c in colours):
            continue
        colours.append(mean)
    return background, colours


def _near(region: np.ndarray, colour: np.ndarray, tol: float) -> np.ndarray:
    return np.abs(region.astype(np.int16) - colour.astype(np.int16)).max(axis=2) <= tol


@dataclass(slots=True)
class _Bar:
    colour: int  # index into the palette
    x0: int
    x1: int
    y0: int
    y1: int


def _rectangles(region: np.ndarray, colours: list[np.ndarray]) -> list[_Bar]:
    from scipy import ndimage

    rects = []
    h, w = region.shape[:2]
    for ci, colour in enumerate(colours):
        mask = _near(region, colour, 24)
        labels, n = ndimage.label(mask)
        if n == 0 or n > 5000:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            if bw < 3 or bh < 2 or bw > 0.5 * w or sizes[i] < 0.85 * bw * bh:
                continue
            rects.append(_Bar(ci, sl[1].start, sl[1].stop, sl[0].start, sl[0].stop))
    return rects


def _bars(region: np.ndarray, colours: list[np.ndarray]) -> tuple[list[_Bar], int] | None:
    """Bars sharing a baseline, and that baseline (row in ``region``), or None."""
    rects = _rectangles(region, colours)
    if len(rects) < 2:
        return None
    best, base = 0, -1
    for y in sorted({r.y1 for r in rects} | {r.y0 for r in rects}):
        n = sum(1 for r in rects if abs(r.y1 - y) <= 2 or abs(r.y0 - y) <= 2)
        if n > best:
            best, base = n, y
    bars = [r for r in rects if abs(r.y1 - base) <= 2 or abs(r.y0 - base) <= 2]
    if len(bars) < 2:
        return None
    for r in rects:  # a segment resting on a bar's far end: stacked bars, not read
        if r in bars:
            continue
        for b in bars:
            lap = min(r.x1, b.x1) - max(r.x0, b.x0)
            far = b.y0 if abs(b.y1 - base) <= 2 else b.y1
            if lap >= 0.8 * (b.x1 - b.x0) and (abs(r.y1 - far) <= 2 or abs(r.y0 - far) <= 2):
                return None
    widths = np.array([b.x1 - b.x0 for b in bars], dtype=float)
    if widths.max() > 1.6 * widths.min():
        return None
    bars.sort(key=lambda b: b.x0)
    if any(q.x0 < p.x1 - 1 for p, q in zip(bars, bars[1:], strict=False)):
        return None  # overlapping: not side-by-side bars
    return bars, base


# --- categories -----------------------------------------------------------------------------

def _label_row(tokens: list[_Token], plot: _Plot, below: bool, exclude: set[int],
               row_gap: float) -> list[_Token]:
    """The first text row outside the plot (below, or above for hanging bars)."""
    if below:
        cands = [t for t in tokens if t.y0 >= plot.bottom - 2 and t.y0 <= plot.bottom + row_gap]
    else:
        cands = [t for t in tokens if t.y1 <= plot.top + 2 and t.y1 >= plot.top - row_gap]
    cands = [t for t in cands if id(t) not in exclude and t.cx >= plot.left - 2 * t.h
             and t.cx <= plot.right + 2 * t.h]
    if not cands:
        return []
    first = min(cands, key=lambda t: t.y0) if below else max(cands, key=lambda t: t.y1)
    return sorted([t for t in cands if abs(t.cy - first.cy) <= 0.7 * first.h],
                  key=lambda t: t.x0)


def _assign(words: list[_Token], centres: list[float], bounds: list[tuple[float, float]]
            ) -> list[str]:
    """Words to slots (by centre within a slot's span); a word spanning several slot
    centres is split back into the words OCR ran together."""
    names: list[list[str]] = [[] for _ in centres]
    for word in words:
        inside = [i for i, c in enumerate(centres) if word.x0 <= c <= word.x1]
        if len(inside) > 1:
            parts = _split_run_together(word, len(inside))
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


def _slot_bounds(centres: list[float]) -> list[tuple[float, float]]:
    if len(centres) == 1:
        return [(-1e9, 1e9)]
    mids = [(a + b) / 2 for a, b in zip(centres, centres[1:], strict=False)]
    lo = [centres[0] - (mids[0] - centres[0])] + mids
    hi = mids + [centres[-1] + (centres[-1] - mids[-1])]
    return list(zip(lo, hi, strict=True))


# --- names ----------------------------------------------------------------------------------

def _legend_name(arr: np.ndarray, colour: np.ndarray, tokens: list[_Token],
                 exclude: set[int], tol: float) -> _Token | None:
    """The text with a swatch of ``colour`` just left of it (a legend entry)."""
    H, W = arr.shape[:2]
    best: tuple[int, _Token] | None = None
    for t in tokens:
        if id(t) in exclude or t.value is not None or len(t.text) < 2:
            continue
        x0, x1 = int(max(0, t.x0 - 4 * t.h)), int(max(0, t.x0 - 1))
        y0, y1 = int(max(0, t.y0)), int(min(H, t.y1))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        n = int(_near(arr[y0:y1, x0:x1], colour, tol).sum())
        if n >= 4 and (best is None or n > best[0]):
            best = (n, t)
    return best[1] if best else None


def _axis_title(tokens: list[_Token], axis: _Axis, plot: _Plot, exclude: set[int]) -> str:
    """Text left of the value labels beside the plot (a rotated axis title)."""
    cands = [t for t in tokens if id(t) not in exclude and t.value is None
             and t.x1 <= min(u.x0 for u in axis.tokens) + 2 and t.x1 >= axis.tokens[0].x0
             - 6 * axis.height and plot.top - axis.step_px <= t.cy <= plot.bottom + axis.step_px
             and t.conf >= 0.8]
    cands.sort(key=lambda t: -t.x1)
    return " ".join(t.text for t in sorted(cands, key=lambda t: t.cy)) if cands else ""


def _title(tokens: list[_Token], plot: _Plot, exclude: set[int]) -> str:
    above = [t for t in tokens if id(t) not in exclude and t.value is None
             and t.y1 <= plot.top + 2 and plot.top - t.y1 <= 4 * t.h
             and plot.left <= t.cx <= plot.right and t.conf >= 0.8]
    if not above:
        return ""
    return max(above, key=lambda t: (t.h, -abs(t.cx - (plot.left + plot.right) / 2))).text


# --- reading one panel ----------------------------------------------------------------------

def _rgb_name(colour: np.ndarray) -> str:
    from .facets import color_name

    return color_name(tuple(int(v) for v in colour))  # type: ignore[arg-type]


def _read_panel(arr: np.ndarray, dark: np.ndarray, axis: _Axis, axes: list[_Axis],
                tokens: list[_Token]) -> Chart | None:
    plot = _plot_area(dark, axis, tokens, axes)
    if plot is None:
        return None
    if len(axis.tokens) < 3 and not plot.spine:
        return None  # two labels and no axis line: too little to trust
    region = arr[plot.top:plot.bottom, plot.left:plot.right]
    background, colours = _palette(region)
    if not colours:
        return None
    used = {id(t) for ax in axes for t in ax.tokens}
    found = _bars(region, colours)
    if found is not None:
        chart = _read_bars(arr, axis, plot, tokens, used, colours, *found)
    else:
        chart = _read_lines(arr, dark, axis, plot, tokens, used, region, background)
    if chart is None:
        return None
    chart.value_label = _axis_title(tokens, axis, plot, used)
    chart.title = _title(tokens, plot, used)
    chart.affix = axis.affix
    chart.step = abs(axis.a) * axis.step_px
    chart.unit = category_unit(chart.categories)
    return chart


def _read_bars(arr: np.ndarray, axis: _Axis, plot: _Plot, tokens: list[_Token],
               used: set[int], colours: list[np.ndarray], bars: list[_Bar],
               base: int) -> Chart | None:
    # groups: touching bars of distinct colours (one category); a colour repeats → next
    groups: list[list[_Bar]] = []
    width = float(np.median([b.x1 - b.x0 for b in bars]))
    for b in bars:
        g = groups[-1] if groups else None
        if g is None or b.colour in {x.colour for x in g} or b.x0 - g[-1].x1 > 0.6 * width:
            groups.append([b])
        else:
            g.append(b)
    order: list[int] = []
    for g in groups:
        for b in g:
            if b.colour not in order:
                order.append(b.colour)
    if len(order) > 8 or len(groups) > 60:
        return None
    hanging = sum(abs(b.y0 - base) <= 2 for b in bars) > len(bars) / 2
    below = not hanging
    centres = [plot.left + (g[0].x0 + g[-1].x1) / 2 for g in groups]
    row = _label_row(tokens, plot if not hanging else plot, below, used, 3 * axis.height)
    words = [w for t in row for w in _words(t)]
    names = _assign(words, centres, _slot_bounds(centres))
    if sum(1 for n in names if n) < max(1, len(names) // 2):
        names = [n or f"#{i + 1}" for i, n in enumerate(names)]
    series = []
    exclude = used | {id(t) for t in row}
    for ci in order:
        values: list[float | None] = []
        for g in groups:
            bar = next((b for b in g if b.colour == ci), None)
            if bar is None:
                values.append(None)
                continue
            far = bar.y0 if abs(bar.y1 - base) <= 2 else bar.y1 - 1
            values.append(axis.value(plot.top + far))
        legend = _legend_name(arr, colours[ci], tokens, exclude, 30)
        series.append(Series(legend.text if legend else "", _rgb_name(colours[ci]), values))
    return Chart("bar", [n or f"#{i + 1}" for i, n in enumerate(names)], series)


def _hues(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb = region.astype(np.int16)
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    chroma = mx - mn
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1)
    hue = np.where(mx == r, ((g - b) / safe) % 6,
                   np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    return hue, chroma >= 60


def _read_lines(arr: np.ndarray, dark: np.ndarray, axis: _Axis, plot: _Plot,
                tokens: list[_Token], used: set[int], region: np.ndarray,
                background: np.ndarray) -> Chart | None:
    from scipy import ndimage

    rh, rw = region.shape[:2]
    hue, chromatic = _hues(region)
    if chromatic.sum() < 0.3 * rw:
        return None
    # text inside the plot and the legend swatch left of it are not data
    free = np.ones((rh, rw), bool)
    for t in tokens:
        x0, x1 = int(t.x0 - 4 * t.h) - plot.left, int(t.x1) + 1 - plot.left
        y0, y1 = int(t.y0) - plot.top, int(t.y1) + 1 - plot.top
        free[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = False
    bins = np.bincount((hue[chromatic & free] // 10).astype(int) % 36, minlength=36)
    peaks = [i for i in range(36) if bins[i] >= max(20, 0.25 * rw)
             and bins[i] >= bins[(i - 1) % 36] and bins[i] >= bins[(i + 1) % 36]]
    row = _label_row(tokens, plot, True, used, 3 * axis.height)
    if not row:
        return None
    words = [w for t in row for w in _words(t)]
    ticks = _ticks(dark, plot, axis.height)
    if len(ticks) >= 2:
        centres = ticks
    else:
        centres = [w.cx for w in words]
    names = _assign(words, centres, _slot_bounds(centres))
    slots = [(c, n) for c, n in zip(centres, names, strict=True) if n]
    if len(slots) < 2:
        return None
    series = []
    for peak in peaks[:6]:
        centre = peak * 10 + 5
        dist = np.abs((hue - centre + 180) % 360 - 180)
        mask = chromatic & free & (dist <= 20)
        labels, n = ndimage.label(ndimage.binary_dilation(mask, np.ones((3, 3), bool)))
        if n == 0:
            continue
        keep = np.zeros(n + 1, bool)
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is not None and sl[1].stop - sl[1].start >= 0.15 * rw:
                keep[i] = True
        mask &= keep[labels]
        cols = mask.any(axis=0)
        xs = np.flatnonzero(cols)
        if len(xs) < 0.3 * rw:
            continue
        if cols[xs[0]:xs[-1] + 1].mean() < 0.6:
            continue
        per_col = mask[:, xs].sum(axis=0)
        if np.median(per_col) > max(8, 0.06 * rh):
            continue  # an area or a band, not a line
        rows = np.arange(rh)[:, None]
        ys = (mask * rows).sum(axis=0) / np.maximum(mask.sum(axis=0), 1)
        values: list[float | None] = []
        for c, _ in slots:
            x = int(round(c - plot.left))
            lo, hi = max(0, x - 2), min(rw, x + 3)
            near = [i for i in range(lo, hi) if cols[i]]
            if not near:  # a gap (another series drawn over it): interpolate
                left = xs[xs < x]
                right = xs[xs > x]
                if len(left) == 0 or len(right) == 0 or right[0] - left[-1] > 0.1 * rw:
                    values.append(None)
                    continue
                y = np.interp(x, [left[-1], right[0]], [ys[left[-1]], ys[right[0]]])
            else:
                y = float(np.mean([ys[i] for i in near]))
            values.append(axis.value(plot.top + y))
        if sum(v is not None for v in values) < max(2, len(values) // 2):
            continue
        colour = region[mask].mean(axis=0)
        legend = _legend_name(arr, colour, tokens, used | {id(t) for t in row}, 60)
        series.append(Series(legend.text if legend else "", _rgb_name(colour), values))
    if not series:
        return None
    return Chart("line", [n for _, n in slots], series)


# --- entry point ----------------------------------------------------------------------------

def read_charts(image: Image.Image, lines: Sequence[Any]) -> list[Chart]:
    """The bar and line charts in ``image`` (one per panel), read with the text ``lines``
    (anything with ``text``, ``bbox`` = (x0, y0, x1, y1) in ``image`` pixels and
    optionally ``confidence``: OCR lines, text-layer lines). ``[]`` when unsure."""
    if sum(1 for ln in lines if parse_number(str(ln.text)) is not None) < 2:
        return []  # no scale to read values with: not worth decoding any pixels
    scale = 1.0
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.Resampling.BOX)
    arr = np.asarray(image.convert("RGB"))
    tokens = _tokens(lines, scale)
    charts = _read(arr, tokens)
    if not charts:  # horizontal bars: the same reading on the transposed image
        flipped = [_Token(t.text, t.y0, t.x0, t.y1, t.x1, t.conf, t.value, t.affix)
                   for t in tokens]
        charts = [c for c in _read(arr.transpose(1, 0, 2), flipped) if c.kind == "bar"]
        for c in charts:
            c.horizontal = True
    return charts


def _read(arr: np.ndarray, tokens: list[_Token]) -> list[Chart]:
    axes = _value_axes(tokens)
    if not axes:
        return []
    dark = arr.max(axis=2) <= _DARK
    charts = []
    for axis in sorted(axes, key=lambda a: (round(a.top / max(a.step_px, 1)), a.left)):
        chart = _read_panel(arr, dark, axis, axes, tokens)
        if chart is not None:
            charts.append(chart)
    return charts
