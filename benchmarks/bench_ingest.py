"""PDF ingest throughput with a per-stage breakdown, against bare pypdfium2.

Two corpora:

* **text-layer**: a generated PDF of ``--pages`` letter pages, ~45 wrapped lines of
  ~85 characters each (about 3,600 characters, a dense real page), words drawn from a
  Zipf-distributed vocabulary so no two chunks are alike. Every page has a text layer, so
  nothing is OCR'd: this is the "text pages/s" figure.
* **mixed** (``--docs``, default ../shared/eval-sample/docs): real PDFs, two of them
  image-only, so OCR and figure extraction run too (cold OCR cache).

Bare = open, extract each page's text and render it at the same dpi: the floor any PDF
pipeline pays. Every run is a fresh subprocess, so model loading is excluded (done before
the clock starts) and peak RSS is its own. The stage seconds come from
``AddReport.timings`` (see ``mmrag/timing.py``): ``load`` contains parse, chunk, render,
figures and the wait for OCR; OCR is thread time.

    python benchmarks/bench_ingest.py [--pages 120] [--docs DIR] [--runs default static ...]
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
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE = """
import json, sys, time, resource
import pypdfium2 as pdfium
files, dpi = json.loads(sys.argv[1]), float(sys.argv[2])
t0 = time.perf_counter(); pages = 0
for f in files:
    pdf = pdfium.PdfDocument(f)
    for i in range(len(pdf)):
        page = pdf[i]
        tp = page.get_textpage(); tp.get_text_range(); tp.close()
        page.render(scale=dpi / 72).to_pil().convert("RGB")
        page.close(); pages += 1
    pdf.close()
