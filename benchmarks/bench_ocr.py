"""OCR throughput and accuracy through the real PDF loader (issue #3: >= 1 OCR page/s on
2 cores). Image-only US-letter scans with known text are drawn in code (nothing is
downloaded); every run reports pages/s, the per-stage time (OCR render, detection,
orientation + angle classifier, recognition) and how much of the drawn text came back.

    python benchmarks/bench_ocr.py [--pages 20] [--lines 12] [--workers 1 2]
                                   [--tesseract-workers 2] [--out benchmarks/results/ocr.md]

Rows: rapidocr per ``ocr_workers`` value (threads per page = cores // workers), rapidocr on
pages turned 0/90/180/270 in turn, the same PDF again with a warm OCR cache, tesseract
(``--oem 1 --psm 3``, ``OMP_THREAD_LIMIT=1``, pages in parallel) and a text-layer PDF.
Accuracy: character accuracy = 1 - edit distance / characters (whitespace collapsed,
case kept) and word recall (share of drawn words found, lower-cased).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmrag.config import IngestSettings  # noqa: E402
from mmrag.ingest import pdf as pdf_module  # noqa: E402
from mmrag.ingest.ocr import get_engine  # noqa: E402
from mmrag.types import Blob  # noqa: E402
from tests.factories import make_text_pdf  # noqa: E402

WORDS = ("attention window buffer cache token model layer vector index query page scan "
         "retrieval document figure table chart revenue quarter memory latency budget "
         "encoder decoder batch shard replica commit rollback schema column filter "
         "ranking recall precision image caption summary report invoice contract "
         "section appendix footnote margin paragraph").split()
TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
         270: Image.Transpose.ROTATE_270}

NOTES = """\
### What changed, and choices measured while building it

- Own stage loop (`mmrag.ingest.ocr_rapid`) instead of `RapidOCR.__call__` behind a separate
  orientation probe: one detection pass; tall boxes = vertical text, the angle classifier
  on the 8 longest lines = upside down, the page's lines turned together.
