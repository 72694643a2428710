"""Scale benchmark: IVF-PQ on disk at 1M / 10M synthetic 384-d vectors, and the
flat-vs-index crossover of small LanceDB stores.

Data (384-d, MiniLM's width, L2-normalised, seeded):

* ``latent`` (default, like real embeddings): 1000 gaussian clusters (spread 0.3–0.6,
  unequal weights) in a 48-d latent space mapped to 384-d by one fixed random
  projection, plus isotropic noise of norm ≈ 0.1 (as ``bench_query.py``'s, at 384-d);
* ``blobs`` (hard case): ``--clusters`` gaussian blobs on the sphere with isotropic
  384-d noise of norm ≈ ``--noise``: neighbours are nearly equidistant, PQ codes cannot
  order them.

Chunk ``c`` is generated from seed ``(seed, c)``, so the rows are never held in memory at
once: the table is written chunk by chunk and the exact top-10 of the 100 held-out
queries is computed chunk by chunk with numpy (the ground truth for recall@10).

    python benchmarks/bench_scale.py scale --rows 1000000 --workdir /tmp/scale
    python benchmarks/bench_scale.py crossover --rows 5000 20000 50000

``scale`` writes a bare LanceDB table (``id``, ``vector``), builds IVF_PQ
(``num_partitions`` ≈ sqrt(rows), ``--sub-vectors`` codes) and times queries at several
``nprobes``/``refine_factor`` settings; ``crossover`` times ``LanceStore.dense`` on
stores below and above ``flat_max_rows``: flat scan, the store's in-memory exact path
and an IVF index. Both print a markdown table (and append it to ``--out``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
CHUNK = 250_000
K = 10


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def centres(clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 999_999])
    c = rng.normal(size=(clusters, DIM)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


LATENT: dict = {}


def latent_model(seed: int, latent_dim: int = 48, clusters: int = 1000) -> dict:
    rng = np.random.default_rng([seed, 777_777])
    return {"proj": (rng.normal(size=(latent_dim, DIM)) / np.sqrt(latent_dim)).astype(
                np.float32),
            "means": rng.normal(size=(clusters, latent_dim)).astype(np.float32),
            "spread": rng.uniform(0.3, 0.6, clusters).astype(np.float32),
            "weights": rng.dirichlet(np.full(clusters, 2.0))}


def chunk(c: int, n: int, cent: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Rows of chunk ``c`` (deterministic in (seed, c))."""
    rng = np.random.default_rng([seed, c])
    if LATENT:
        means, spread = LATENT["means"], LATENT["spread"]
        pick = rng.choice(len(means), n, p=LATENT["weights"])
        z = means[pick] + rng.normal(size=(n, means.shape[1])).astype(
            np.float32) * spread[pick, None]
        x = z @ LATENT["proj"]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x += rng.normal(0, 0.1 / np.sqrt(DIM), (n, DIM)).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    pick = rng.integers(0, len(cent), n)
    x = cent[pick] + rng.normal(0, noise / np.sqrt(DIM), (n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def chunks(rows: int, cent: np.ndarray, noise: float, seed: int):
    for c, start in enumerate(range(0, rows, CHUNK)):
        yield start, chunk(c, min(CHUNK, rows - start), cent, noise, seed)


def ground_truth(queries: np.ndarray, rows: int, cent: np.ndarray, noise: float,
                 seed: int) -> np.ndarray:
    """Exact top-K ids by dot product, merged chunk by chunk."""
    best_s = np.full((len(queries), K), -np.inf, np.float32)
    best_i = np.zeros((len(queries), K), np.int64)
    for start, x in chunks(rows, cent, noise, seed):
        s = queries @ x.T
        top = np.argpartition(-s, K, axis=1)[:, :K]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + start], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :K]
        best_s = np.take_along_axis(cand_s, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    return best_i


def du_gib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**30


def timed_queries(table, queries: np.ndarray, nprobes: int, refine: int,
                  truth: np.ndarray | None) -> tuple[float, float, float | None]:
    lat, recall = [], []
    for q in queries[:5]:  # warm-up: index and file caches
        table.search(q).distance_type("dot").nprobes(nprobes).limit(K).to_arrow()
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        s = table.search(q).distance_type("dot").nprobes(nprobes).limit(K).select(["id"])
        if refine:
            s = s.refine_factor(refine)
        got = s.to_arrow()["id"].to_numpy()
        lat.append((time.perf_counter() - t0) * 1000)
        if truth is not None:
            recall.append(len(set(got.tolist()) & set(truth[i].tolist())) / K)
    p50, p95 = np.percentile(lat, [50, 95])
    return float(p50), float(p95), float(np.mean(recall)) if recall else None


def run_scale(args: argparse.Namespace) -> str:
    import lancedb
    import pyarrow as pa
    from lancedb.index import IvfPq

    work = Path(args.workdir) / f"scale_{args.rows}_{args.data}"
    cent = centres(args.clusters, args.seed)
    queries = chunk(10**6, args.queries, cent, args.noise, args.seed)  # held out
    t0 = time.perf_counter()
    truth = ground_truth(queries, args.rows, cent, args.noise, args.seed)
    gt_s = time.perf_counter() - t0
    db = lancedb.connect(str(work))
    reuse = args.reuse and (work / "vectors.lance").exists()
    if reuse:
        table = db.open_table("vectors")
        write_s = float("nan")
    else:
        if work.exists():
            shutil.rmtree(work)
        schema = pa.schema([pa.field("id", pa.int64()),
                            pa.field("vector", pa.list_(pa.float32(), DIM))])
        table = db.create_table("vectors", schema=schema,
                                storage_options={"new_table_data_storage_version": "2.1"})
        t0 = time.perf_counter()
        for start, x in chunks(args.rows, cent, args.noise, args.seed):
            table.add(pa.table({
                "id": np.arange(start, start + len(x), dtype=np.int64),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), DIM)}))
            print(f"  wrote {start + len(x):,} rows ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
        write_s = time.perf_counter() - t0
    raw_gib = du_gib(work)
    parts = args.partitions or int(round(np.sqrt(args.rows)))
    build_s = float("nan")
    if not reuse or not table.list_indices() or args.rebuild:
        t0 = time.perf_counter()
        table.create_index("vector", config=IvfPq(distance_type="dot", num_partitions=parts,
                                                   num_sub_vectors=args.sub_vectors),
                           replace=True)
        build_s = time.perf_counter() - t0
    build_peak = peak_rss_gib()
    total_gib = du_gib(work)
    rows = []
    for setting in args.settings.split(";"):
        nprobes, refine = (int(v) for v in setting.split(","))
        p50, p95, rec = timed_queries(table, queries, nprobes, refine, truth)
        rows.append(f"| {args.rows:,} | IVF_PQ {parts} parts × {args.sub_vectors} codes | "
                    f"{nprobes} | {refine} | {p50:.1f} / {p95:.1f} | {rec:.3f} | "
                    f"{rss_gib():.2f} |")
    load = os.getloadavg()
    head = (f"\n### {args.rows:,} vectors × {DIM}-d\n\n"
            f"Command: `python benchmarks/bench_scale.py {shlex.join(sys.argv[1:])}`\n\n"
            f"Data: {args.data}. Write {write_s:.0f} s (chunks of {CHUNK:,}), "
            f"ground truth (numpy, chunked) "
            f"{gt_s:.0f} s, index build {build_s:.0f} s, peak RSS of the process "
            f"{build_peak:.2f} GiB, table on disk {raw_gib:.2f} GiB without / "
            f"{total_gib:.2f} GiB with the index ({total_gib - raw_gib:.2f} GiB index). "
            f"Load average after the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            f"on {os.cpu_count()} cores.\n\n"
            "| rows | index | nprobes | refine_factor | p50 / p95 ms | recall@10 | "
            "RSS GiB after queries |\n|---|---|---|---|---|---|---|\n")
    out = head + "\n".join(rows) + "\n"
    if args.drop:
        shutil.rmtree(work, ignore_errors=True)
    return out


def run_crossover(args: argparse.Namespace) -> str:
    from mmrag.store.lance import LanceStore
    from mmrag.types import Item

    cent = centres(args.clusters, args.seed)
    queries = chunk(10**6, args.queries, cent, args.noise, args.seed)
    out = [f"\n### Flat vs in-memory exact vs IVF index (LanceStore.dense, {DIM}-d, k={K})\n",
           f"Command: `python benchmarks/bench_scale.py {shlex.join(sys.argv[1:])}`\n",
           "| rows | LanceDB flat p50 / p95 ms (CPU ms) | in-memory exact p50 / p95 ms "
           "(CPU ms; first query incl. loading the matrix) | IVF_SQ p50 / p95 ms (CPU ms) "
           "| IVF_SQ recall@10 |",
           "|---|---|---|---|---|"]
    for n in args.rows_list:
        work = Path(args.workdir) / f"cross_{n}"
        shutil.rmtree(work, ignore_errors=True)
        x = chunk(0, n, cent, args.noise, args.seed)
        items = [Item(id=f"r{i}", doc_id=f"d{i // 10}", source=f"/s/{i // 10}.txt",
                      modality="text", text=f"row {i}") for i in range(n)]
        truth = np.argsort(-(queries @ x.T), axis=1)[:, :K]
        stores, lat, recall, cpu = {}, {}, {}, {}
        for mode, opts in (("flat", {"flat_max_rows": 0, "ann_min_rows": 10**12}),
                           ("memory", {"flat_max_rows": 10**12, "ann_min_rows": 10**12}),
                           ("ivf", {"flat_max_rows": 0, "ann_min_rows": 1})):
            store = LanceStore(str(work / mode), spaces={"text": DIM}, **opts)
            for i in range(0, n, 10_000):
                store.add(items[i:i + 10_000], {"text": x[i:i + 10_000]})
            store.optimize()
            stores[mode], lat[mode], recall[mode] = store, [], []
            cpu[mode] = []
        first = {}
        # interleaved query by query, so the machine's load hits every mode alike
        for i, q in enumerate(queries):
            for mode, store in stores.items():
                t0, c0 = time.perf_counter(), time.process_time()
                hits = store.dense("text", q, K)
                ms = (time.perf_counter() - t0) * 1000
                if mode not in first:
                    first[mode] = ms
                else:
                    lat[mode].append(ms)
                    cpu[mode].append((time.process_time() - c0) * 1000)
                got = {int(it.id[1:]) for it, _ in hits}
                recall[mode].append(len(got & set(truth[i].tolist())) / K)
        results = {}
        for mode, store in stores.items():
            p50, p95 = np.percentile(lat[mode], [50, 95])
            results[mode] = (p50, p95, first[mode], float(np.mean(recall[mode])),
                             float(np.median(cpu[mode])))
            store.close()
        f, m, v = results["flat"], results["memory"], results["ivf"]
        out.append(f"| {n:,} | {f[0]:.1f} / {f[1]:.1f} ({f[4]:.1f}) | {m[0]:.1f} / "
                   f"{m[1]:.1f} ({m[4]:.1f}; first {m[2]:.0f}) | {v[0]:.1f} / {v[1]:.1f} "
                   f"({v[4]:.1f}) | {v[3]:.3f} |")
        assert f[3] == 1.0 and m[3] == 1.0, (f, m)  # both exact paths must be exact
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    out.append(f"\nLoad average after the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
               f"on {os.cpu_count()} cores; {args.queries} held-out queries, the first "
               f"excluded from p50/p95; CPU ms = median process CPU time per query (all "
               f"threads), less sensitive to the neighbours' load than wall time.\n")
    return "\n".join(out) + "\n"


def run_footprint(args: argparse.Namespace) -> str:
    """Bytes per page of an offline-profile index of dense text pages: store rows (text,
    metadata, vectors of every space), media renders, catalog."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_ingest import dense_pages
    from mmrag import Index
    from tests.factories import make_text_pdf

    work = Path(args.workdir) / "footprint"
    shutil.rmtree(work, ignore_errors=True)
    docs = work / "docs"
    docs.mkdir(parents=True)
    per_doc = 10
    pages = dense_pages(args.pages)
    for i in range(0, args.pages, per_doc):
        (docs / f"doc{i // per_doc:03d}.pdf").write_bytes(make_text_pdf(pages[i:i + per_doc]))
    t0 = time.perf_counter()
    with Index(work / "idx") as index:
        index.add(docs, show_progress=False)
        index.optimize()
        items, spaces = index.store.count(), index.info()["spaces"]
    add_s = time.perf_counter() - t0
    store_b = sum(f.stat().st_size for f in (work / "idx" / "lancedb").rglob("*") if f.is_file())
    media_b = sum(f.stat().st_size for f in (work / "idx" / "media").rglob("*") if f.is_file())
    cat_b = sum(f.stat().st_size for f in (work / "idx").glob("catalog.sqlite*"))
    n = args.pages
    load = os.getloadavg()
    out = [f"\n### Footprint per page (offline profile, {n} dense text pages, "
           f"{n // per_doc} PDFs)\n",
           f"Command: `python benchmarks/bench_scale.py {shlex.join(sys.argv[1:])}`\n",
           f"Spaces {spaces}; add + optimize {add_s:.0f} s ({n / add_s:.1f} pages/s; load "
           f"average {load[0]:.1f} on {os.cpu_count()} cores, so slower than "
           f"benchmarks/results/ingest.md).\n",
           "| what | total | per page | per item |", "|---|---|---|---|",
           f"| store rows (items) | {items:,} | {items / n:.1f} | 1 |",
           f"| LanceDB folder (rows, vectors, FTS, scalar indexes) | {store_b / 2**20:.1f} MiB"
           f" | {store_b / n / 1024:.1f} KiB | {store_b / items / 1024:.2f} KiB |",
           f"| media (page renders, JPEG q85 at 110 dpi) | {media_b / 2**20:.1f} MiB | "
           f"{media_b / n / 1024:.1f} KiB | - |",
           f"| catalog.sqlite | {cat_b / 2**10:.0f} KiB | {cat_b / n:.0f} B | - |"]
    shutil.rmtree(work, ignore_errors=True)
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("scale", "crossover", "footprint"):
        s = sub.add_parser(name)
        s.add_argument("--workdir", default="/tmp/bench_scale")
        s.add_argument("--clusters", type=int, default=2000)
        s.add_argument("--noise", type=float, default=0.5)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--queries", type=int, default=100)
        s.add_argument("--out", default="")
        s.add_argument("--data", choices=["latent", "blobs"], default="latent")
    s = sub.choices["scale"]
    s.add_argument("--rows", type=int, default=1_000_000)
    s.add_argument("--partitions", type=int, default=0, help="0 = sqrt(rows)")
    s.add_argument("--sub-vectors", type=int, default=48)
    s.add_argument("--settings", default="10,0;20,0;20,5;40,10",
                   help="nprobes,refine_factor pairs separated by ';'")
    s.add_argument("--reuse", action="store_true", help="keep a table already written")
    s.add_argument("--drop", action="store_true", help="delete the table afterwards")
    s.add_argument("--rebuild", action="store_true", help="with --reuse: build the index "
                   "again (other --sub-vectors / --partitions)")
    c = sub.choices["crossover"]
    c.add_argument("--rows", dest="rows_list", type=int, nargs="+",
                   default=[5_000, 20_000, 50_000])
    sub.choices["footprint"].add_argument("--pages", type=int, default=60)
    args = p.parse_args()
    if args.data == "latent":
        LATENT.update(latent_model(args.seed))
    run = {"scale": run_scale, "crossover": run_crossover, "footprint": run_footprint}
    text = run[args.cmd](args)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
