"""Fusion variants that were tried and not shipped, measured over the product's own
retrieved lists (page nDCG@5, both shared sets). Kept so the losing rows of
benchmarks/RESULTS.md can be re-made.

Each query's BM25 and dense lists come from the shipped Searcher.retrieve; the variants
below differ only in how they normalise and combine them:

- item-level RRF (the default before issue 11): fuse items, then a page takes its best item;
- dense normalisation: raw cosine, min-max, z-score, instead of over its best;
- page-level dense: each page's mean chunk vector as a second dense level (as BM25 has).

    python benchmarks/fusion_variants.py --index-dir DIR   # DIR/eval-sample, DIR/eval-office
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = ("eval-sample", "eval-office")


def ndcg5(ranked: list, rel: set) -> float:
    whole = {f for f, p in rel if p is None}
    keys = list(dict.fromkeys((f, None) if f in whole else (f, p) for f, p in ranked))
    dcg = sum(1 / math.log2(i + 2) for i, k in enumerate(keys[:5]) if k in rel)
    return dcg / sum(1 / math.log2(i + 2) for i in range(min(len(rel), 5)))


def pages(scored, keep=lambda it: True) -> dict:
    out: dict = {}
    for it, s in scored:
        key = (Path(it.name or it.source).name, it.page)
        if keep(it) and key not in out:
            out[key] = s
    return out


def norm(d: dict, how: str) -> dict:
    if not d:
        return {}
    v = list(d.values())
    hi, lo = max(v), min(v)
    if how == "raw":
        return dict(d)
    if how == "max":
        return {k: s / hi for k, s in d.items()}
    if how == "z":
        m, sd = statistics.mean(v), statistics.pstdev(v) or 1.0
        return {k: (s - m) / sd for k, s in d.items()}
    return {k: (s - lo) / (hi - lo) if hi > lo else 1.0 for k, s in d.items()}


def mean_present(parts: list[dict]) -> dict:
    acc: dict = defaultdict(list)
    for p in parts:
        for k, v in p.items():
            acc[k].append(v)
    return {k: sum(v) / len(v) for k, v in acc.items()}


def lexical(scored) -> dict:
    """A page's BM25 evidence as shipped (search.lexical_levels = "max"): its best item's
    score over the list's best; "mean" (page-level and chunk-level averaged) is a row of
    benchmarks/tune_fusion.py."""
    return norm(pages(scored), "max")


def lexical_mean(scored) -> dict:
    return mean_present([p for p in (norm(pages(scored, lambda it: it.modality == "page"), "max"),
                                     norm(pages(scored, lambda it: it.modality != "page"), "max"))
                         if p])


def convex(b: dict, d: dict, a: float) -> list:
    keys = set(b) | set(d)
    return sorted(keys, key=lambda k: -(a * d.get(k, 0.0) + (1 - a) * b.get(k, 0.0)))


def item_rrf(lists) -> list:
    fused: dict = defaultdict(float)
    where = {}
    for r in lists.values():
        for rank, (it, _) in enumerate(r.items):
            fused[it.id] += 1 / (61 + rank)
            where[it.id] = (Path(it.name or it.source).name, it.page)
    return [where[i] for i in sorted(fused, key=lambda i: -fused[i])]


def page_means(index) -> tuple[list, np.ndarray]:
    rows = index.store._table.to_arrow().to_pylist()
    groups: dict = defaultdict(list)
    for r in rows:
        if r.get("has_text") and r["modality"] == "text":
            groups[(Path(r["name"] or r["source"]).name, r["page"])].append(r["vec_text"])
    keys = list(groups)
    mat = np.stack([np.mean(np.asarray(groups[k], np.float32), 0) for k in keys])
    return keys, mat / np.linalg.norm(mat, axis=1, keepdims=True)


def variants(lists, q_vec, keys, mat) -> dict[str, list]:
    b = lexical(lists["bm25"].items)
    dense_raw = pages(lists["text:text"].items) if "text:text" in lists else {}
    sims = mat @ q_vec
    top = np.argsort(-sims)[:50]
    page_dense = norm({keys[i]: float(sims[i]) for i in top}, "max")
    out = {"item-level RRF k=60 (default before issue 11)": item_rrf(lists)}
    for how in ("raw", "minmax", "z"):
        out[f"weighted alpha=0.3, dense {how} (shipped: over its best)"] = convex(
            b, norm(dense_raw, how), 0.3)
    out["page-level dense only (mean chunk vector)"] = convex({}, page_dense, 1.0)
    out["weighted alpha=0.3, dense = mean of chunk and page levels"] = convex(
        b, mean_present([norm(dense_raw, "max"), page_dense]), 0.3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index-dir", type=Path, required=True)
    args = ap.parse_args()
    os.environ.setdefault("LANCE_LOG", "error")
    from mmrag import Index
    from mmrag.eval import read_queries
    from mmrag.search.query import Query

    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for name in SETS:
        with Index(args.index_dir / name, show_progress=False) as idx:
            keys, mat = page_means(idx)
            searcher = idx._searcher()
            for q in read_queries(SHARED / name / "queries.jsonl", SHARED / name / "docs"):
                lists = searcher.retrieve(Query(text=q.query), 50, None, "hybrid")
                q_vec = idx.encoders["text"].encode_text([q.query])[0]
                for label, ranked in variants(lists, q_vec, keys, mat).items():
                    v = ndcg5(ranked, q.relevant)
                    scores[label][name]["all"].append(v)
                    scores[label][name][q.kind].append(v)
    first = next(iter(scores.values()))
    heads = [(s, k) for s in SETS for k in sorted(first[s], key=lambda k: (k != "all", k))]
    print(f"`python benchmarks/fusion_variants.py {' '.join(sys.argv[1:])}`\n")
    print("| variant | " + " | ".join(f"{s.split('-')[1]} {k}" for s, k in heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for label, per in scores.items():
        print(f"| {label} | " + " | ".join(f"{np.mean(per[s][k]):.3f}" for s, k in heads) + " |")


if __name__ == "__main__":
    main()
