"""Group scores: a page/doc (e.g. a video's frames) scored by its best item or the mean."""

from __future__ import annotations

from types import SimpleNamespace

from mmrag import Index
from mmrag.config import SearchSettings
from mmrag.search.searcher import Searcher

# members of each group, best first, as the fused ranking hands them over
ONE_LUCKY_FRAME = [("b:1", 0.9), ("b:2", 0.1), ("b:3", 0.1)]
MATCHES_THROUGHOUT = [("a:1", 0.7), ("a:2", 0.65), ("a:3", 0.6)]


def _rank(mode: str) -> list[tuple[str, float]]:
    fake = SimpleNamespace(settings=SearchSettings(group_score=mode))
    ranked = Searcher._rank_groups(fake, [ONE_LUCKY_FRAME, MATCHES_THROUGHOUT])  # type: ignore[arg-type]
    return [(members[0][0], round(score, 4)) for members, score in ranked]


def test_max_keeps_the_single_best_frame_first() -> None:
    assert _rank("max") == [("b:1", 0.9), ("a:1", 0.7)]


def test_mean_prefers_the_video_that_matches_throughout() -> None:
    assert _rank("mean") == [("a:1", 0.65), ("b:1", round(1.1 / 3, 4))]


def test_index_search_with_mean_returns_groups_best_first(tmp_path) -> None:
    docs = [(f"doc{i}.md", ("lighthouse keeper notes\n\n" * (i + 1)).encode()) for i in range(3)]
    with Index(tmp_path / "idx", profile="offline", encode={"text_encoder": "hashing"},
               search={"group_score": "mean"}, show_progress=False) as idx:
        idx.add(docs)
        hits = idx.search("lighthouse keeper", k=3, group_by="doc")
    assert len(hits) == 3 and len({h.doc_id for h in hits}) == 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