- The angle classifier reads three unsqueezed 4:1 windows of a line instead of the whole
  line squeezed into its 48 x 192 input (PaddleOCR's way): squeezed, 11-20 of 36 upright
  long lines per font (4 fonts) were called upside down; windowed, 144 of 144 right both
  ways up. The old pipeline flipped such lines one by one and lost them (3 of these
  pages: 5-9 of 12 lines lost, char accuracy 38%); a page-level vote alone would still
  mis-turn the page and cost a second recognition pass.
- Folded ONNX graphs (`mmrag.ingest.onnx_fold`: affine blocks into conv weights,
  hard-swish as `x * HardSigmoid(x)`, shifts as BatchNormalization so onnxruntime keeps
  its blocked layout): recognition 136 → 68 ms and detection 298 → 156 ms per call (one
  thread, best of 7, outputs equal to 2e-6); onnxruntime's memory arena back on.
- Detection on the page's content only (blank margins trimmed) at 960 px for the whole
  page: 736 px reads the same here, 640 px lost 8.5 pt text (char accuracy 78%).
- Recognition batches: per-column cost is flat up to ~1000 columns per call and grows
  past it (1 × 1200 columns 64 ms, 3 × 1200 73 ms per line), so only short crops share a
  call.
- `ocr_dpi` stays 200: at 150 dpi word recall fell to 79% (these pages) and 96% (9 pt
  DejaVu Serif) from 92% and 99.6%. Lowering recognition's 48 px input height to 40
  would save ~30% but is off the model's training size (mixed results per font).
- Default `ocr_workers=0` (= cores, one onnxruntime thread per page) kept: two pages at
  once on one thread each beat one page on two threads in every run.
- Most remaining errors are dropped spaces: the drawing font (Pillow's Aileron) has
  6 px spaces at 30 px; DejaVu Sans/Serif pages read at 99.9-100% char accuracy.
"""

BEFORE = """\
### Before (rapidocr's own `RapidOCR.__call__`, ocr_dpi=200, same machine)

`python benchmarks/bench_ocr.py --pages 20 --lines 12 --workers 1 2` (load avg 1.3-3):

| run | pages/s | parse | page read + render | OCR render | OCR (thread time) |
|---|---|---|---|---|---|
| image-only, ocr_workers=1 | 0.21 | 1 ms/page | 68 ms/page | 102 ms/page | 4746 ms/page |
| image-only, ocr_workers=2 | 0.23 | 0 ms/page | 108 ms/page | 158 ms/page | 8617 ms/page \
(2 threads) |
| image-only, re-add (cache warm) | 5.5-9.2 | | | | 0 |
| text-layer (no OCR) | 147 | 0 | 6.5 ms/page | - | - |

Single-page profile then (12 lines, 1700x2200 render): orientation probe 1.5 s (det on a
1024 px copy + angle classifier), detection 0.8 s (longest side 1280 px), classifier
0.03 s, recognition 3.6 s (~0.3 s per long line). Accuracy was not measured.
"""


# --- pages with known text ------------------------------------------------------------

def sentence(rng: random.Random, n: int) -> str:
    """~70 characters of words, a capital, a number and punctuation: harder than one
    repeated template, so character accuracy means something."""
    words = [rng.choice(WORDS).capitalize()]
    while len(" ".join(words)) < 60:
        words.append(rng.choice(WORDS))
    words.insert(rng.randrange(2, len(words)), str(n * 37 % 9973))
    return " ".join(words) + rng.choice([".", ",", ";", ":"])


def scan_pages(pages: int, lines: int, seed: int = 3) -> tuple[list[Image.Image], list[str]]:
    rng = random.Random(seed)
    font = ImageFont.load_default(size=30)
    images, truths = [], []
    for p in range(pages):
        img = Image.new("RGB", (1275, 1650), "white")  # US letter at 150 dpi
        draw = ImageDraw.Draw(img)
        text = [sentence(rng, p * 100 + i) for i in range(lines)]
        for i, line in enumerate(text):
            draw.text((110, 120 + i * 48), line, fill="black", font=font)
        images.append(img)
        truths.append("\n".join(text))
    return images, truths


def image_pdf(images: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:],
                   resolution=150.0)
    return buf.getvalue()


# --- accuracy -------------------------------------------------------------------------

def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, a row at a time in numpy: insertions along a row are a
    running minimum of ``cost[k] - k``, plus ``j``."""
    if not a or not b:
        return len(a) or len(b)
    bb = np.array([ord(c) for c in b])
    idx = np.arange(len(b) + 1)
    row = idx.copy()
    for i, ch in enumerate(a, 1):
        new = np.empty_like(row)
        new[0] = i
        new[1:] = np.minimum(row[1:] + 1, row[:-1] + (bb != ord(ch)))
        row = np.minimum.accumulate(new - idx) + idx
    return int(row[-1])


def norm(text: str) -> str:
    return " ".join(text.split())


def accuracy(truths: list[str], texts: list[str]) -> tuple[float, float]:
    errors = chars = found = total = 0
    for truth, text in zip(truths, texts, strict=True):
        t, o = norm(truth), norm(text)
        errors += edit_distance(t, o)
        chars += len(t)
        want = Counter(re.findall(r"[a-z0-9]+", truth.lower()))
        got = Counter(re.findall(r"[a-z0-9]+", text.lower()))
        found += sum((want & got).values())
        total += sum(want.values())
    return max(0.0, 1 - errors / chars), found / total


# --- timing ---------------------------------------------------------------------------

@dataclass
class Timers:
    """Wall time per stage, summed over threads (two pages in flight count twice)."""

    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with self.lock:
                    self.total[name] += time.perf_counter() - t
        return timed


STAGES = {"detect": "detection", "classify": "orientation + classifier",
          "recognize": "recognition"}
TESS_STAGES = {"orientation": "orientation + classifier", "read": "recognition"}


def cpu_seconds() -> float:
    """This process's CPU time, every thread, plus finished child processes (tesseract)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run(data: bytes, settings: IngestSettings, pages: int) -> tuple[float, dict, list[str]]:
    """Wall time, stage totals (plus ``cpu``: CPU seconds, every thread and subprocess)
    and page texts of one load_pdf pass."""
    from mmrag.ingest.ocr import TesseractEngine
    from mmrag.ingest.ocr_rapid import RapidOCREngine

    timers = Timers()
    patched: list[tuple[object, str, Callable]] = [
        (pdf_module, "_ocr_render", pdf_module._ocr_render),
        (pdf_module, "_ocr_page", pdf_module._ocr_page)]
    patched += [(RapidOCREngine, n, getattr(RapidOCREngine, n)) for n in STAGES]
    patched += [(TesseractEngine, n, getattr(TesseractEngine, n)) for n in TESS_STAGES]
    names = {"_ocr_render": "OCR render", "_ocr_page": "OCR total", **STAGES, **TESS_STAGES}
    for owner, n, fn in patched:
        setattr(owner, n, timers.wrap(names[n], fn))
    try:
        t, cpu = time.perf_counter(), cpu_seconds()
        found = [p.text for p in pdf_module.load_pdf(
            Blob("mem:b.pdf", data, "b.pdf", "application/pdf"), settings)
            if p.modality == "page"]
        wall = time.perf_counter() - t
        timers.total["cpu"] = cpu_seconds() - cpu
    finally:
        for owner, n, fn in patched:
            setattr(owner, n, fn)
    assert len(found) == pages, len(found)
    return wall, dict(timers.total), found


@dataclass
class Row:
    name: str
    pages: int
    wall: float
    stages: dict[str, float]
    acc: tuple[float, float] | None

    def cells(self) -> list[str]:
        per = {k: f"{v / self.pages * 1000:.0f}" for k, v in self.stages.items()}
        cls = per.get("orientation + classifier", "-")
        acc = (f"{self.acc[0] * 100:.1f}% / {self.acc[1] * 100:.1f}%" if self.acc else "-")
        cpu = self.stages["cpu"] / self.pages
        return [self.name, f"**{self.pages / self.wall:.2f}**", f"{cpu:.2f}",
                per.get("OCR render", "-"),
                per.get("detection", "-"), cls, per.get("recognition", "-"),
                per.get("OCR total", "-"), acc]


HEAD = ["run", "pages/s", "CPU s/page", "OCR render", "detection", "orientation + cls",
        "recognition", "OCR total (thread)", "char acc / word recall"]


def print_row(row: Row) -> None:
    print(" | ".join(row.cells()), flush=True)


def rapid_rows(args: argparse.Namespace, cache: Path) -> list[Row]:
    images, truths = scan_pages(args.pages, args.lines)
    data = image_pdf(images)
    rows = []
    for workers in args.workers:
        s = IngestSettings(ocr_cache=str(cache / f"w{workers}"), ocr_workers=workers)
        threads = max(1, (os.cpu_count() or 1) // workers)
        wall, stages, texts = run(data, s, args.pages)
        rows.append(Row(f"rapidocr, ocr_workers={workers} ({threads} thread"
                        f"{'s' if threads > 1 else ''} each)", args.pages, wall, stages,
                        accuracy(truths, texts)))
        print_row(rows[-1])
    wall, stages, texts = run(data, s, args.pages)
    rows.append(Row("rapidocr, re-add (cache warm)", args.pages, wall, stages,
                    accuracy(truths, texts)))
    print_row(rows[-1])
    turned = [img.transpose(TURNS[t]) if (t := (90 * i) % 360) else img
              for i, img in enumerate(images)]
    s = IngestSettings(ocr_cache=str(cache / "turned"))  # default ocr_workers
    wall, stages, texts = run(image_pdf(turned), s, args.pages)
    rows.append(Row("rapidocr, pages turned 0/90/180/270, default ocr_workers",
                    args.pages, wall, stages, accuracy(truths, texts)))
    print_row(rows[-1])
    return rows


def tesseract_row(args: argparse.Namespace, cache: Path) -> Row | None:
    if shutil.which("tesseract") is None:
        print("tesseract: binary missing, skipped")
        return None
    os.environ["OMP_THREAD_LIMIT"] = "1"  # one thread per page, pages in parallel
    images, truths = scan_pages(args.pages, args.lines)
    s = IngestSettings(ocr_cache=str(cache / "tess"), ocr_engine="tesseract",
                       ocr_workers=args.tesseract_workers)
    wall, stages, texts = run(image_pdf(images), s, args.pages)
    row = Row(f"tesseract 5 `--oem 1 --psm 3` + OSD, ocr_workers={args.tesseract_workers}",
              args.pages, wall, stages, accuracy(truths, texts))
    print_row(row)
    return row


def page_profile(args: argparse.Namespace, reps: int = 3) -> dict[str, float]:
    """CPU seconds per stage of one page on one thread, best of ``reps``: the least
    disturbed figure a shared machine gives (thread CPU time excludes waiting for a core,
    the minimum drops runs slowed by neighbours)."""
    import pypdfium2

    images, _ = scan_pages(1, args.lines)
    engine = get_engine("rapidocr", threads=1)
    pdf = pypdfium2.PdfDocument(image_pdf(images))
    best: dict[str, float] = defaultdict(lambda: float("inf"))
    for _ in range(reps):
        t = time.thread_time()
        page = pdf[0].render(scale=IngestSettings().ocr_dpi / 72).to_pil().convert("RGB")
        rgb = np.asarray(page)
        stages = {"OCR render": time.thread_time() - t}
        t = time.thread_time()
        quads = engine.detect(rgb)
        stages["detection"] = time.thread_time() - t
        t = time.thread_time()
        crops, tall, weight = engine._crops(rgb, quads)
        stages["crops"] = time.thread_time() - t
        t = time.thread_time()
        engine._orient(crops, tall, weight)
        stages["orientation + classifier"] = time.thread_time() - t
        t = time.thread_time()
        engine.recognize(crops)
        stages["recognition"] = time.thread_time() - t
        for k, v in stages.items():
            best[k] = min(best[k], v)
    pdf.close()
    best["total"] = sum(best.values())
    print("one page, 1 thread, best of 3 (CPU s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in best.items()), flush=True)
    return dict(best)


def text_layer_row(args: argparse.Namespace) -> Row:
    _, truths = scan_pages(args.pages, args.lines)
    wall, stages, texts = run(make_text_pdf(truths), IngestSettings(), args.pages)
    row = Row("text layer (no OCR)", args.pages, wall, stages, accuracy(truths, texts))
    print_row(row)
    return row


def report(args: argparse.Namespace, rows: list[Row], loads: tuple[float, float],
           load_s: float, profile: dict[str, float]) -> str:
    cmd = "python benchmarks/bench_ocr.py " + " ".join(sys.argv[1:])
    lines = [
        "# OCR throughput (issue #3)", "",
        f"Command (repo root, venv active): `{cmd.strip()}`", "",
        f"Machine: {os.cpu_count()} CPU cores shared with other engineers (load average "
        f"{loads[0]:.2f} before, {loads[1]:.2f} after), no GPU. Engine `rapidocr` "
        f"(rapidocr-onnxruntime models PP-OCRv4 det/rec + mobile v2 angle classifier, run "
        f"stage by stage by `mmrag.ingest.ocr_rapid` on folded graphs), "
        f"`ocr_dpi={IngestSettings().ocr_dpi}`, cold OCR cache, engine load "
        f"{load_s:.1f} s excluded. Pages: {args.pages} US-letter scans (image only, "
        f"150 dpi) of {args.lines} lines of ~70 characters, drawn in code. Stage columns are "
        f"thread time in ms/page (with 2 workers two pages overlap, so they add up to more "
        f"than the wall time).", "",
        "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    lines += ["", "One page on one thread, best of 3, CPU seconds per stage (least disturbed by "
              "the neighbours; 2 / total = pages/s two idle cores would give):", "",
              "| " + " | ".join(profile) + " |", "|" + "---|" * len(profile),
              "| " + " | ".join(f"{v:.3f}" for v in profile.values()) + " |",
              "", f"Idle 2-core estimate: **{2 / profile['total']:.2f} pages/s**."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tesseract-workers", type=int, default=2)
    ap.add_argument("--no-tesseract", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="write the markdown report here (e.g. benchmarks/results/ocr.md)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}  load avg: {load0:.2f}")
    t = time.perf_counter()
    for workers in args.workers:  # one engine per thread count; load time excluded
        get_engine("rapidocr", threads=max(1, (os.cpu_count() or 1) // workers))
    load_s = time.perf_counter() - t
    print(f"engine load: {load_s:.2f} s (once per process, excluded)")
    print(" | ".join(HEAD))
    with tempfile.TemporaryDirectory() as tmp:  # cold cache: every page is OCR'd
        rows = rapid_rows(args, Path(tmp))
        if not args.no_tesseract and (row := tesseract_row(args, Path(tmp))):
            rows.append(row)
    rows.append(text_layer_row(args))
    profile = page_profile(args)
    load1 = os.getloadavg()[0]
    print(f"load avg after: {load1:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(args, rows, (load0, load1), load_s, profile) + "\n"
                            + NOTES + "\n" + BEFORE)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
