"""Progress notes: work inside one long source shows on the running bar."""

from __future__ import annotations

from mmrag.progress import Progress, note


def test_note_updates_the_running_bar_without_advancing() -> None:
    with Progress("indexing", show=True, total=2) as bar:
        bar.advance("talk.mp4")
        note("talk.mp4 02:30")
        task = bar._bar.tasks[0]  # type: ignore[union-attr]
        assert task.fields["current"] == "talk.mp4 02:30"
        assert task.completed == 1
    note("after the bar closed")  # no bar: nothing to update, no error


def test_note_is_silent_when_the_bar_is_hidden() -> None:
    with Progress("indexing", show=False) as bar:
        note("anything")
        assert bar._bar is None
