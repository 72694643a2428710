"""Stage timing: recorded in context, carried into pool threads, reported by Index.add."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from mmrag import Index
from mmrag.timing import StageTimes, bind, recording, stage
from tests.factories import make_text_pdf


def _sleep_in_stage(name: str, seconds: float) -> None:
    with stage(name):
        time.sleep(seconds)


def test_stage_records_only_while_recording() -> None:
    times = StageTimes()
    _sleep_in_stage("outside", 0.01)
    with recording(times):
        _sleep_in_stage("inside", 0.02)
        _sleep_in_stage("inside", 0.02)
    assert set(times.seconds) == {"inside"}
    assert times.calls["inside"] == 2
    assert times.seconds["inside"] >= 0.04


def test_bind_carries_the_recorder_into_pool_threads() -> None:
    times = StageTimes()
    with recording(times), ThreadPoolExecutor(2) as pool:
        list(pool.map(bind(_sleep_in_stage), ["worker"] * 4, [0.01] * 4))
        # without bind, the pool thread has no recorder: nothing lands
        pool.submit(_sleep_in_stage, "unbound", 0.01).result()
    assert times.calls["worker"] == 4
    assert "unbound" not in times.seconds


def test_add_reports_per_stage_seconds_for_a_pdf(tmp_path) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(make_text_pdf([f"Page {i} about stage timing and ingest " * 20
                                   for i in range(3)]))
    with Index(tmp_path / "idx", profile="offline", encode={"text_encoder": "hashing"},
               show_progress=False) as idx:
        report = idx.add([pdf])
    assert report.added and not report.failed
    t = report.timings
    for name in ("read", "load", "parse", "render", "chunk", "media", "embed:text", "store",
                 "catalog"):
        assert name in t, f"missing stage {name}: {sorted(t)}"
    # parsing and rendering happen inside the loader, so they cannot exceed it
    assert t["parse"] + t["render"] + t["chunk"] <= t["load"] + 1e-3
    assert sum(v for k, v in t.items() if k in ("read", "load", "media", "store")) \
        <= report.seconds + 1e-3
