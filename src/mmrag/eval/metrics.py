"""Ranking metrics with binary relevance, the standard definitions (as in pytrec_eval).

Each takes the ranked list of retrieved keys and the set of relevant keys for one query.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence, Set


def recall_at(ranked: Sequence[Hashable], relevant: Set[Hashable], k: int) -> float:
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / len(relevant)


def mrr_at(ranked: Sequence[Hashable], relevant: Set[Hashable], k: int) -> float:
    for rank, key in enumerate(ranked[:k], 1):
        if key in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[Hashable], relevant: Set[Hashable], k: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 1)
              for rank, key in enumerate(ranked[:k], 1) if key in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


METRICS = {
    "recall@1": lambda r, rel: recall_at(r, rel, 1),
    "recall@5": lambda r, rel: recall_at(r, rel, 5),
    "recall@10": lambda r, rel: recall_at(r, rel, 10),
    "ndcg@5": lambda r, rel: ndcg_at(r, rel, 5),
    "ndcg@10": lambda r, rel: ndcg_at(r, rel, 10),
    "mrr@10": lambda r, rel: mrr_at(r, rel, 10),
}


def score(ranked: Sequence[Hashable], relevant: Set[Hashable]) -> dict[str, float]:
    return {name: fn(ranked, relevant) for name, fn in METRICS.items()}


def mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {name: 0.0 for name in METRICS}
    return {name: sum(r[name] for r in rows) / len(rows) for name in METRICS}
