"""Bars: filled rectangles of one colour sharing a baseline, grouped into categories."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from ..chart_text import Chart, Series
from .labels import assign, below_label, label_row, legend_names, slot_bounds, split_words
from .parts import Axis, Bar, Plot, Token
from .pixels import distance, rgb_name


def _boxes(mask: np.ndarray, colour: int, width: int) -> tuple[list[Bar], int]:
    """Filled rectangles among the connected parts of ``mask``, and the parts' count."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0 or n > 5000:
        return [], n
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    out = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if bw < 3 or bh < 2 or bw > 0.5 * width or sizes[i] < 0.85 * bw * bh:
            continue
        out.append(Bar(colour, sl[1].start, sl[1].stop, sl[0].start, sl[0].stop))
    return out, n


def _rectangles(region: np.ndarray, colours: list[np.ndarray]) -> list[Bar]:
    """Filled rectangles of each palette colour; every pixel goes to its nearest palette
    colour, so two close greys (adjacent bars) stay apart. A colour covering much of
    the plot without forming any is tried again with thin gaps closed: hatched bars."""
    from scipy import ndimage

    dists = np.stack([distance(region, c) for c in colours])
    nearest, best = dists.argmin(axis=0), dists.min(axis=0)
    rects = []
    h, w = region.shape[:2]
    for ci in range(len(colours)):
        mask = (nearest == ci) & (best <= 20)
        found, parts = _boxes(mask, ci, w)
        if not found and parts >= 10 and mask.sum() >= 0.01 * h * w:
            found, _ = _boxes(ndimage.binary_closing(mask, np.ones((5, 5), bool)), ci, w)
        rects += found
    return rects


def find_bars(region: np.ndarray, colours: list[np.ndarray]) -> tuple[list[Bar], int] | None:
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
            if lap >= 0.8 * (b.x1 - b.x0) and r.y1 - r.y0 >= 4 and (
                    abs(r.y1 - far) <= 2 or abs(r.y0 - far) <= 2):
                return None
    widths = np.array([b.x1 - b.x0 for b in bars], dtype=float)
    if widths.max() > 1.6 * widths.min():
        return None
    # the dashes of a dashed line share both ends; bars differ in length and some rise
    # well above their baseline, which sits on the plot's edge (or at zero, checked later)
    lengths = np.array([b.y1 - b.y0 for b in bars], dtype=float)
    if np.ptp(lengths) <= 2 or lengths.max() < 0.08 * region.shape[0]:
        return None
    bars.sort(key=lambda b: b.x0)
    if any(q.x0 < p.x1 - 1 for p, q in pairwise(bars)):
        return None  # overlapping: not side-by-side bars
    return bars, base


def _touching_groups(bars: list[Bar]) -> list[tuple[float, list[Bar]]]:
    """Categories as runs of touching bars of distinct colours (a colour repeating or a
    gap starts the next), each with its centre."""
    groups: list[list[Bar]] = []
    width = float(np.median([b.x1 - b.x0 for b in bars]))
    for b in bars:
        g = groups[-1] if groups else None
        if g is None or b.colour in {x.colour for x in g} or b.x0 - g[-1].x1 > 0.6 * width:
            groups.append([b])
        else:
            g.append(b)
    return [((g[0].x0 + g[-1].x1) / 2, g) for g in groups]


def _periodic_groups(bars: list[Bar], labels: Sequence[float] = ()
                     ) -> list[tuple[float, list[Bar]]] | None:
    """Categories from the period at which each colour repeats: robust to a series
    missing from a group (a hatched or too pale bar), which a gap cannot tell from the
    space between groups. Groups start in the widest gap between bars; where gaps tie
    (a missing bar is as wide as the space between groups), the category ``labels``
    (their x centres) decide: they sit under group centres. None when the bars do not
    repeat that regularly."""
    centre = {id(b): (b.x0 + b.x1) / 2 for b in bars}
    by_colour: dict[int, list[float]] = {}
    for b in bars:
        by_colour.setdefault(b.colour, []).append(centre[id(b)])
    diffs = [q - p for xs in by_colour.values() for p, q in pairwise(sorted(xs))]
    if len(by_colour) < 2 or not diffs:
        return None  # one series (every bar its own category) or one group
    period = float(np.median(diffs))
    if period <= 0 or any(abs(d / period - round(d / period)) > 0.15 for d in diffs):
        return None
    low = min(centre.values())
    phases = sorted((c - low) % period for c in centre.values())
    gaps = [(b - a, (a + b) / 2) for a, b in pairwise(phases)]
    gaps.append((phases[0] + period - phases[-1], (phases[-1] + phases[0] + period) / 2))
    widest = max(g for g, _ in gaps)
    starts = [low + mid % period - period for g, mid in gaps if g >= 0.9 * widest]

    def misfit(origin: float) -> float:
        return sum(abs((c - origin) % period - period / 2) for c in labels)

    origin = min(starts, key=misfit) if labels else starts[0]
    groups: dict[int, list[Bar]] = {}
    for b in bars:
        groups.setdefault(int((centre[id(b)] - origin) // period), []).append(b)
    if any(len({b.colour for b in g}) < len(g) for g in groups.values()):
        return None
    return [(origin + (k + 0.5) * period, groups[k]) for k in sorted(groups)]


def on_edge_or_zero(base: int, height: int, axis: Axis, plot: Plot) -> bool:
    """A bar baseline lies on the plot's bottom (top) edge or at the value zero."""
    if base <= 3 or base >= height - 3:
        return True
    return abs(axis.value(plot.top + base)) <= 0.02 * (axis.hi - axis.lo)


def read_bars(arr: np.ndarray, axis: Axis, plot: Plot, tokens: list[Token],
              used: set[int], colours: list[np.ndarray], bars: list[Bar],
              base: int) -> Chart | None:
    """The bar chart told by ``bars`` (region pixels) resting on row ``base``: one
    category per group, one series per colour, values read at the bars' far ends."""
    hanging = sum(abs(b.y0 - base) <= 2 for b in bars) > len(bars) / 2
    below = not hanging
    # the labels sit beyond the bars' baseline, wherever the plot's edge was put
    row = label_row(tokens, plot, below, used, 3 * axis.height, plot.top + base)
    grouped = _periodic_groups(bars, [t.cx - plot.left for t in row]) \
        or _touching_groups(bars)
    groups = [g for _, g in grouped]
    order: list[int] = []
    for g in groups:
        for b in g:
            if b.colour not in order:
                order.append(b.colour)
    if len(order) > 8 or len(groups) > 60:
        return None
    centres = [plot.left + c for c, _ in grouped]
    words = [w for t in row for w in split_words(t)]
    names = assign(words, centres, slot_bounds(centres))
    if sum(1 for n in names if n) < max(1, len(names) // 2):
        names = [n or f"#{i + 1}" for i, n in enumerate(names)]
    series = []
    legends = legend_names(arr,
                            [colours[ci] for ci in order], tokens,
                            used | {id(t) for t in row}, 30, plot)
    for ci, legend in zip(order, legends, strict=True):
        values: list[float | None] = []
        for g in groups:
            bar = next((b for b in g if b.colour == ci), None)
            if bar is None:
                values.append(None)
                continue
            far = bar.y0 if abs(bar.y1 - base) <= 2 else bar.y1 - 1
            values.append(axis.value(plot.top + far))
        series.append(Series(legend, rgb_name(colours[ci]), values))
    chart = Chart("bar", [n or f"#{i + 1}" for i, n in enumerate(names)], series)
    if below:
        chart.category_label = below_label(tokens, row, plot, used)
    return chart
