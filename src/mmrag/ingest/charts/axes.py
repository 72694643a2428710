"""The value axis (numeric labels that read as a linear scale) and the plot area next
to it (bounded by its axis line where one is drawn)."""

from __future__ import annotations

from itertools import pairwise
from typing import cast

import numpy as np

from .parts import Axis, Plot, Token
from .pixels import INK, longest_run


def _fit(tokens: list[Token]) -> tuple[float, float, float] | None:
    ys = np.array([t.cy for t in tokens])
    vs = np.array([t.value for t in tokens], dtype=float)
    if len(set(vs.tolist())) < len(vs) or np.ptp(ys) <= 0:
        return None
    a, b = np.polyfit(ys, vs, 1)
    resid = np.abs(a * ys + b - vs)
    return float(a), float(b), float(resid.max() / max(np.ptp(vs), 1e-9))


def _axis_from(group: list[Token]) -> Axis | None:
    group = sorted(group, key=lambda t: t.cy)
    h = float(np.median([t.h for t in group]))
    if any(b.cy - a.cy < 0.8 * h for a, b in pairwise(group)):
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
    values = cast(list[float], [t.value for t in group])  # groups hold numeric labels only
    # ordered labels only: value changes monotonically down the column
    if not all((q - p) * fit[0] > 0 for p, q in pairwise(values)):
        return None
    step = float(np.median(np.diff([t.cy for t in group])))
    affixes = [t.affix for t in group]
    affix = max(set(affixes), key=affixes.count)
    return Axis(group, fit[0], fit[1], step, float(min(values)), float(max(values)), affix)


def value_axes(tokens: list[Token]) -> list[Axis]:
    """Columns of numeric labels that read as a linear scale, one per panel."""
    nums = [t for t in tokens if t.value is not None]
    if len(nums) < 2:
        return []
    axes: list[Axis] = []
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
                turns = len(run) >= 2 and (u.value - run[-1].value) * (  # type: ignore[operator]
                    run[1].value - run[0].value) <= 0  # type: ignore[operator]
                if gap > 2.2 * typical or turns:  # the next panel down
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


def plot_area(ink: np.ndarray, axis: Axis, tokens: list[Token],
              others: list[Axis]) -> Plot | None:
    """``ink``: darkness (255 - brightest channel) per pixel. An axis line counts where
    two neighbouring columns (rows) together are dark: a thin line in a downscaled image
    is a grey smear over two."""
    H, W = ink.shape
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
    # a tick mark OCR read into a label ("50-") puts the label's edge on the axis line
    for x in range(max(0, left - int(h)), min(right, left + int(4 * h) + 2)):
        s, e = longest_run(ink[y0:y1, x] + ink[y0:y1, min(x + 1, W - 1)] >= INK)
        if e - s >= 0.9 * span and y0 + s <= axis.top + 2 and y0 + e >= axis.bottom - 2:
            spine = (x, y0 + s, y0 + e)
            break
    if spine is not None:
        x, top, bottom = spine
        rows = ink[max(0, bottom - 2), x:right] + ink[min(bottom - 1, H - 1), x:right]
        s, e = longest_run(rows >= INK)
        if e - s >= 0.3 * (right - x):
            right = x + e
        plot = Plot(x + 2, top, right, bottom - 1, True)
    else:
        upper = axis.top - 1.5 * axis.step_px
        lower = axis.bottom + 1.5 * axis.step_px
        for t in tokens:  # text rows just outside the labelled range bound the plot
            if t in axis.tokens or t.x1 < left or t.x0 > right:
                continue
            if t.y0 > axis.bottom + 0.6 * h:
                lower = min(lower, t.y0 - 1)
            elif t.y1 < axis.top - 0.6 * h:
                upper = max(upper, t.y1 + 1)
        plot = Plot(left + int(h), int(max(0, upper)), right, int(min(H, lower)), False)
    if plot.bottom - plot.top < 2 * axis.step_px or plot.right - plot.left < 3 * h:
        return None
    return plot


def tick_marks(ink: np.ndarray, plot: Plot, h: float) -> list[float]:
    """x of the short tick marks hanging under the plot's bottom axis line."""
    H = ink.shape[0]
    band = ink[min(plot.bottom + 2, H - 1):min(plot.bottom + 4, H),
                max(0, plot.left - 2):plot.right + 1].astype(np.int16)
    if band.size == 0:
        return []
    # a 2-D array's column reduction is an array (numpy's stubs allow a scalar too)
    cols = cast(np.ndarray, (band >= INK).all(axis=0) if h < 12 else
                ((band[:, :-1] + band[:, 1:]) >= INK).all(axis=0))
    out, run = [], []
    for i, on in enumerate([*cols, False]):
        if on:
            run.append(i)
        elif run:
            if len(run) <= max(3, h / 4):
                out.append(max(0, plot.left - 2) + float(np.mean(run)))
            run = []
    return out
