"""End-to-end text query latency through ``Index.search`` (offline profile: MiniLM query
embedding, BM25, dense ANN, page-level fusion, grouping), model loaded.

Two indexes: the shared eval-sample documents as ingested (real items and vectors), and
a synthetic one of ``--items`` rows (default 100k) written straight to the store: text
drawn from the eval documents' own vocabulary (Zipf-like, so BM25 posting lists have
realistic lengths), page and chunk items, random unit vectors in the text space (what
ANN latency depends on is the row count and dim, not the meaning). The queries are the
92 questions of both shared sets. Prints a markdown block and writes it to
``benchmarks/results/search.md``.

    python benchmarks/bench_search.py [--items 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = ("eval-sample", "eval-office")


def queries() -> list[str]:
    out = []
    for name in SETS:
        for line in (SHARED / name / "queries.jsonl").read_text().splitlines():
            if line.strip():
                out.append(json.loads(line)["query"])
    return out


def timed_queries(index, texts: list[str], repeat: int) -> np.ndarray:
    for q in texts[:5]:  # warm-up: model load, caches
        index.search(q, k=10)
    lat = []
    for _ in range(repeat):
        for q in texts:
            t0 = time.perf_counter()
            index.search(q, k=10)
            lat.append(1000 * (time.perf_counter() - t0))
    return np.asarray(lat)


def vocabulary(index) -> list[str]:
    """Words of the eval index's own text, each repeated by its frequency."""
    words: list[str] = []
    for it in index.store.get(sorted(_all_ids(index))):
        words += re.findall(r"\w+", it.text.lower())
    return words or ["lorem", "ipsum"]


def _all_ids(index) -> set[str]:
    return {i for rec in index.catalog.all() for i in rec.item_ids}


def fill_synthetic(index, n: int, words: list[str], seed: int = 0) -> float:
    from mmrag.types import Item

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    dim = index.encoders["text"].dim
    t0 = time.perf_counter()
    batch = 10_000
    for start in range(0, n, batch):
        items, m = [], min(batch, n - start)
        for i in range(start, start + m):
            doc, page = divmod(i, 40)
            kind = "page" if page % 4 == 0 else "text"
            items.append(Item(id=f"syn{doc}:p{page // 4 + 1}:{kind}{i}", doc_id=f"syn{doc}",
                              source=f"syn{doc}.pdf", modality=kind, page=page // 4 + 1,
                              text=" ".join(rng.choices(words, k=300 if kind == "page" else 90)),
                              mime="application/pdf", name=f"syn{doc}.pdf"))
        vecs = nrng.normal(size=(m, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs[[k for k, it in enumerate(items) if it.modality == "page"]] = np.nan
        index.store.add(items, {"text": vecs})
    index.store.optimize()
    return time.perf_counter() - t0


def row(label: str, lat: np.ndarray, extra: str = "") -> str:
    p50, p95 = np.percentile(lat, [50, 95])
    return f"| {label} | {len(lat)} | {p50:.1f} | {p95:.1f} | {extra} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search.md")
    args = ap.parse_args()
    os.environ.setdefault("LANCE_LOG", "error")
    from mmrag import Index

    texts = queries()
    lines = ["### Query latency, offline profile, hybrid (model loaded)", "",
             f"`python benchmarks/bench_search.py {shlex.join(sys.argv[1:])}` — "
             f"{len(texts)} queries (both shared sets) × {args.repeat}, k = 10, grouped by "
             "page, on 2 cores.", "",
             "| index | queries | p50 ms | p95 ms | notes |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-search-") as tmp:
        with Index(Path(tmp) / "sample", show_progress=False) as idx:
            idx.add(str(SHARED / "eval-sample" / "docs"))
            items = idx.store.count()
            lat = timed_queries(idx, texts, args.repeat)
            lines.append(row(f"eval-sample documents ({items} items)", lat))
            words = vocabulary(idx)
        with Index(Path(tmp) / "big", show_progress=False) as idx:
            idx.add(str(SHARED / "eval-sample" / "docs"))
            secs = fill_synthetic(idx, args.items, words)
            total = idx.store.count()
            lat = timed_queries(idx, texts, args.repeat)
            lines.append(row(f"{total:,} items (eval-sample + {args.items:,} synthetic)", lat,
                             f"filled and optimized in {secs:.0f} s"))
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
