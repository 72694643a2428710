"""Group scores: a page/doc (e.g. a video's frames) scored by its best item or the mean."""

from __future__ import annotations

from mmrag import Index
from mmrag.search.fusion import collapse

# one retriever's list: a video whose one frame matches well, one whose frames all match
RANKED = [("b:1", 0.9), ("a:1", 0.7), ("a:2", 0.65), ("a:3", 0.6), ("b:2", 0.1), ("b:3", 0.1)]


def _rank(how: str) -> list[tuple[str, float]]:
    groups = collapse(RANKED, lambda item_id: item_id.split(":")[0], how)  # type: ignore
    return [(g, round(score, 4)) for g, score in groups]


def test_max_keeps_the_single_best_frame_first() -> None:
    assert _rank("max") == [("b", 0.9), ("a", 0.7)]


def test_mean_prefers_the_video_that_matches_throughout() -> None:
    assert _rank("mean") == [("a", 0.65), ("b", round(1.1 / 3, 4))]


def test_index_search_with_mean_returns_groups_best_first(tmp_path) -> None:
    docs = [(f"doc{i}.md", ("lighthouse keeper notes\n\n" * (i + 1)).encode()) for i in range(3)]
    with Index(tmp_path / "idx", profile="offline", encode={"text_encoder": "hashing"},
               search={"group_score": "mean"}, show_progress=False) as idx:
        idx.add(docs)
        hits = idx.search("lighthouse keeper", k=3, group_by="doc")
    assert len(hits) == 3 and len({h.doc_id for h in hits}) == 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
