"""`mmrag eval-answers`: score generated answers against reference answers.

Per query with an ``answer`` field: token F1 and ROUGE-L F1 against the reference (after
SQuAD-style normalisation and with ``[n]`` markers removed, so citing is not penalised),
citation precision (share of the answer's citations that point at a relevant page; only
answers that cite count towards it), whether the answer was ``found``, and its latency
(retrieval plus generation). Reported overall and per query kind.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..types import Answer, Citation
from .runner import EvalQuery, PageKey, is_relevant, read_queries

__all__ = ["citation_precision", "evaluate_answers", "lcs_length", "normalize_tokens",
           "read_answer_queries", "rouge_l", "token_f1"]

_CITATION = re.compile(r"\[\s*\d+(?:\s*[-–,;]\s*\d+)*\s*\]")
_ARTICLES = frozenset({"a", "an", "the"})


def normalize_tokens(text: str) -> list[str]:
    """Lower-case word tokens without punctuation, articles or citation markers."""
    return [w for w in re.findall(r"\w+", _CITATION.sub(" ", text).lower())
            if w not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of words, as in SQuAD)."""
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) with one row."""
    row = [0] * (len(b) + 1)
    for x in a:
        diag = 0  # the cell up-left of row[j]: LCS of the shorter prefixes
        for j, y in enumerate(b, 1):
            up = row[j]
            row[j] = diag + 1 if x == y else max(up, row[j - 1])
            diag = up
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: LCS-based precision and recall (beta = 1, like rouge-score's rougeL)."""
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    lcs = lcs_length(pred, ref)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def citation_key(c: Citation) -> PageKey:
    return (Path(c.name or c.source).name, int(c.page))


def citation_precision(citations: Sequence[Citation], relevant: set[PageKey]) -> float | None:
    """Share of citations on a relevant page (any page of a document-level file); None when
    the answer cites nothing."""
    if not citations:
        return None
    return sum(is_relevant(citation_key(c), relevant) for c in citations) / len(citations)


def read_answer_queries(path: str | Path) -> list[tuple[EvalQuery, str]]:
    """Queries of a queries.jsonl that have a reference ``answer``, with that answer."""
    queries = {q.id: q for q in read_queries(path)}
    out: list[tuple[EvalQuery, str]] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)  # read_queries already rejected malformed lines
        answer = row.get("answer")
        if isinstance(answer, str) and answer.strip():
            out.append((queries[str(row.get("id", n))], answer))
    if not out:
        raise ConfigError(f"{str(path)!r} has no query with an 'answer' field to score")
    return out


def evaluate_answers(queries: Sequence[tuple[EvalQuery, str]], ask: Callable[[str], Answer],
                     generator: str = "",
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer every query and return the report `mmrag eval-answers --json` prints;
    ``progress(done, total)`` is called after each answer (local models are slow)."""
    t0 = time.perf_counter()
    rows = []
    for done, (q, reference) in enumerate(queries, 1):
        rows.append(_score_one(q, reference, ask(q.query)))
        if progress:
            progress(done, len(queries))
    kinds = sorted({r["kind"] for r in rows})
    return {"n": len(rows), "generator": generator,
            "seconds": round(time.perf_counter() - t0, 3),
            "overall": _summary(rows),
            "by_kind": {k: _summary([r for r in rows if r["kind"] == k]) for k in kinds},
            "queries": rows}


def _score_one(q: EvalQuery, reference: str, answer: Answer) -> dict[str, Any]:
    return {"id": q.id, "kind": q.kind,
            "token_f1": token_f1(answer.text, reference),
            "rouge_l": rouge_l(answer.text, reference),
            "citation_precision": citation_precision(answer.citations, q.relevant),
            "found": answer.found, "seconds": answer.seconds,
            "citations": [f"{f}#{p}" for f, p in map(citation_key, answer.citations)],
            "answer": answer.text}


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the scores, p50 latency; citation precision over answers that cite."""
    cited = [r["citation_precision"] for r in rows if r["citation_precision"] is not None]
    seconds = [r["seconds"] for r in rows]
    return {"n": len(rows),
            "token_f1": _mean([r["token_f1"] for r in rows]),
            "rouge_l": _mean([r["rouge_l"] for r in rows]),
            "citation_precision": _mean(cited) if cited else None,
            "cited": len(cited),
            "found": _mean([float(r["found"]) for r in rows]),
            "latency_p50": round(statistics.median(seconds), 3) if seconds else 0.0}


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0
