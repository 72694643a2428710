"""OCR throughput through the real PDF loader: image-only pages/s with a per-stage
breakdown (parse, page read + render, OCR render, OCR) and text-layer pages/s for
comparison. Pages are drawn in code; nothing is downloaded.

    python benchmarks/bench_ocr.py [--pages 20] [--lines 12] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrag.config import IngestSettings  # noqa: E402
from mmrag.ingest import pdf as pdf_module  # noqa: E402
from mmrag.ingest.ocr import get_engine  # noqa: E402
from mmrag.types import Blob  # noqa: E402
from tests.factories import make_text_pdf  # noqa: E402

SENTENCE = "Sliding window attention keeps the rolling buffer cache at {n} tokens"


def scan_pdf(pages: int, lines: int) -> bytes:
    font = ImageFont.load_default(size=30)
    frames = []
    for p in range(pages):
        img = Image.new("RGB", (1275, 1650), "white")  # US letter at 150 dpi
        draw = ImageDraw.Draw(img)
        for i in range(lines):
            draw.text((110, 120 + i * 48), SENTENCE.format(n=p * 100 + i), fill="black",
                      font=font)
        frames.append(img)
    buf = io.BytesIO()
    frames[0].save(buf, format="PDF", save_all=True, append_images=frames[1:],
                   resolution=150.0)
    return buf.getvalue()


class Timers:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.lock = threading.Lock()

    def wrap(self, name: str, fn):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with self.lock:
                    self.total[name] += time.perf_counter() - t
        return timed


def run(data: bytes, settings: IngestSettings, pages: int) -> tuple[float, dict[str, float]]:
    timers = Timers()
    saved = {n: getattr(pdf_module, n) for n in ("_open", "_read_page", "_ocr_render",
                                                  "_ocr_page")}
    names = {"_open": "parse (open)", "_read_page": "page read + render",
             "_ocr_render": "OCR render", "_ocr_page": "OCR (thread time)"}
    for n, fn in saved.items():
        setattr(pdf_module, n, timers.wrap(names[n], fn))
    try:
        t = time.perf_counter()
        seen = sum(1 for p in pdf_module.load_pdf(Blob("mem:b.pdf", data, "b.pdf",
                                                       "application/pdf"), settings)
                   if p.modality == "page")
        wall = time.perf_counter() - t
    finally:
        for n, fn in saved.items():
            setattr(pdf_module, n, fn)
    assert seen == pages, seen
    return wall, dict(timers.total)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  load avg: {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    get_engine("rapidocr").read(Image.new("RGB", (64, 64), "white"))
    print(f"engine load: {time.perf_counter() - t:.2f} s (once per process, excluded)")
    scans = scan_pdf(args.pages, args.lines)
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as cache:  # cold cache: every page is OCR'd
            s = IngestSettings(ocr_cache=cache, ocr_workers=workers)
            wall, stages = run(scans, s, args.pages)
            print(f"\nimage-only, ocr_workers={workers or os.cpu_count()}: {args.pages} pages "
                  f"in {wall:.2f} s = {args.pages / wall:.2f} pages/s")
            for name, sec in stages.items():
                print(f"  {name:22s} {sec:7.2f} s  ({sec / args.pages * 1000:.0f} ms/page)")
            wall2, _ = run(scans, s, args.pages)
            print(f"  re-add (cache warm): {wall2:.2f} s = {args.pages / wall2:.1f} pages/s")
    prose = [" ".join(SENTENCE.format(n=p * 100 + i) + "." for i in range(args.lines))
             for p in range(args.pages)]
    text = make_text_pdf(prose)
    wall, stages = run(text, IngestSettings(), args.pages)
    print(f"\ntext-layer: {args.pages} pages in {wall:.2f} s = {args.pages / wall:.1f} pages/s")
    for name, sec in stages.items():
        print(f"  {name:22s} {sec:7.2f} s")


if __name__ == "__main__":
    main()
