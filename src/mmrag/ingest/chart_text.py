"""A chart read back into numbers (:mod:`.charts`), told as text a search engine can use:
a Markdown table and plain sentences ("Sales peaks in June (42).", "Sales rises every
month.", "A is above B in every month.").

The words are plain on purpose: BM25 and the text embedder see them next to the OCR
text, so "which month peaks" or "what falls after March" find the chart.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chart", "Series", "category_unit"]

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_QUARTER = re.compile(r"^(?:q[1-4]|[1-4]q)(?:[\s'’-]*\d{2,4})?$", re.IGNORECASE)
_YEAR = re.compile(r"^(?:19|20)\d{2}$")


def _month(label: str) -> str | None:
    word = label.strip().rstrip(".").lower()
    if len(word) < 3:
        return None
    for name in _MONTHS:
        if name.startswith(word) or (word == "sept" and name == "september"):
            return name.capitalize()
    return None


def _day(label: str) -> str | None:
    word = label.strip().rstrip(".").lower()
    if len(word) < 3:
        return None
    return next((d.capitalize() for d in _DAYS if d.startswith(word)), None)


def category_unit(categories: list[str]) -> str:
    """``month``, ``quarter``, ``year`` or ``day`` when every label is one, else ``""``."""
    labels = [c for c in categories if c and not c.startswith("#")]
    if len(labels) < 2:
        return ""
    for unit, test in (("month", _month), ("day", _day),
                       ("quarter", lambda c: _QUARTER.match(c.strip())),
                       ("year", lambda c: _YEAR.match(c.strip()))):
        if all(test(c) for c in labels):
            return unit
    return ""


@dataclass(slots=True)
class Series:
    """One bar colour or one line: its legend name ("" when none), colour name and one
    value per category (None where it has no bar or the line could not be read)."""

    name: str
    color: str
    values: list[float | None]


@dataclass(slots=True)
class Chart:
    kind: str  # "bar" | "line"
    categories: list[str]
    series: list[Series]
    title: str = ""
    value_label: str = ""  # the value axis title
    category_label: str = ""  # the category axis title
    unit: str = ""  # what a category is: month, quarter, year, day or ""
    affix: tuple[str, str] = ("", "")  # currency prefix / % or k suffix of the labels
    step: float = 0.0  # value between two axis labels
    horizontal: bool = False
    names: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.names = []

    # --- formatting -------------------------------------------------------------------------

    def _decimals(self) -> int:
        if self.step <= 0:
            return 1
        return max(0, min(3, -math.floor(math.log10(self.step / 4))))

    def fmt(self, value: float | None) -> str:
        if value is None:
            return ""
        d = self._decimals()
        text = f"{value:.{d}f}"
        if text.startswith("-") and float(text) == 0:
            text = text[1:]
        return f"{self.affix[0]}{text}{self.affix[1]}"

    def _label(self, category: str) -> str:
        if self.unit == "month":
            return _month(category) or category
        if self.unit == "day":
            return _day(category) or category
        return category

    def series_names(self) -> list[str]:
        """Legend names, else the axis title (one series), else "<colour> series"."""
        if self.names:
            return self.names
        subject = re.sub(r"\s*\([^)]*\)\s*$", "", self.value_label).strip()
        names = []
        for i, s in enumerate(self.series):
            if s.name:
                names.append(s.name)
            elif len(self.series) == 1:
                names.append(subject or self.title or "Value")
            else:
                same = [t for t in self.series if t.color == s.color]
                names.append(f"{s.color} series" + (f" {same.index(s) + 1}"
                                                    if len(same) > 1 else ""))
            if names.count(names[-1]) > 1:
                names[-1] = f"{names[-1]} ({i + 1})"
        self.names = names
        return names

    # --- outputs ----------------------------------------------------------------------------

    def table(self) -> str:
        """Markdown table: a row per category, a column per series."""
        head = self.value_label if len(self.series) == 1 and not self.series[0].name \
            and self.value_label else None
        first = (self.category_label or self.unit.capitalize() or "Category").replace("|", "/")
        cols = [head or n for n in self.series_names()] if len(self.series) == 1 \
            else self.series_names()
        lines = ["| " + " | ".join([first, *cols]) + " |",
                 "|" + " --- |" * (len(cols) + 1)]
        for i, cat in enumerate(self.categories):
            cells = [self.fmt(s.values[i]) for s in self.series]
            lines.append("| " + " | ".join([cat.replace("|", "/"), *cells]) + " |")
        return "\n".join(lines)

    def _eps(self) -> float:
        return 0.1 * self.step if self.step > 0 else 0.0

    def _ordered(self) -> bool:
        """Whether categories run in an order (time, numbers): only then trends mean
        something."""
        if self.kind == "line" or self.unit:
            return True
        try:
            [float(c.replace(",", "")) for c in self.categories]
        except ValueError:
            return False
        return True

    def sentences(self) -> list[str]:
        """Each fact once, each name as few times as it can: a series is named in its
        first sentence and is "It" after, and with more than three series the pairwise
        comparisons give way to which series leads in which categories (repeating names
        would weigh them in BM25 beyond what the chart says)."""
        out: list[str] = []
        names = self.series_names()
        for name, s in list(zip(names, self.series, strict=True))[:6]:
            said = self._extremes(s)
            if self._ordered():
                said += self._trend(s, f"every {self.unit}" if self.unit else "at every step")
            out += [f"{name if i == 0 else 'It'} {text}." for i, text in enumerate(said)]
        if 2 <= len(self.series) <= 3:
            out += self._compare(names, f"every {self.unit}" if self.unit
                                 else "every category")
        if self.kind == "bar" and len(self.series) >= 2:
            out += self._leaders(names)
        return out

    def _leaders(self, names: list[str]) -> list[str]:
        """"A is highest in X and Y; B in Z.": the series on top in each category."""
        won: dict[str, list[str]] = {}
        for i, cat in enumerate(self.categories):
            vals = [(s.values[i], n) for s, n in zip(self.series, names, strict=True)
                    if s.values[i] is not None]
            if len(vals) >= 2:
                top = max(vals, key=lambda p: p[0])  # type: ignore[arg-type,return-value]
                won.setdefault(top[1], []).append(self._label(cat))
        if not won:
            return []
        parts = [f"{n} {'is highest' if i == 0 else ''} in {_join(cats)}".replace("  ", " ")
                 for i, (n, cats) in enumerate(won.items())]
        return ["; ".join(parts) + "."]

    def _extremes(self, s: Series) -> list[str]:
        pts = [(v, c) for v, c in zip(s.values, self.categories, strict=True) if v is not None]
        if len(pts) < 2:
            return []
        eps = self._eps()
        top = max(v for v, _ in pts)
        low = min(v for v, _ in pts)
        if top - low <= eps:
            return [f"stays level at about {self.fmt(top)}"]
        peaks = [self._label(c) for v, c in pts if v >= top - eps / 2]
        lows = [self._label(c) for v, c in pts if v <= low + eps / 2]
        return [f"peaks in {_join(peaks)} ({self.fmt(top)})",
                f"is lowest in {_join(lows)} ({self.fmt(low)})"]

    def _trend(self, s: Series, every: str) -> list[str]:
        pts = [(v, self._label(c)) for v, c in zip(s.values, self.categories, strict=True)
               if v is not None]
        if len(pts) < 3:
            return []
        eps = self._eps()
        signs = [0 if abs(b[0] - a[0]) <= eps else (1 if b[0] > a[0] else -1)
                 for a, b in itertools.pairwise(pts)]
        first, last = pts[0], pts[-1]
        span = (f"from {self.fmt(first[0])} in {first[1]} to {self.fmt(last[0])} "
                f"in {last[1]}")
        if all(x > 0 for x in signs):
            return [f"rises {every}, {span}"]
        if all(x < 0 for x in signs):
            return [f"falls {every}, {span}"]
        runs, start = [], 0
        for i in range(1, len(signs) + 1):
            if i == len(signs) or signs[i] != signs[start]:
                if signs[start] != 0 and i - start >= 2:
                    runs.append((i - start, signs[start], pts[start][1], pts[i][1]))
                start = i
        runs = sorted(runs, reverse=True)[:3]
        runs.sort(key=lambda r: [p[1] for p in pts].index(r[2]))
        return [f"{'rises' if sign > 0 else 'falls'} from {a} to {b}"
                for _, sign, a, b in runs]

    def _compare(self, names: list[str], every: str) -> list[str]:
        out = []
        eps = self._eps()
        verb = "above" if self.kind == "line" else "higher than"
        for i, j in itertools.combinations(range(len(self.series)), 2):
            a, b = self.series[i], self.series[j]
            pairs = [(x, y, c) for x, y, c in zip(a.values, b.values, self.categories,
                                                  strict=True)
                     if x is not None and y is not None]
            n = len(pairs)
            if n < 2:
                continue
            for hi, lo, sign in ((i, j, 1), (j, i, -1)):
                above = [c for x, y, c in pairs if sign * (x - y) > eps]
                if len(above) == n:
                    out.append(f"{names[hi]} is {verb} {names[lo]} in {every}.")
                elif n >= 4 and len(above) >= n - 2 and 2 * len(above) > n:
                    rest = [self._label(c) for _, _, c in pairs if c not in above]
                    out.append(f"{names[hi]} is {verb} {names[lo]} except in {_join(rest)}.")
        return out

    def text(self) -> str:
        """What is appended to the item's text: a ``chart:`` line, the sentences and the
        table."""
        head = f"chart: {self.kind} chart"
        if self.horizontal:
            head = f"chart: horizontal {self.kind} chart"
        if self.title:
            head += f' "{self.title}"'
        if self.value_label:
            head += f"; values: {self.value_label}"
        if self.category_label:
            head += f"; by {self.category_label}"
        return "\n".join([head, " ".join(self.sentences()), self.table()])

    def to_dict(self) -> dict[str, Any]:
        """The numbers as JSON-friendly data, for ``Item.metadata["charts"]``."""
        return {"kind": self.kind, "title": self.title, "value_label": self.value_label,
                "category_label": self.category_label, "categories": self.categories,
                "series": [{"name": n, "color": s.color,
                            "values": [None if v is None else round(v, 4) for v in s.values]}
                           for n, s in zip(self.series_names(), self.series, strict=True)]}


def _join(words: list[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
