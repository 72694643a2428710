"""A progress display for long work that stays silent when nobody is watching.

``show=None`` means "on when stderr is a terminal", so scripts and CI logs stay clean
while the CLI shows a live bar (the sentence-transformers convention).
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, label: str, show: bool | None = None, total: int | None = None):
        self.show = sys.stderr.isatty() if show is None else show
        self.label = label
        self.failed = 0
        self._bar: RichProgress | None = None
        self._task = None
        self._total = total

    def __enter__(self) -> Progress:
        if self.show:
            self._bar = RichProgress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                     BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[current]}"), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self._total, current="")
        return self

    def advance(self, current: str, failed: bool = False) -> None:
        self.failed += failed
        if self._bar is not None:
            note = f"[red]{self.failed} failed[/] " if self.failed else ""
            self._bar.update(self._task, advance=1, current=note + current[-50:])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
