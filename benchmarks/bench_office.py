"""Office ingest speed (issue #12): pages per second of the office loaders with and
without LibreOffice page renders, against ``soffice --convert-to pdf`` alone on the same
files, and peak memory.

    python benchmarks/bench_office.py [--docs ../shared/eval-office/docs] [--repeat 3]
                                      [--out benchmarks/results/office.md]

Inputs: the office files of ``--docs`` (docx, pptx, xlsx, odt, odp, ods, doc, ppt, xls,
rtf), plus three documents made in code by the tests' builders (a 3-page DOCX, a 3-slide
PPTX, a 3-sheet XLSX). Per file and mode, the median of ``--repeat`` runs after one
warm-up (LibreOffice's first start builds its profile):

- ``structure``: the loader with ``ingest.office_renders = false`` (parse, tables,
  pictures decoded; OCR off everywhere, to time the office path itself);
- ``renders``: the loader with renders (adds the LibreOffice conversion and the PDF
  page renders at ``ingest.pdf_dpi``);
- ``soffice``: ``soffice --headless --convert-to pdf`` alone, same flags and profile.

Pages = the document's pages as the index numbers them (slides, sheets, rendered word
pages). Memory: peak RSS growth of this process during the load (sampled every 10 ms)
and peak RSS of the soffice processes it started.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from mmrag.config import IngestSettings  # noqa: E402
from mmrag.ingest import containers, load, loader_for, sniff  # noqa: E402
from mmrag.ingest.office import convert as lo  # noqa: E402
from mmrag.types import Blob  # noqa: E402

OFFICE_EXT = {".docx", ".pptx", ".xlsx", ".odt", ".odp", ".ods", ".doc", ".ppt", ".xls",
              ".rtf"}


class Peak:
    """Peak RSS growth of this process and peak RSS of its soffice children."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.grow = 0
        self.child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.grow = max(self.grow, self.proc.memory_info().rss - self.base)
            try:
                kids = self.proc.children(recursive=True)
                self.child = max(self.child, sum(k.memory_info().rss for k in kids))
            except psutil.Error:
                pass
            time.sleep(0.01)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def inputs(docs: Path) -> list[tuple[str, bytes]]:
    files = [(p.name, p.read_bytes()) for p in sorted(docs.iterdir())
             if p.suffix.lower() in OFFICE_EXT]
    from tests.ingest.office_docs import make_docx, make_pptx, make_xlsx

    files += [("made-3-pages.docx", make_docx(pages=3)), ("made-3-slides.pptx", make_pptx()),
              ("made-3-sheets.xlsx", make_xlsx(long_rows=60))]
    return files


def run_loader(name: str, data: bytes, settings: IngestSettings) -> tuple[int, int]:
    """(pages, pieces) of one load."""
    mime = sniff(data, name)
    if mime in (containers.ZIP, containers.OLE2):  # as sources do: read the directory
        mime = containers.sniff_file(io.BytesIO(data), mime)
    if loader_for(mime) is None:
        raise SystemExit(f"{name}: no loader for {mime}")
    pieces = list(load(Blob(uri=name, data=data, name=name, mime=mime), settings))
    pages = {p.page for p in pieces}
    return len(pages), len(pieces)


def run_soffice(name: str, data: bytes, settings: IngestSettings) -> tuple[int, int]:
    import pypdfium2 as pdfium

    pdf = lo.convert(data, Path(name).suffix.lstrip("."), "pdf", name, settings)
    doc = pdfium.PdfDocument(pdf)
    try:
        return len(doc), 0
    finally:
        doc.close()


def timed(fn: Callable[[], tuple[int, int]], repeat: int) -> tuple[float, int, int, int, int]:
    """(median seconds, pages, pieces, peak RSS growth MiB, peak soffice RSS MiB)."""
    fn()  # warm-up
    times, grow, child = [], 0, 0
    pages = pieces = 0
    for _ in range(repeat):
        with Peak() as peak:
            t0 = time.perf_counter()
            pages, pieces = fn()
            times.append(time.perf_counter() - t0)
        grow, child = max(grow, peak.grow), max(child, peak.child)
    return statistics.median(times), pages, pieces, grow >> 20, child >> 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default=str(ROOT.parent / "shared" / "eval-office" / "docs"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "office.md"))
    args = ap.parse_args()
    if lo.soffice(IngestSettings()) is None:
        raise SystemExit("LibreOffice (soffice) is not installed: make install")
    base = IngestSettings(ocr="never", ocr_cache=tempfile.mkdtemp(prefix="bench-ocr-"))
    modes: dict[str, Callable[[str, bytes], tuple[int, int]]] = {
        "structure": lambda n, d: run_loader(n, d, base.model_copy(
            update={"office_renders": False})),
        "renders": lambda n, d: run_loader(n, d, base),
        "soffice": lambda n, d: run_soffice(n, d, base),
    }
    rows = []
    totals = {m: [0.0, 0] for m in modes}
    for name, data in inputs(Path(args.docs)):
        runs = {mode: timed(lambda fn=fn: fn(name, data), args.repeat)
                for mode, fn in modes.items()}
        pages = runs["renders"][1]  # the index's pages: slides, sheets, rendered pages
        row = [name, f"{len(data) / 1024:.0f}", str(pages)]
        for mode, (secs, _, pieces, grow, child) in runs.items():
            totals[mode][0] += secs
            totals[mode][1] += pages
            row += [f"{secs:.2f}", f"{pages / secs:.1f}"]
            row += [str(pieces), str(grow)] if mode != "soffice" else [str(child)]
            if mode == "renders":
                row.append(str(child))
        rows.append(row)
        print(" | ".join(row), flush=True)
    write(args, rows, totals)


def write(args: argparse.Namespace, rows: list[list[str]],
          totals: dict[str, list[float]]) -> None:
    cmd = "python benchmarks/bench_office.py" + (
        f" --repeat {args.repeat}" if args.repeat != 3 else "")
    cpu = psutil.cpu_count() or 0
    lines = [
        f"`{cmd}` — {cpu} CPU cores, shared; LibreOffice "
        f"{_lo_version()}; OCR off; median of {args.repeat} runs after a warm-up.",
        "",
        "Per file: seconds and pages/s for the loader without renders (structure), with "
        "LibreOffice renders, and `soffice --convert-to pdf` alone; pages = the index's "
        "pages of the document (slides, sheets, rendered word pages), the same count for "
        "every mode; pieces = items the loader gives; memory = peak RSS growth of the "
        "Python process (MiB), and peak RSS of the soffice processes (MiB).",
        "",
        "| file | KiB | pages | structure s | pages/s | pieces | RSS+ MiB | renders s | "
        "pages/s | pieces | RSS+ MiB | soffice MiB | soffice alone s | pages/s | "
        "soffice MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "| mode | total s | pages | pages/s |", "|---|---:|---:|---:|"]
    for mode, (secs, pages) in totals.items():
        lines.append(f"| {mode} | {secs:.2f} | {int(pages)} | {pages / secs:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _lo_version() -> str:
    import subprocess

    exe = lo.soffice(IngestSettings())
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        return " ".join(out.stdout.split()[1:2]) or "?"
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
