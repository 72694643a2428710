"""`mmrag eval`: score retrieval on a queries.jsonl at page granularity.

A retrieved page is ``(file base name, page)``; an image is page 1. Search results are
grouped by page, so a page's rank is that of its best item.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..types import Hit
from .metrics import mean, score

PageKey = tuple[str, int]


@dataclass(slots=True)
class EvalQuery:
    id: str
    query: str
    relevant: set[PageKey]
    kind: str = "all"


def read_queries(path: str | Path) -> list[EvalQuery]:
    """Parse queries.jsonl; a malformed line is an error naming its line number."""
    out: list[EvalQuery] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rel = {(Path(r["file"]).name, int(r.get("page", 1))) for r in row["relevant"]}
            out.append(EvalQuery(str(row.get("id", n)), row["query"], rel,
                                 row.get("kind", "all")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}:{n}: bad query line ({type(exc).__name__}: {exc})") from exc
    return out


def page_key(hit: Hit) -> PageKey:
    name = hit.item.name or Path(hit.item.source).name
    return (Path(name).name, int(hit.item.page))


def evaluate(queries: list[EvalQuery], search: Callable[[str], list[Hit]],
             profile: str = "") -> dict[str, Any]:
    """Run every query and return the report `mmrag eval --json` prints."""
    t0 = time.perf_counter()
    per_query: list[dict[str, Any]] = []
    for q in queries:
        ranked: list[PageKey] = []
        for hit in search(q.query):
            key = page_key(hit)
            if key not in ranked:
                ranked.append(key)
        per_query.append({"id": q.id, "kind": q.kind, **score(ranked, q.relevant),
                          "top": [f"{f}#{p}" for f, p in ranked[:3]]})
    kinds = sorted({q["kind"] for q in per_query})
    return {
        "n": len(per_query),
        "profile": profile,
        "seconds": round(time.perf_counter() - t0, 3),
        "overall": _rounded(mean(per_query)),
        "by_kind": {k: {"n": sum(q["kind"] == k for q in per_query),
                        **_rounded(mean([q for q in per_query if q["kind"] == k]))}
                    for k in kinds},
        "queries": per_query,
    }


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in d.items()}
