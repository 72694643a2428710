"""Late-interaction (ColPali MaxSim) cost on synthetic pages of the real shape.

    python benchmarks/bench_maxsim.py                      # 10k pages × 1030 tokens × 128
    python benchmarks/bench_maxsim.py --pages 2000 --pool-pages 300   # quick look

Synthetic data (no model needed, deterministic by --seed):

* 4096 global "concept" centres and 8 "background" centres (unit vectors, dim 128).
* Each page picks 16 concepts; 40 % of its 1030 tokens scatter around one background
  centre (the white-margin / blank patches every real page has), 60 % around its concepts.
  Token = normalise(centre + 0.5 · N(0, I/dim)), cosine ≈ 0.9 to its centre. Concepts recur
  across ~40 pages each, so a query partly matches many pages and the top 5 is a real
  ranking, not one hit plus noise; background redundancy is what token pooling removes.
* Each query targets one page: 20 tokens around 5 of that page's 16 concepts, same noise.

Measured: bytes per page per layout; per-query latency of exact MaxSim over all pages
(float16 stored, upcast per chunk), Hamming MaxSim over binary, pooled MaxSim, and the
two-stage path (mean vector top-100 by brute-force inner product, standing in for the
store's ANN, then exact float16 MaxSim over those 100); top-5 agreement of each with exact
float32 MaxSim. Ward pooling costs ~70 ms a page, so pooled numbers use the first
--pool-pages pages (their own exact top 5) and the full-corpus latency is scaled from them.

PLAID-style rows run the product path end to end: the pages are written to a
``MultiVectorStore`` (float16 shards on disk under --workdir, memory-mapped), its
``build_centroids(k)`` trains k-means and encodes every page (timed: the ingest-time cost),
then per query ``CentroidIndex.search`` (centroid probing → page-vector MaxSim) gives the
candidates and ``late.rerank`` scores them exactly from the store. RAM per page counts the
whole centroid index (``CentroidIndex.nbytes``: centroids amortised, codes, int8 page
vectors, inverted lists, ids); the float16 matrices stay on disk, only candidates are read.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from mmrag.search.late import binarize, hamming_maxsim, maxsim, pool_tokens, rerank
from mmrag.store.multivec import MultiVectorStore

CONCEPTS, BACKGROUNDS, PER_PAGE, BG_SHARE, SIGMA = 4096, 8, 16, 0.4, 0.5


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_pages(rng, table, concepts, bg, tokens, dim):
    """(n, tokens, dim) float32 pages from their (n, PER_PAGE) concept ids and background."""
    n = len(concepts)
    pick = concepts[np.arange(n)[:, None], rng.integers(0, PER_PAGE, (n, tokens))]
    pick = np.where(rng.random((n, tokens)) < BG_SHARE, bg[:, None], pick)
    noise = rng.standard_normal((n, tokens, dim), dtype=np.float32) * (SIGMA / np.sqrt(dim))
    return unit(table[pick] + noise)


def multi_query_maxsim(queries, flat, tokens):
    """Exact fp32 MaxSim of all queries against equal-length pages in one product per chunk."""
    qcat = np.concatenate(queries).T.astype(np.float32)
    qstarts = np.cumsum([0] + [len(q) for q in queries[:-1]])
    n_pages = len(flat) // tokens
    out = np.zeros((len(queries), n_pages), dtype=np.float32)
    step = max(1, (1 << 17) // tokens)
    for p0 in range(0, n_pages, step):
        p1 = min(n_pages, p0 + step)
        sims = flat[p0 * tokens:p1 * tokens].astype(np.float32) @ qcat
        best = sims.reshape(p1 - p0, tokens, -1).max(axis=1)  # (pages, all query tokens)
        out[:, p0:p1] = np.add.reduceat(best, qstarts, axis=1).T
    return out


def top(scores, k):
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx])]


def agreement(a, b, k=5):
    return len(set(top(a, k).tolist()) & set(top(b, k).tolist())) / k


def timed(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=10_000)
    ap.add_argument("--tokens", type=int, default=1030)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=32)
    ap.add_argument("--query-tokens", type=int, default=20)
    ap.add_argument("--pool-pages", type=int, default=1000)
    ap.add_argument("--pool-factor", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--full-scan-queries", type=int, default=4,
                    help="queries timed for the (slow) full scans")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--centroids", default="1024,2048,4096",
                    help="k-means sizes of the PLAID-style rows (comma-separated)")
    ap.add_argument("--plaid", default="2:32,4:32,4:100",
                    help="nprobe:candidates settings of the PLAID-style rows")
    ap.add_argument("--workdir", default=None,
                    help="where the temporary MultiVectorStore goes (default: system temp)")
    args = ap.parse_args()
    P, T, D = args.pages, args.tokens, args.dim
    rng = np.random.default_rng(args.seed)
    table = unit(rng.standard_normal((CONCEPTS + BACKGROUNDS, D), dtype=np.float32))

    # -- page layouts and queries first, so the exact fp32 reference is computed chunk by
    # chunk while the fp32 tokens exist (only fp16/binary copies are kept: 5 GB otherwise)
    page_concepts = np.stack([rng.choice(CONCEPTS, PER_PAGE, replace=False) for _ in range(P)])
    page_bg = CONCEPTS + rng.integers(0, BACKGROUNDS, P)
    targets = rng.choice(min(P, args.pool_pages), args.queries, replace=False)
    queries = []
    for t in targets:
        chosen = rng.choice(page_concepts[t], 5, replace=False)
        pick = chosen[rng.integers(0, 5, args.query_tokens)]
        noise = rng.standard_normal((args.query_tokens, D), dtype=np.float32) * (SIGMA / np.sqrt(D))
        queries.append(unit(table[pick] + noise))

    t0 = time.perf_counter()
    ref_s = 0.0
    chunk = 250
    fp16 = np.empty((P, T, D), dtype=np.float16)
    bits = np.empty((P, T, -(-D // 8)), dtype=np.uint8)
    means = np.empty((P, D), dtype=np.float32)
    ref = np.empty((len(queries), P), dtype=np.float32)
    first_pool = []
    workdir = tempfile.mkdtemp(prefix="bench-maxsim-", dir=args.workdir)
    store = MultiVectorStore(os.path.join(workdir, "mv"), D)
    page_ids = [f"{i:016x}:p1" for i in range(P)]  # the shape of real item ids
    for p0 in range(0, P, chunk):
        p1 = min(P, p0 + chunk)
        pages = make_pages(rng, table, page_concepts[p0:p1], page_bg[p0:p1], T, D)
        t1 = time.perf_counter()
        ref[:, p0:p1] = multi_query_maxsim(queries, pages.reshape(-1, D), T)
        ref_s += time.perf_counter() - t1
        fp16[p0:p1] = pages
        store.add(page_ids[p0:p1], list(pages))
        bits[p0:p1] = np.packbits(pages > 0, axis=-1)
        means[p0:p1] = unit(pages.mean(axis=1))
        if p0 < args.pool_pages:
            first_pool.extend(pages[: max(0, min(p1, args.pool_pages) - p0)])
        del pages
    gen_s = time.perf_counter() - t0 - ref_s
    print(f"generated {P} pages in {gen_s:.0f}s + fp32 reference {ref_s:.0f}s", flush=True)
    flat16 = fp16.reshape(P * T, D)
    sub = np.stack(first_pool)
    ref32_sub = ref[:, :len(sub)]
    ref16 = multi_query_maxsim(queries[:4], flat16[:len(sub) * T], T)
    fp16_vs_fp32 = np.mean([agreement(a, b) for a, b in zip(ref16, ref32_sub, strict=False)])
    hit1 = np.mean([int(top(r, 1)[0]) == t for r, t in zip(ref, targets, strict=True)])

    offsets_all = np.arange(P + 1, dtype=np.int64) * T
    nq = min(args.full_scan_queries, len(queries))

    # -- exact fp16 over everything (one warm-up call: imports torch, faults pages in)
    maxsim(queries[0], (flat16[: 64 * T], offsets_all[:65]))
    exact_lat = [timed(lambda q=q: maxsim(q, (flat16, offsets_all)), 1)[1] for q in queries[:nq]]

    # -- binary Hamming over everything
    flat_bits = bits.reshape(P * T, -1)
    bin_scores, bin_lat = [], []
    for i, q in enumerate(queries):
        s, dt = timed(lambda q=q: hamming_maxsim(q, (flat_bits, offsets_all)), 1)
        bin_scores.append(s)
        if i < nq:
            bin_lat.append(dt)
        elif i >= 2 * nq:  # agreement on a few more queries, timing not needed
            break
    bin_agree = np.mean([agreement(r, s) for r, s in zip(ref, bin_scores, strict=False)])

    # -- two-stage: mean-vector top-k, exact fp16 MaxSim over the candidates
    def two_stage(q, k=args.candidates):
        cands = top(means @ unit(q.mean(axis=0)), k)
        docs = fp16[cands].reshape(-1, D)
        scores = maxsim(q, (docs, np.arange(len(cands) + 1, dtype=np.int64) * T))
        return cands[np.argsort(-scores)], scores

    two = {}
    for k in (args.candidates, 10 * args.candidates):
        agree, lat, rec, hits = [], [], [], []
        for q, r, t in zip(queries, ref, targets, strict=True):
            (order, _), dt = timed(lambda q=q, k=k: two_stage(q, k), 3)
            lat.append(dt)
            hits.append(int(order[0]) == t)
            agree.append(len(set(order[:5].tolist()) & set(top(r, 5).tolist())) / 5)
            rec.append(len(set(order.tolist()) & set(top(r, 5).tolist())) / 5)
        two[k] = (agree, lat, rec, hits)

    # -- binary scan top-k → fp16 rerank (memory-resident part: bits only)
    def bin_two_stage(q, k=args.candidates):
        cands = top(hamming_maxsim(q, (flat_bits, offsets_all)), k)
        docs = fp16[cands].reshape(-1, D)
        scores = maxsim(q, (docs, np.arange(len(cands) + 1, dtype=np.int64) * T))
        return cands[np.argsort(-scores)]

    bin2 = [bin_two_stage(q) for q in queries[:2 * nq]]
    bin2_agree = np.mean([agreement_order(o, r) for o, r in zip(bin2, ref, strict=False)])
    bin2_hit = np.mean([int(o[0]) == t for o, t in zip(bin2, targets, strict=False)])

    # -- pooled (Ward, factor f) on the subset
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        pooled = list(pool.map(pool_tokens, sub, [args.pool_factor] * len(sub), chunksize=8))
    pool_s = time.perf_counter() - t0
    pooled16 = [p.astype(np.float16) for p in pooled]
    pflat = np.concatenate(pooled16)
    poffs = np.zeros(len(pooled) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pooled], out=poffs[1:])
    pool_scores, pool_lat = [], []
    for q in queries:
        s, dt = timed(lambda q=q: maxsim(q, (pflat, poffs)), 1)
        pool_scores.append(s)
        pool_lat.append(dt)
    pool_agree = np.mean([agreement(r, s) for r, s in zip(ref32_sub, pool_scores, strict=True)])
    pooled_tokens = float(np.mean([len(p) for p in pooled]))
    # pooled + binary
    pbits = binarize(pflat.astype(np.float32))
    pb_scores = [hamming_maxsim(q, (pbits, poffs)) for q in queries]
    pb_agree = np.mean([agreement(r, s) for r, s in zip(ref32_sub, pb_scores, strict=True)])

    def hit(scores):
        firsts = [int(top(x, 1)[0]) == t for x, t in zip(scores, targets, strict=False)]
        return f"{np.mean(firsts):.2f}"

    scale = P / len(sub)
    per_page = {
        "fp32": T * D * 4, "fp16": T * D * 2,
        f"pooled f{args.pool_factor} fp16": pooled_tokens * D * 2,
        "binary": T * -(-D // 8),
        f"pooled f{args.pool_factor} + binary": pooled_tokens * -(-D // 8),
        "mean vector (ANN key)": D * 4,
    }
    ms = lambda xs: 1000 * float(np.median(xs))  # noqa: E731
    rows = [
        ("exact MaxSim, fp32 (reference)", per_page["fp32"], "-", "1.00", hit(ref),
         "computed in chunks"),
        ("exact MaxSim, fp16 stored (upcast per chunk)", per_page["fp16"],
         f"{ms(exact_lat):.0f}", f"{fp16_vs_fp32:.2f}", "-",
         f"latency: {nq} q over all {P} pages; agreement: 4 q, first {len(sub)} pages"),
        (f"pooled f{args.pool_factor} (Ward) fp16", per_page[f"pooled f{args.pool_factor} fp16"],
         f"{ms(pool_lat) * scale:.0f} (scaled ×{scale:.0f})", f"{pool_agree:.2f}",
         hit(pool_scores),
         f"first {len(sub)} pages, {pooled_tokens:.0f} tok/page"),
        ("binary Hamming MaxSim", per_page["binary"], f"{ms(bin_lat):.0f}", f"{bin_agree:.2f}",
         hit(bin_scores),
         f"{len(bin_scores)} q, all {P} pages"),
        (f"pooled f{args.pool_factor} + binary", per_page[f"pooled f{args.pool_factor} + binary"],
         "-", f"{pb_agree:.2f}", hit(pb_scores), f"first {len(sub)} pages"),
        *[(f"two-stage: mean-vector top-{k} → exact fp16", per_page["mean vector (ANN key)"],
           f"{ms(lat):.1f}", f"{np.mean(agree):.2f}", f"{np.mean(hits):.2f}",
           f"all {P} pages; exact top-5 in candidates {np.mean(rec):.2f}; RAM: means only, "
           f"fp16 read per query")
          for k, (agree, lat, rec, hits) in two.items()],
        (f"two-stage: binary scan top-{args.candidates} → exact fp16", per_page["binary"],
         f"≈{ms(bin_lat):.0f}", f"{bin2_agree:.2f}", f"{bin2_hit:.2f}",
         f"{2 * nq} q, all {P} pages"),
    ]
    plaid, builds = plaid_rows(store, page_ids, queries, ref, targets, args)
    store.close()
    shutil.rmtree(workdir, ignore_errors=True)
    rows += [(name, b, lat, agree, h, note) for name, b, lat, agree, h, note in plaid]

    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; "
          f"numpy {np.__version__}; generation {gen_s:.0f}s, reference {ref_s:.0f}s, "
          f"Ward pooling {1000 * pool_s / len(sub):.0f} ms/page ({args.jobs} procs)")
    print(f"exact fp32 top-1 = query's target page: {hit1:.2f}")
    for k, info, n_vec in builds:
        print(f"centroid index k={k}: k-means on {info['sample_tokens']} tokens "
              f"{info['kmeans_s']:.0f}s; encoding {1000 * info['encode_s'] / info['pages']:.1f} "
              f"ms/page (all {info['pages']} pages {info['encode_s']:.0f}s); "
              f"{n_vec:.0f} page vectors/page")
    print()
    print("| method | bytes/page in RAM for scoring | latency ms/query | top-5 agreement "
          "with exact fp32 | query's own page ranked 1st | notes |")
    print("|---|---:|---:|---:|---:|---|")
    for name, b, lat, agree, h, note in rows:
        print(f"| {name} | {b / 1024:.1f} KiB ({per_page['fp16'] / b:.1f}× < fp16) | {lat} | "
              f"{agree} | {h} | {note} |")


def plaid_rows(store, page_ids, queries, ref, targets, args):
    """Product path per k: build the store's centroid index, then per query centroid
    candidates → exact float16 MaxSim from the memory-mapped store."""
    rows, builds = [], []
    settings = [tuple(int(x) for x in pair.split(":")) for pair in args.plaid.split(",")]
    row_of = {pid: i for i, pid in enumerate(page_ids)}
    for k in (int(x) for x in args.centroids.split(",")):
        index = store.build_centroids(k, seed=args.seed)
        n_vec = np.mean([len(index.page(i).codes) for i in page_ids[:500]])
        builds.append((k, index.build_info, n_vec))
        mem = index.nbytes() / len(page_ids)
        for nprobe, ncand in settings:
            def query(q, index=index, nprobe=nprobe, ncand=ncand):
                t0 = time.perf_counter()
                cands, _ = index.search(q, nprobe, ncand)
                t1 = time.perf_counter()
                return cands, rerank(q, cands, store, k=5), t1 - t0

            query(queries[0])  # warm-up
            agree, rec, hits = [], [], []
            lat, stage1 = [], []
            for q, r, t in zip(queries, ref, targets, strict=True):
                (cands, ranked, s1), dt = timed(lambda q=q: query(q), 3)
                lat.append(dt)
                stage1.append(s1)
                exact = set(top(r, 5).tolist())
                order = [row_of[i] for i, _ in ranked]
                agree.append(len(set(order) & exact) / 5)
                rec.append(len({row_of[i] for i in cands} & exact) / 5)
                hits.append(order[0] == t)
            single = _single_blas_latency(query, queries)
            rows.append((f"PLAID-style: {k} centroids, nprobe {nprobe} → top-{ncand} → exact "
                         f"fp16", mem, f"{1000 * np.median(lat):.1f}", f"{np.mean(agree):.2f}",
                         f"{np.mean(hits):.2f}",
                         f"{len(queries)} q, all {len(page_ids)} pages; candidates "
                         f"{1000 * np.median(stage1):.1f} ms; exact top-5 in candidates "
                         f"{np.mean(rec):.2f}; numpy BLAS 1 thread: {single}"))
        store.centroid_index = None  # free it before the next k is built
    return rows, builds


def _single_blas_latency(query, queries):
    """Median latency with numpy's BLAS limited to one thread: the candidate stage makes a
    few small products, where a second BLAS thread waiting for a busy core costs more
    than it brings on a shared box."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "n/a (no threadpoolctl)"
    with threadpool_limits(1, user_api="blas"):
        lat = [timed(lambda q=q: query(q), 3)[1] for q in queries]
    return f"{1000 * np.median(lat):.1f} ms"


def agreement_order(order, ref, k=5):
    return len(set(order[:k].tolist()) & set(top(ref, k).tolist())) / k


if __name__ == "__main__":
    main()
