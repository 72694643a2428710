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
3. **Bars** are filled rectangles of one colour sharing a baseline on the plot's edge
   or at zero (both ends of every rectangle are candidates, so bars below zero count
   too); a bar's value is read at its far end. Bars of several colours form one group
   per category, found from the period at which each colour repeats (so a series
   missing from a group, hatched or too pale to see, does not shift the rest).
   **Lines** are thin curves of one hue spanning most of the plot, read column by column
   at the category positions (the tick marks under the axis, else the labels).
4. **Categories** are the text row beyond the baseline, split into words and matched
   to bars or ticks by position (words OCR ran together, "JanFebMar", are split back).
   Series names come from legend entries (text with a swatch of the series colour
   just left of it), else the axis title.

Horizontal bar charts are read the same way on the image turned a quarter clockwise.
Anything unsure (a fit that is not linear, bars of odd widths or all one length, stacked
bars, a line that covers too little of the plot) gives no chart rather than a wrong one.

Modules: :mod:`.parts` (what is read: tokens, axis, plot, bar), :mod:`.pixels` (colour
and darkness helpers), :mod:`.labels` (numbers, categories, legends, titles),
:mod:`.axes` (value axis and plot area), :mod:`.bars`, :mod:`.lines`; the result is a
:class:`~mmrag.ingest.chart_text.Chart`, which tells itself as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..chart_text import Chart, Series, category_unit
from .axes import plot_area, value_axes
from .bars import find_bars, on_edge_or_zero, read_bars
from .labels import axis_title, chart_title, parse_number, read_tokens
from .lines import read_lines
from .parts import Axis, Plot, Token
from .pixels import palette

__all__ = ["Chart", "Series", "parse_number", "read_charts"]


MAX_SIDE = 1600  # pixels: larger images are read downscaled (the labels stay legible)


def read_charts(image: Image.Image, lines: Sequence[Any]) -> list[Chart]:
    """The bar and line charts in ``image`` (one per panel), read with the text ``lines``
    (anything with ``text``, ``bbox`` = (x0, y0, x1, y1) in ``image`` pixels and
    optionally ``confidence``: OCR lines, text-layer lines). ``[]`` when unsure."""
    if sum(1 for ln in lines if parse_number(str(ln.text)) is not None) < 2:
        return []  # no scale to read values with: not worth decoding any pixels
    scale = 1.0
    factor = -(-max(image.size) // MAX_SIDE)
    if factor > 1:  # an integer box reduction: several times faster than a resize
        width = image.width
        image = (image if image.mode == "RGB" else image.convert("RGB")).reduce(factor)
        scale = image.width / width
    arr = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    tokens = read_tokens(lines, scale)
    charts = _read(arr, tokens)
    if not charts:
        charts = _read_horizontal(arr, tokens)
    return charts


def _read_horizontal(arr: np.ndarray, tokens: list[Token]) -> list[Chart]:
    """Horizontal bars, read as vertical ones on the image turned a quarter clockwise:
    the value axis (under the plot) comes to the left, the category labels (left of
    the bars) on top, and the bars hang from them."""
    height = arr.shape[0]
    turned = [Token(t.text, height - t.y1, t.x0, height - t.y0, t.x1, t.conf, t.value,
                     t.affix) for t in tokens]
    charts = [c for c in _read(np.rot90(arr, k=-1), turned) if c.kind == "bar"]
    for c in charts:  # the top category is now on the right: back to top-to-bottom
        c.horizontal = True
        c.categories.reverse()
        for sr in c.series:
            sr.values.reverse()
    return charts


def _read_panel(arr: np.ndarray, ink: np.ndarray, axis: Axis, axes: list[Axis],
                tokens: list[Token], plot: Plot, others: list[Plot]) -> Chart | None:
    """The chart of one panel: bars if its colours form them, else lines, else None."""
    if len(axis.tokens) < 3 and not plot.spine:
        return None  # two labels and no axis line: too little to trust
    region = arr[plot.top:plot.bottom, plot.left:plot.right]
    _background, colours = palette(region)
    if not colours:
        return None
    used = {id(t) for ax in axes for t in ax.tokens}
    found = find_bars(region, colours)
    if found is not None and not on_edge_or_zero(found[1], region.shape[0], axis, plot):
        found = None
    if found is not None:
        chart = read_bars(arr, axis, plot, tokens, used, colours, *found)
    else:
        chart = read_lines(arr, ink, axis, plot, tokens, used, region)
    if chart is None:
        return None
    chart.value_label = axis_title(tokens, axis, plot, used)
    title = chart_title(tokens, plot, used, others)
    chart.title = "" if title in {sr.name for sr in chart.series} else title  # a legend
    chart.affix = axis.affix
    chart.step = abs(axis.a) * axis.step_px
    chart.unit = category_unit(chart.categories)
    return chart


def _read(arr: np.ndarray, tokens: list[Token]) -> list[Chart]:
    axes = value_axes(tokens)
    if not axes:
        return []
    ink = 255 - np.maximum(np.maximum(arr[..., 0], arr[..., 1]), arr[..., 2]).astype(np.int16)
    panels = [(axis, plot) for axis in axes
              if (plot := plot_area(ink, axis, tokens, axes)) is not None]
    band = max(1, arr.shape[0] // 20)
    panels.sort(key=lambda p: (p[1].top // band, p[1].left))  # reading order
    charts = []
    for axis, plot in panels:
        others = [p for _, p in panels if p is not plot]
        chart = _read_panel(arr, ink, axis, axes, tokens, plot, others)
        if chart is not None:
            charts.append(chart)
    return charts
