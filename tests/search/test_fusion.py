from mmrag.search.fusion import rrf, top, weighted


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
