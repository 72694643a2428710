"""`mmrag eval --compare A.json B.json`: what changed between two eval reports.

Both inputs are reports written by `mmrag eval --json`. The diff has, per kind (and
``overall``), each metric in A, in B and B−A, and the queries whose nDCG@5 moved, so a
change to retrieval is judged on its figures and on the queries it won or lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["QUERY_METRIC", "compare_reports", "load_report"]

QUERY_METRIC = "ndcg@5"  # the per-query figure a change is judged by
_EPS = 1e-9  # metric values are rounded floats; smaller moves are noise, not changes


def load_report(path: str | Path) -> dict[str, Any]:
    """Read an `mmrag eval --json` report; anything else is a one-line ConfigError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read eval report {str(path)!r}: {exc.strerror}") from exc
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise ConfigError(f"{str(path)!r} is not an `mmrag eval --json` report "
                          f"(not JSON: {str(exc).splitlines()[0]})") from exc
    problem = _report_problem(data)
    if problem:
        raise ConfigError(f"{str(path)!r} is not an `mmrag eval --json` report ({problem})")
    return data


def _report_problem(data: Any) -> str | None:
    """Why ``data`` is not an eval report, or None if it is one."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if not isinstance(data.get("overall"), dict) or not isinstance(data.get("by_kind"), dict):
        return "no 'overall' and 'by_kind' sections"
    queries = data.get("queries", [])
    if not isinstance(queries, list):
        return "'queries' is not a list"
    if not all(isinstance(q, dict) and "id" in q and _is_number(q.get(QUERY_METRIC, 0))
               for q in queries):
        return f"a query record without 'id' or a numeric {QUERY_METRIC!r}"
    rows = [data["overall"], *data["by_kind"].values()]
    if not all(isinstance(r, dict) and all(_is_number(v) for v in r.values()) for r in rows):
        return "metric values are not numbers"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The diff `--compare` prints: per kind, each metric's A, B and B−A (None where a
    kind or metric is in one report only); then the queries whose nDCG@5 changed."""
    kinds = {"overall": (_overall(a), _overall(b))}
    for kind in sorted(set(a["by_kind"]) | set(b["by_kind"])):
        kinds[kind] = (a["by_kind"].get(kind, {}), b["by_kind"].get(kind, {}))
    return {"n": {"a": a.get("n"), "b": b.get("n")},
            "profile": {"a": a.get("profile"), "b": b.get("profile")},
            "kinds": {k: _metric_diffs(ra, rb) for k, (ra, rb) in kinds.items()},
            "changed": changed_queries(a.get("queries", []), b.get("queries", []))}


def _overall(report: dict[str, Any]) -> dict[str, Any]:
    """The overall row with its query count, like the rows of ``by_kind``."""
    return {"n": report.get("n", 0), **report["overall"]}


def _metric_diffs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = list(dict.fromkeys([*a, *b]))
    return {m: {"a": a.get(m), "b": b.get(m), "diff": _diff(a.get(m), b.get(m))}
            for m in names}


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 4)


def changed_queries(a: list[dict[str, Any]], b: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Queries whose nDCG@5 differs (or that exist in one report only), the largest
    losses first, so regressions are read before wins."""
    in_a, in_b = _by_id(a), _by_id(b)
    out = []
    for qid in dict.fromkeys([*in_b, *in_a]):
        qa, qb = in_a.get(qid), in_b.get(qid)
        va = qa.get(QUERY_METRIC) if qa else None
        vb = qb.get(QUERY_METRIC) if qb else None
        if va is not None and vb is not None and abs(vb - va) <= _EPS:
            continue
        out.append({"id": qid, "kind": (qb or qa or {}).get("kind"),
                    "a": va, "b": vb, "diff": _diff(va, vb)})
    return sorted(out, key=lambda r: (r["diff"] is None, r["diff"] or 0.0))


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in rows}
