"""`mmrag eval --compare`: diffs of two eval reports, and files that are not reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.errors import ConfigError
from mmrag.eval.compare import QUERY_METRIC, compare_reports, load_report

METRICS = ("recall@1", "ndcg@5", "mrr@10")


def _row(n: int, r1: float, nd: float, mrr: float) -> dict:
    return {"n": n, "recall@1": r1, "ndcg@5": nd, "mrr@10": mrr}


def _report(overall: dict, by_kind: dict, queries: list[tuple[str, str, float]]) -> dict:
    return {"n": overall["n"], "profile": "offline", "seconds": 1.0,
            "overall": {m: overall[m] for m in METRICS}, "by_kind": by_kind,
            "queries": [{"id": i, "kind": k, QUERY_METRIC: v} for i, k, v in queries]}


A = _report(_row(3, 0.5, 0.6, 0.7), {"text": _row(2, 0.5, 0.75, 0.8),
                                      "visual": _row(1, 0.0, 0.25, 0.5)},
            [("q1", "text", 1.0), ("q2", "text", 0.5), ("q3", "visual", 0.25)])
B = _report(_row(4, 0.75, 0.55, 0.9), {"text": _row(2, 1.0, 0.5, 1.0),
                                        "image": _row(2, 0.5, 0.6, 0.75)},
            [("q1", "text", 1.0), ("q2", "text", 0.0), ("q4", "image", 0.6),
             ("q5", "image", 0.6)])


def test_metric_diffs_per_kind_are_b_minus_a():
    diff = compare_reports(A, B)
    assert list(diff["kinds"]) == ["overall", "image", "text", "visual"]
    for m in METRICS:
        o = diff["kinds"]["overall"][m]
        assert (o["a"], o["b"]) == (A["overall"][m], B["overall"][m])
        assert o["diff"] == pytest.approx(B["overall"][m] - A["overall"][m], abs=1e-4)
        t = diff["kinds"]["text"][m]
        assert t["diff"] == pytest.approx(B["by_kind"]["text"][m] - A["by_kind"]["text"][m],
                                          abs=1e-4)
    assert diff["kinds"]["overall"]["n"]["diff"] == B["n"] - A["n"]
    # a kind in one report only has no difference to show
    assert diff["kinds"]["visual"]["ndcg@5"] == {"a": 0.25, "b": None, "diff": None}
    assert diff["kinds"]["image"]["mrr@10"]["a"] is None


def test_changed_queries_list_both_values_losses_first():
    changed = compare_reports(A, B)["changed"]
    in_a = {q["id"]: q[QUERY_METRIC] for q in A["queries"]}
    in_b = {q["id"]: q[QUERY_METRIC] for q in B["queries"]}
    moved = {i for i in in_a.keys() & in_b.keys() if in_a[i] != in_b[i]}
    only_one = in_a.keys() ^ in_b.keys()
    assert {c["id"] for c in changed} == moved | only_one  # q1 did not move: left out
    q2 = next(c for c in changed if c["id"] == "q2")
    assert (q2["a"], q2["b"], q2["diff"]) == (in_a["q2"], in_b["q2"], in_b["q2"] - in_a["q2"])
    assert changed[0]["id"] == "q2"  # the only loss comes first
    q3 = next(c for c in changed if c["id"] == "q3")
    assert q3["b"] is None and q3["diff"] is None and q3["kind"] == "visual"


def test_identical_reports_have_zero_diffs_and_no_changed_queries():
    diff = compare_reports(A, A)
    assert diff["changed"] == []
    assert all(v["diff"] == 0 for kind in diff["kinds"].values() for v in kind.values())


@pytest.mark.parametrize("content, why", [
    ("[1, 2]", "JSON list"),
    ("{oops", "not JSON"),
    ('{"n": 3, "overall": {}}', "'by_kind'"),
    ('{"overall": {"ndcg@5": "high"}, "by_kind": {}}', "not numbers"),
    ('{"overall": {}, "by_kind": {}, "queries": {}}', "not a list"),
    ('{"overall": {}, "by_kind": {}, "queries": [{"ndcg@5": 1}]}', "'id'"),
])
def test_files_that_are_not_reports_give_one_line_errors(tmp_path, content, why):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_report(path)
    message = str(info.value)
    assert str(path) in message and why in message and "\n" not in message


def test_missing_file_and_valid_report(tmp_path):
    with pytest.raises(ConfigError, match="cannot read eval report"):
        load_report(tmp_path / "absent.json")
    path = tmp_path / "a.json"
    path.write_text(json.dumps(A))
    assert load_report(Path(path)) == A
