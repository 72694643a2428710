"""Ingest throughput of one folder: the single-process path against Ray with 1 and 2 workers.

The folder is made here: ``--pdfs`` text-layer PDFs of ``--pages`` pages each, as many
Markdown notes and as many PNG pictures (so every loader kind and both vector spaces of
the offline profile run). Each run is a fresh subprocess with a fresh index; Ray runs
start a local cluster of their own (no dashboard, 300 MB object store) before the clock
starts, so the figure is the ingest, not the cluster start-up (printed apart). A Ray
"worker" is one loading task slot plus one embedding actor, a logical CPU each: 2 workers
ask for 4 logical CPUs however many cores the machine has.

    python benchmarks/bench_ray.py [--pdfs 8] [--pages 4] [--encoder sentence-transformers]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = """
import json, re, sys, time
overrides, where, docs, workers = (json.loads(sys.argv[1]), sys.argv[2], sys.argv[3],
                                   int(sys.argv[4]))
t0 = time.perf_counter()
if workers:
    import ray
    ray.init(num_cpus=2 * workers, include_dashboard=False, log_to_driver=False,
             object_store_memory=300 * 2**20, _temp_dir=where + "-ray")
    overrides["ingest"] = {"executor": "ray", "ray_workers": workers}
start = time.perf_counter() - t0
from mmrag import Index
index = Index(where, show_progress=False, **overrides)
index.encoders, index.store  # the driver's model and store start-up are not ingest
t0 = time.perf_counter()
report = index.add(docs)
dt = time.perf_counter() - t0
assert not report.failed, report.failed
pages = sum(1 for r in index.documents() for i in r.item_ids if re.search(r":p\\d+$", i))
print(json.dumps({"docs": len(report.added), "pages": pages, "items": report.items,
                  "seconds": dt, "cluster_start": start}))
if workers:
    ray.shutdown()
"""

WORDS = ("harbour zeppelin ledger turbine basalt orchard quarterly revenue glacier copper "
         "lantern meadow invoice sailing volcano tariff marble compass ferry granite").split()


def make_folder(folder: Path, pdfs: int, pages: int) -> None:
    from tests.factories import make_png, make_text_pdf

    rng = random.Random(7)
    folder.mkdir(parents=True)

    def sentence(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

    for i in range(pdfs):
        (folder / f"report-{i}.pdf").write_bytes(make_text_pdf(
            [" ".join(sentence(12) for _ in range(8)) for _ in range(pages)]))
        (folder / f"notes-{i}.md").write_text(
            f"# Notes {i}\n\n" + "\n\n".join(sentence(20) for _ in range(6)))
        (folder / f"picture-{i}.png").write_bytes(make_png(WORDS[i % len(WORDS)], (160, 120)))


def run(where: Path, docs: Path, workers: int, encoder: str) -> dict:
    overrides = {"profile": "offline", "encode": {"text_encoder": encoder}}
    out = subprocess.run([sys.executable, "-c", RUN, json.dumps(overrides), str(where),
                          str(docs), str(workers)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode:
        raise SystemExit(f"run failed ({workers} workers):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pdfs", type=int, default=8)
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--encoder", default="sentence-transformers",
                    help="text encoder: sentence-transformers (MiniLM) | model2vec | hashing")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    load_before = os.getloadavg()
    try:
        docs = tmp / "docs"
        make_folder(docs, args.pdfs, args.pages)
        results = {}
        for name, workers in (("local", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
            results[name] = run(tmp / f"idx-{workers}", docs, workers, args.encoder)
            print(name, results[name], file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    base = results["local"]
    print(f"`python benchmarks/bench_ray.py --pdfs {args.pdfs} --pages {args.pages} "
          f"--encoder {args.encoder}` — {os.cpu_count()} cores, load average "
          f"{load_before[0]:.1f} before and {load_after[0]:.1f} after.\n")
    print("| run | docs | pages | items | seconds | docs/s | pages/s | vs local | "
          "cluster start s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = base["seconds"] / r["seconds"]
        start = f"{r['cluster_start']:.1f}" if name != "local" else "-"
        print(f"| {name} | {r['docs']} | {r['pages']} | {r['items']} | {r['seconds']:.2f} | "
              f"{r['docs'] / r['seconds']:.2f} | {r['pages'] / r['seconds']:.2f} | "
              f"{ratio:.2f} | {start} |")


if __name__ == "__main__":
    main()
