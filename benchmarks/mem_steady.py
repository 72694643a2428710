"""RSS of one process adding and deleting documents on an index whose size stays the same.

    python benchmarks/mem_steady.py [--rounds 240] [--interval 30] [--store-option K=V]
        [--lance-only [--no-optimize] [--keep-versions S]]

Each round adds 1-3 new Markdown documents (10 chunks each, the server benchmark's
documents) and deletes the previous round's, so the index holds ~2,100 items throughout:
memory that keeps rising here is kept per write, not per row. ``--interval`` is
``ingest.optimize_interval_s`` (0: optimize after every add, as before it existed).
``--lance-only`` runs the same loop on a bare LanceDB table (merge_insert, delete, FTS
search, and ``optimize()`` every round unless ``--no-optimize``): what LanceDB itself keeps.
Prints RSS every 40 rounds.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import ENV, document  # noqa: E402


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def mmrag_loop(args: argparse.Namespace) -> None:
    os.environ.update(ENV)
    from mmrag import Index
    from mmrag.server.allocator import limit_arenas, trim

    limit_arenas()  # as `mmrag serve` does
    rng = random.Random(1)
    idx = Index(Path(tempfile.mkdtemp()) / "c", profile="offline", show_progress=False,
                ingest={"optimize_interval_s": args.interval},
                store={"options": dict(_option(o) for o in args.store_option)})
    idx.add([(f"doc{i:05d}.md", document(rng, i, 10)) for i in range(200)])
    idx.search("warm up")
    print(f"start: {rss_mib():.0f} MiB", flush=True)
    serial, previous = 0, []
    for r in range(args.rounds):
        files = []
        for _ in range(rng.randint(1, 3)):
            serial += 1
            files.append((f"up-{serial}.md", document(rng, 100_000 + serial, 10)))
        report = idx.add(files)
        if previous:
            idx.delete(previous)
        previous = list(report.added)
        trim()
        if r % 40 == 39:
            gc.collect()
            print(f"round {r + 1}: {rss_mib():.0f} MiB, {idx.info()['items']} items",
                  flush=True)


def lance_loop(args: argparse.Namespace) -> None:
    import lancedb
    import numpy as np
    import pyarrow as pa
    from lancedb.index import FTS

    rng = np.random.default_rng(0)
    words = np.array("harbour zeppelin hangar aluminium revenue quarter invoice ledger owl "
                     "newt kite lighthouse keeper whale".split())

    def batch(start: int, n: int) -> pa.Table:
        vecs = rng.standard_normal(n * 384).astype("float32")
        return pa.table({"id": [f"r{start + i}" for i in range(n)],
                         "text": [" ".join(rng.choice(words, 25)) for _ in range(n)],
                         "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs), 384)})

    session = lancedb.Session(index_cache_size_bytes=32 << 20,
                              metadata_cache_size_bytes=16 << 20)
    db = lancedb.connect(tempfile.mkdtemp(), read_consistency_interval=timedelta(0),
                         session=session)
    table = db.create_table("t", batch(0, 2000))
    table.create_index("text", config=FTS())
    serial, previous = 2000, None
    print(f"start: {rss_mib():.0f} MiB", flush=True)
    for r in range(args.rounds):
        rows = batch(serial, 25)
        serial += 25
        (table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
         .execute(rows))
        if previous:
            table.delete(f"id IN ({', '.join(repr(x) for x in previous)})")
        previous = rows["id"].to_pylist()
        if not args.no_optimize:
            table.optimize(cleanup_older_than=timedelta(seconds=args.keep_versions))
        table.search("harbour owl", query_type="fts").limit(5).to_list()
        if r % 40 == 39:
            gc.collect()
            print(f"round {r + 1}: {rss_mib():.0f} MiB, {len(table.list_versions())} "
                  "versions", flush=True)


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, float(value)
    except ValueError:
        return key, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=240)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--store-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a LanceDB store option (e.g. flat_max_rows=0)")
    ap.add_argument("--lance-only", action="store_true")
    ap.add_argument("--no-optimize", action="store_true")
    ap.add_argument("--keep-versions", type=float, default=0.0,
                    help="--lance-only: cleanup_older_than of each optimize, seconds")
    args = ap.parse_args()
    (lance_loop if args.lance_only else mmrag_loop)(args)


if __name__ == "__main__":
    main()
