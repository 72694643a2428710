import pytest

from mmrag.search.fusion import collapse, mean_of_present, normalise, rrf, top, weighted


def test_rrf_rewards_items_ranked_well_in_both_lists():
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("b", 12.0), ("d", 11.0), ("a", 2.0)]
    fused = rrf({"dense": dense, "bm25": lexical}, k=60)
    ranking = [i for i, _ in top(fused, 10)]
    assert ranking[0] == "b"  # 2nd + 1st beats 1st + 3rd
    assert set(ranking) == {"a", "b", "c", "d"}
    assert fused["a"] > fused["d"] > 0


def test_rrf_weights_scale_a_list():
    fused = rrf({"x": [("a", 1.0)], "y": [("b", 1.0)]}, weights={"x": 2.0, "y": 1.0})
    assert fused["a"] == 2 * fused["b"]


def test_weighted_fusion_alpha_decides_between_lists():
    dense = [("a", 0.9), ("b", 0.2)]
    lexical = [("b", 30.0), ("a", 1.0)]
    dense_heavy = weighted({"d": dense, "l": lexical}, {"d": 0.9, "l": 0.1})
    lexical_heavy = weighted({"d": dense, "l": lexical}, {"d": 0.1, "l": 0.9})
    assert top(dense_heavy, 1)[0][0] == "a"
    assert top(lexical_heavy, 1)[0][0] == "b"


def test_weighted_missing_from_list_costs_zero_and_empty_lists_are_fine():
    fused = weighted({"d": [("a", 0.5), ("b", 0.1)], "l": []}, {"d": 1.0, "l": 1.0})
    assert fused == {"a": 1.0, "b": 0.0}


def test_normalise_bm25_by_best_and_cosine_by_range():
    assert normalise([("a", 8.0), ("b", 2.0)], "max") == {"a": 1.0, "b": 0.25}
    assert normalise([("a", 0.8), ("b", 0.6), ("c", 0.4)], "minmax") == pytest.approx(
        {"a": 1.0, "b": 0.5, "c": 0.0})
    assert normalise([], "max") == {}


def test_collapse_then_fuse_lets_a_page_add_up_evidence_from_different_items():
    """BM25 finds page 1 by one chunk, dense by another; page 2 tops each list once with
    the same item. Item-level fusion would tie page 1's best item with page 2's; page-level
    fusion gives page 1 both contributions."""
    page = {"p1:t1": "p1", "p1:t2": "p1", "p2:t1": "p2", "p3:t1": "p3"}.__getitem__
    bm25 = [("p2:t1", 10.0), ("p1:t1", 9.5), ("p3:t1", 1.0)]
    dense = [("p1:t2", 0.80), ("p3:t1", 0.79), ("p2:t1", 0.30)]
    items = weighted({"bm25": bm25, "dense": dense}, {"bm25": 0.5, "dense": 0.5},
                     {"bm25": "max"})
    pages = weighted({"bm25": collapse(bm25, page), "dense": collapse(dense, page)},
                     {"bm25": 0.5, "dense": 0.5}, {"bm25": "max"})
    assert top(pages, 1)[0][0] == "p1"
    assert max(items["p1:t1"], items["p1:t2"]) < pages["p1"]


def test_mean_of_present_ignores_maps_a_key_is_missing_from():
    assert mean_of_present([{"a": 1.0, "b": 0.2}, {"a": 0.5}]) == {"a": 0.75, "b": 0.2}