dt = time.perf_counter() - t0
print(json.dumps({"pages": pages, "seconds": dt,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

MMRAG = """
import json, re, sys, time, resource
from mmrag import Index
files, where, overrides = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
# a fresh OCR cache per run: a warm one would make OCR'd pages free
overrides.setdefault("ingest", {})["ocr_cache"] = where + "-ocr-cache"
index = Index(where, show_progress=False, **overrides)
index.encoders, index.store  # model and store start-up are not per-page costs
t0 = time.perf_counter()
report = index.add(files)
dt = time.perf_counter() - t0
pages = sum(1 for r in index.documents() for i in r.item_ids if re.search(r":p\\d+$", i))
assert not report.failed, report.failed
print(json.dumps({"pages": pages, "seconds": dt, "items": report.items,
                  "timings": report.timings,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# name → (label, Index overrides)
RUNS: dict[str, tuple[str, dict]] = {
    "default": ("mmrag add, offline profile defaults (MiniLM, precision auto)",
                {"profile": "offline"}),
    "fp32": ("mmrag add, MiniLM forced to float32", {
        "profile": "offline", "encode": {"precision": "float32"}}),
    "static": ("mmrag add, `model2vec` text encoder (static, distilled from MiniLM)", {
        "profile": "offline", "encode": {"text_encoder": "model2vec"}}),
    "hashing": ("mmrag add, `hashing` text encoder (pipeline without a neural model)", {
        "profile": "offline", "encode": {"text_encoder": "hashing"}}),
}
STAGES = ("read", "load", "parse", "chunk", "render", "figures", "ocr", "media", "caption",
          "embed:text", "embed:visual", "store", "catalog", "optimize")


def dense_pages(n: int, seed: int = 0) -> list[str]:
    """``n`` pages of wrapped prose from a Zipf vocabulary: realistic length and variety."""
    rng = random.Random(seed)
    vocab = [w.strip(".,;:()").lower() for w in Path(__file__).read_text().split()]
    vocab = sorted({w for w in vocab if w.isalpha() and len(w) > 2})
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    pages = []
    for i in range(n):
        words = rng.choices(vocab, weights, k=560)
        body = textwrap.fill(f"Section {i + 1}. " + " ".join(words), width=85)
        pages.append("\n".join(body.splitlines()[:45]))
    return pages


def run(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(corpus: str, files: list[str], tmp: Path, dpi: float,
            runs: list[str]) -> dict[str, dict]:
    """Bare, then each mmrag run, every one into a fresh index folder of its own."""
    out = {"bare": run(BARE, json.dumps(files), str(dpi))}
    for name in runs:
        overrides = json.loads(json.dumps(RUNS[name][1]))
        overrides.setdefault("ingest", {})["pdf_dpi"] = dpi
        out[name] = run(MMRAG, json.dumps(files), str(tmp / f"idx-{corpus}-{name}"),
                        json.dumps(overrides))
    return out


def rate(r: dict) -> float:
    return r["pages"] / r["seconds"]


def table(title: str, results: dict[str, dict]) -> list[str]:
    bare = results["bare"]
    lines = [f"#### {title}", "", "| pipeline | pages | seconds | pages/s | vs bare | "
             "peak RSS MB |", "|---|---|---|---|---|---|",
             f"| bare pypdfium2 (text + render) | {bare['pages']} | {bare['seconds']:.2f} | "
             f"{rate(bare):.1f} | 1.00 | {bare['peak_mb']:.0f} |"]
    for name, r in results.items():
        if name != "bare":
            lines.append(f"| {RUNS[name][0]} | {r['pages']} | {r['seconds']:.2f} | "
                         f"**{rate(r):.1f}** | {rate(r) / rate(bare):.2f} | "
                         f"{r['peak_mb']:.0f} |")
    names = [n for n in results if n != "bare"]
    lines += ["", "Per-stage time, ms per page (indented stages run inside `load`; OCR is "
              "thread time):", "", "| stage | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    inner = {"parse", "chunk", "render", "figures", "ocr"}
    for stage in STAGES:
        cells = [results[n]["timings"].get(stage) for n in names]
        if all(c is None for c in cells):
            continue
        label = f"&nbsp;&nbsp;{stage}" if stage in inner else stage
        lines.append(f"| {label} | " + " | ".join(
            "-" if c is None else f"{1000 * c / results[n]['pages']:.1f}"
            for c, n in zip(cells, names, strict=True)) + " |")
    lines.append("| **total wall** | " + " | ".join(
        f"**{1000 * results[n]['seconds'] / results[n]['pages']:.1f}**" for n in names) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    default_docs = ROOT.parent / "shared" / "eval-sample" / "docs"
    ap.add_argument("--docs", type=Path, default=default_docs if default_docs.exists() else None)
    ap.add_argument("--pages", type=int, default=120, help="pages of the text-layer PDF")
    ap.add_argument("--dpi", type=float, default=110)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.md")
    args = ap.parse_args()
    from tests.factories import make_text_pdf

    tmp = Path(tempfile.mkdtemp(prefix="mmrag-bench-"))
    load_before = os.getloadavg()[0]
    try:
        text_pdf = tmp / "text-layer.pdf"
        text_pdf.write_bytes(make_text_pdf(dense_pages(args.pages)))
        text = measure("text", [str(text_pdf)], tmp, args.dpi, args.runs)
        mixed = None
        files = sorted(args.docs.glob("*.pdf")) if args.docs is not None else []
        if files:
            mixed = measure("mixed", [str(p) for p in files], tmp, args.dpi, ["default"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cmd = ("python benchmarks/bench_ingest.py " + " ".join(sys.argv[1:])).strip()
    lines = ["### PDF ingest: pages/s and where the time goes", "",
             f"`{cmd}` — {args.dpi:.0f} dpi, 2-core CPU, load average "
             f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (other jobs on "
             f"the box inflate every figure).", ""]
    lines += table(f"Text-layer PDF: {args.pages} dense pages (~3,600 characters each)", text)
    if mixed is not None:
        lines += table(f"Mixed real PDFs ({args.docs.name}: {mixed['bare']['pages']} pages, "
                       f"2 image-only PDFs OCR'd, figures extracted, cold OCR cache)", mixed)
    text_out = "\n".join(lines)
    print(text_out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text_out)


if __name__ == "__main__":
    main()
