"""A progress display for long work that stays silent when nobody is watching.

``show=None`` means "on when stderr is a terminal", so scripts and CI logs stay clean
while the CLI shows a live bar (the sentence-transformers convention).
"""

from __future__ import annotations

import contextvars
import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress

_active: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "mmrag_progress", default=None)


def note(text: str) -> None:
    """Show ``text`` (e.g. "talk.mp4 02:30") as what the running bar is working on.

    Loaders are generators several calls below the bar, and a 2-hour video is one source:
    without this, the bar would sit still for the whole file. No-op when nothing shows.
    """
    bar = _active.get()
    if bar is not None:
        bar.detail(text)


class Progress:
    def __init__(self, label: str, show: bool | None = None, total: int | None = None):
        self.show = sys.stderr.isatty() if show is None else show
        self.label = label
        self.failed = 0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._total = total

    def __enter__(self) -> Progress:
        if self.show:
            self._bar = RichProgress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                     BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[current]}"), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self._total, current="")
        self._token = _active.set(self)
        return self

    def advance(self, current: str, failed: bool = False) -> None:
        self.failed += failed
        if self._bar is not None and self._task is not None:  # set together in __enter__
            note = f"[red]{self.failed} failed[/] " if self.failed else ""
            self._bar.update(self._task, advance=1, current=note + current[-50:])

    def detail(self, text: str) -> None:
        """Replace the "current" column without advancing (work inside one source)."""
        if self._bar is not None and self._task is not None:
            note_ = f"[red]{self.failed} failed[/] " if self.failed else ""
            self._bar.update(self._task, current=note_ + text[-50:])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _active.reset(self._token)
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
