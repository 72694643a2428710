import math

import pytest

from mmrag.eval.metrics import mean, mrr_at, ndcg_at, recall_at, score


def test_recall_counts_relevant_found_within_k():
    ranked = ["x", "a", "y", "b"]
    assert recall_at(ranked, {"a", "b"}, 1) == 0.0
    assert recall_at(ranked, {"a", "b"}, 2) == 0.5
    assert recall_at(ranked, {"a", "b"}, 4) == 1.0


def test_mrr_is_reciprocal_rank_of_first_relevant():
    assert mrr_at(["x", "y", "a"], {"a"}, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "a"], {"a"}, 2) == 0.0


def test_ndcg_matches_definition():
    ranked = ["x", "a", "b"]
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, {"a", "b"}, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "b"], {"a", "b"}, 5) == pytest.approx(1.0)


def test_score_and_mean_cover_every_metric():
    rows = [score(["a"], {"a"}), score(["x"], {"a"})]
    avg = mean(rows)
    assert set(avg) == {"recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr@10"}
    assert avg["recall@1"] == 0.5 and avg["mrr@10"] == 0.5
