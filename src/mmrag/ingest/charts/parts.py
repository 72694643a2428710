"""What a chart is read into, in pixels of the image read: text boxes (:class:`Token`),
a value axis (:class:`Axis`), a plot area (:class:`Plot`) and bars (:class:`Bar`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Token:
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
class Axis:
    tokens: list[Token]
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
class Plot:
    left: int
    top: int
    right: int
    bottom: int
    spine: bool  # an axis line was found next to the labels
    ticks: list[float] = field(default_factory=list)  # x of the tick marks under it


@dataclass(slots=True)
class Bar:
    colour: int  # index into the palette
    x0: int
    x1: int
    y0: int
    y1: int
