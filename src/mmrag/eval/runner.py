"""`mmrag eval`: score retrieval on a queries.jsonl at page granularity.

A retrieved page is ``(file base name, page)``; an image is page 1. Search results are
grouped by page, so a page's rank is that of its best item.

A relevant entry with ``"page": null`` is document-level: any page or item of that file is
a hit. Every retrieved page of such a file maps to the one key ``(file, None)`` and only
its first (best) rank counts, so a long document found on many pages counts once, as a
single relevant page would. A missing ``page`` means page 1, as it always has.

A query line may carry an ``image`` (a path relative to the documents folder, or
absolute): it becomes the query image, alone or with the query text, and the query is
reported under kind ``image`` or ``text+image``; the line's own ``kind`` stays as
``label``. An index that cannot answer a query (``QueryError``, e.g. an image query with
no image encoder) scores it 0 and the record carries the one-line ``error``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, QueryError
from ..types import Hit
from .metrics import mean, score

__all__ = ["EvalQuery", "PageKey", "evaluate", "is_relevant", "page_key", "rank_keys",
           "read_queries", "top_pages"]

PageKey = tuple[str, int | None]
TOP_N = 10  # pages kept per query in the report: enough to see where a relevant page fell


@dataclass(slots=True)
class EvalQuery:
    """One query line. ``kind`` is what the report groups by; ``label`` is the line's own
    kind (they differ only for image queries); ``image`` is the resolved query image."""

    id: str
    query: str
    relevant: set[PageKey]
    kind: str = "all"
    label: str = ""
    image: Path | None = None

    def __post_init__(self) -> None:
        self.label = self.label or self.kind

    def request(self) -> tuple[str | None, str | None]:
        """What `Index.search` takes: a ``(text, image)`` tuple, so a text that happens to
        look like a file name is never mistaken for an image."""
        return (self.query or None, str(self.image) if self.image is not None else None)


def read_queries(path: str | Path, image_root: str | Path | None = None) -> list[EvalQuery]:
    """Parse queries.jsonl; a malformed line is an error naming its line number.

    Relative ``image`` paths are resolved against ``image_root`` (the documents folder).
    """
    root = Path(image_root) if image_root is not None else None
    out: list[EvalQuery] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(_parse_line(json.loads(line), n, root))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{path}:{n}: bad query line ({type(exc).__name__}: {exc})") from exc
    return out


def _parse_line(row: dict[str, Any], n: int, root: Path | None) -> EvalQuery:
    if not isinstance(row, dict):
        raise TypeError(f"expected a JSON object, got {type(row).__name__}")
    image = _image_path(row.get("image"), root)
    text = row.get("query") if image is not None else row["query"]
    if text is not None and not isinstance(text, str):
        raise TypeError(f"'query' must be a string, got {text!r}")
    if image is None and not (text or "").strip():
        raise ValueError("empty 'query' and no 'image'")
    label = str(row.get("kind", "all"))
    kind = label if image is None else ("text+image" if (text or "").strip() else "image")
    return EvalQuery(str(row.get("id", n)), (text or "").strip(),
                     _relevant(row["relevant"]), kind, label, image)


def _image_path(value: Any, root: Path | None) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"'image' must be a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() or root is None else root / path


def _relevant(entries: Iterable[dict[str, Any]]) -> set[PageKey]:
    """The relevant keys; a document-level entry subsumes page entries of the same file,
    since with it every page of that file maps to ``(file, None)``."""
    keys: set[PageKey] = set()
    for r in entries:
        page = r.get("page", 1)
        keys.add((Path(r["file"]).name, None if page is None else int(page)))
    whole = {f for f, p in keys if p is None}
    return {(f, p) for f, p in keys if p is None or f not in whole}


def page_key(hit: Hit) -> PageKey:
    name = hit.item.name or Path(hit.item.source).name
    return (Path(name).name, int(hit.item.page))


def is_relevant(key: PageKey, relevant: set[PageKey]) -> bool:
    """A page is relevant if listed, or if its whole file is (``page: null``)."""
    return key in relevant or (key[0], None) in relevant


def rank_keys(hits: Sequence[Hit], relevant: set[PageKey]) -> list[PageKey]:
    """Ranked, deduplicated keys to score: pages of a document-level file collapse into
    ``(file, None)`` at the rank of the first one."""
    whole = {f for f, p in relevant if p is None}
    keys = ((f, None) if f in whole else (f, p) for f, p in map(page_key, hits))
    return list(dict.fromkeys(keys))


def top_pages(hits: Sequence[Hit], relevant: set[PageKey], n: int = TOP_N
              ) -> list[dict[str, Any]]:
    """The first ``n`` distinct pages as retrieved (not collapsed), so a reader sees which
    page of a document-level file came up."""
    out: list[dict[str, Any]] = []
    seen: set[PageKey] = set()
    for hit in hits:
        key = page_key(hit)
        if key in seen:
            continue
        seen.add(key)
        out.append({"page": f"{key[0]}#{key[1]}", "score": round(float(hit.score), 6),
                    "relevant": is_relevant(key, relevant)})
        if len(out) == n:
            break
    return out


def evaluate(queries: list[EvalQuery], search: Callable[[EvalQuery], list[Hit]],
             profile: str = "") -> dict[str, Any]:
    """Run every query and return the report `mmrag eval --json` prints."""
    t0 = time.perf_counter()
    per_query = [_run_one(q, search) for q in queries]
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


def _run_one(q: EvalQuery, search: Callable[[EvalQuery], list[Hit]]) -> dict[str, Any]:
    """Score one query; a query the index cannot answer scores 0 instead of ending the run
    (an offline index without an image encoder still scores its text queries)."""
    error = None
    try:
        hits = search(q)
    except QueryError as exc:
        hits, error = [], (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    record = {"id": q.id, "kind": q.kind, "label": q.label,
              **score(rank_keys(hits, q.relevant), q.relevant),
              "top": top_pages(hits, q.relevant)}
    if error is not None:
        record["error"] = error
    return record


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in d.items()}
