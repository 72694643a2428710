"""Lines: thin curves of one hue spanning most of the plot, read at the categories."""

from __future__ import annotations

import numpy as np

from ..chart_text import Chart, Series
from .axes import tick_marks
from .labels import (
    assign,
    below_label,
    even_centres,
    label_row,
    legend_names,
    slot_bounds,
    split_alike,
    split_words,
)
from .parts import Axis, Plot, Token
from .pixels import hues, rgb_name


def read_lines(arr: np.ndarray, ink: np.ndarray, axis: Axis, plot: Plot,
               tokens: list[Token], used: set[int], region: np.ndarray
               ) -> Chart | None:
    """The line series of one plot: per hue peak among the coloured pixels, the pixels
    of that hue in parts spanning a good share of the plot, read at each category's x
    (gaps interpolated). None unless a line covers most of its span thinly."""
    from scipy import ndimage

    rh, rw = region.shape[:2]
    hue, chromatic = hues(region)
    if chromatic.sum() < 0.3 * rw:
        return None
    # text inside the plot and the legend swatch left of it do not make a series' hue
    free = np.ones((rh, rw), bool)
    for t in tokens:
        x0, x1 = int(t.x0 - 4 * min(t.h, t.w)) - plot.left, int(t.x1) + 1 - plot.left
        y0, y1 = int(t.y0) - plot.top, int(t.y1) + 1 - plot.top
        free[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = False
    bins = np.bincount((hue[chromatic & free] // 10).astype(int) % 36, minlength=36)
    peaks = [i for i in range(36) if bins[i] >= max(20, 0.25 * rw)
             and bins[i] >= bins[(i - 1) % 36] and bins[i] >= bins[(i + 1) % 36]]
    row = label_row(tokens, plot, True, used, 3 * axis.height)
    if not row:
        return None
    words = [w for t in row for w in split_words(t)]
    ticks = tick_marks(ink, plot, axis.height)
    if len(ticks) >= 2:
        centres = ticks
    else:
        words = [p for w in words for p in split_alike(w)]
        centres = even_centres(words)
    names = assign(words, centres, slot_bounds(centres))
    slots = [(c, n) for c, n in zip(centres, names, strict=True) if n]
    if len(slots) < 2:
        return None
    found: list[tuple[np.ndarray, list[float | None]]] = []
    taken: list[float] = []
    for peak in sorted(peaks, key=lambda i: -bins[i])[:6]:
        centre = peak * 10 + 5
        if any(abs((centre - c + 180) % 360 - 180) < 25 for c in taken):
            continue  # the same hue split over two bins
        dist = np.abs((hue - centre + 180) % 360 - 180)
        # text boxes are not cut out here: a line passing under an annotation would
        # break into pieces too short to keep; legend swatches are short anyway
        mask = chromatic & (dist <= 20)
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
        py, px = np.nonzero(mask)
        ys = np.bincount(px, weights=py, minlength=rw) / np.maximum(
            np.bincount(px, minlength=rw), 1)
        values: list[float | None] = []
        for c, _ in slots:
            x = round(c - plot.left)
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
        taken.append(centre)
        found.append((region[mask].mean(axis=0), values))
    if not found:
        return None
    legends = legend_names(arr, [c for c, _ in found], tokens, used | {id(t) for t in row},
                            60, plot)
    series = [Series(name, rgb_name(c), v) for (c, v), name in zip(found, legends, strict=True)]
    chart = Chart("line", [n for _, n in slots], series)
    chart.category_label = below_label(tokens, row, plot, used)
    return chart
