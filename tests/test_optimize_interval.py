"""ingest.optimize_interval_s: adds between two optimizes stay searchable (by a scan)."""

from __future__ import annotations

from mmrag import Index


def _doc(word: str) -> tuple[str, bytes]:
    return (f"{word}.md", f"# {word}\n\nThe {word} report covers {word} figures.\n".encode())


def test_adds_within_the_interval_skip_optimize_and_stay_searchable(tmp_path):
    with Index(tmp_path / "idx", show_progress=False,
               ingest={"optimize_interval_s": 3600}) as idx:
        first = idx.add([_doc("zeppelin")])
        second = idx.add([_doc("aluminium")])
        assert "optimize" in first.timings  # a fresh Index optimizes its first add
        assert "optimize" not in second.timings
        for mode in ("bm25", "dense", "hybrid"):
            hits = idx.search("aluminium report", mode=mode, k=1)
            assert hits and hits[0].item.name == "aluminium.md", mode
        idx.optimize()
        assert idx.search("aluminium", mode="bm25", k=1)[0].item.name == "aluminium.md"
        third = idx.add([_doc("lighthouse")])
        assert "optimize" not in third.timings  # optimize() restarted the interval


def test_interval_zero_optimizes_after_every_add(tmp_path):
    with Index(tmp_path / "idx", show_progress=False, encode={"text_encoder": "hashing"},
               ingest={"optimize_interval_s": 0}) as idx:
        reports = [idx.add([_doc(w)]) for w in ("zeppelin", "aluminium", "lighthouse")]
    assert all("optimize" in r.timings for r in reports)
