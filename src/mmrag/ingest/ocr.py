"""OCR for pages and images whose text the text layer misses; offline by default.

    from mmrag.ingest.ocr import ocr_image, needs_ocr
    result = ocr_image(img, settings)        # OCRResult: lines, rotation, text
    needs_ocr(page_text, width_pt * height_pt)

Engines (``ocr_engines`` registry, picked by ``ingest.ocr_engine``):

- ``rapidocr`` (default): PP-OCRv4 det/rec + angle classifier as ONNX models shipped in the
  ``rapidocr-onnxruntime`` wheel, so nothing is downloaded; driven stage by stage by
  :mod:`.ocr_rapid` (~1 CPU-second per 12-line page). onnxruntime releases the GIL, so
  pages OCR'd in threads run in parallel.
- ``tesseract``: ``pytesseract`` + the Debian ``tesseract-ocr tesseract-ocr-eng`` packages.

An engine is built once per process and thread count on first use (model load ~1 s) and
is safe to call from several threads. Every :class:`OCRLine` bbox is ``(x0, y0, x1, y1)``
in pixels of the image passed in (origin top-left), also when the image was read rotated.

Rotation (:func:`read_upright`): rapidocr decides it from its one detection pass (tall
boxes = vertical text, the angle classifier on the longest lines = upside down).
Tesseract asks its own OSD. Other engines are read at 0° first; when that reading is not
confident (low mean confidence, few characters, or mostly tall boxes) the 90°, 180° and
270° turns of a downscaled copy are scored by ``sum(confidence × characters)`` and the
best turn is read at full size.

Results are cached on disk as JSON, keyed by sha256 of the pixels + size + mode + engine
name (``ingest.ocr_cache``; default ``~/.cache/mmrag/ocr``), so re-adding a document is free.
Writes go to a temp file then ``os.replace``, so concurrent writers never leave half files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

from ..config import IngestSettings
from ..errors import MissingDependencyError
from ..registry import Registry

__all__ = ["OCREngine", "OCRLine", "OCRResult", "OCRCache", "get_engine", "is_garbled", "needs_ocr",
           "ocr_engines", "ocr_image", "MIN_SIDE"]

log = logging.getLogger(__name__)

MIN_SIDE = 32
"""Images with a side shorter than this (pixels) are not OCR'd: no legible text fits."""

_CACHE_VERSION = "2"  # bump when the stored format or the reading pipeline changes


@dataclass(frozen=True, slots=True)
class OCRLine:
    """One line of text; ``bbox`` is ``(x0, y0, x1, y1)`` in the source image's pixels."""

    text: str
    bbox: tuple[float, float, float, float]
    confidence: float


@dataclass(slots=True)
class OCRResult:
    """Lines in reading order (of the upright page) and the turn that made it upright:
    ``rotation`` degrees counter-clockwise applied to the image before reading."""

    lines: list[OCRLine] = field(default_factory=list)
    rotation: int = 0
    engine: str = ""

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class OCREngine(Protocol):
    """Reads the text of an upright image. Must be safe to call from several threads."""

    name: str

    def read(self, image: Image.Image) -> list[OCRLine]: ...


ocr_engines: Registry[OCREngine] = Registry("ocr engine")


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --- engines ----------------------------------------------------------------------------

@ocr_engines.register("rapidocr")
def _rapidocr(threads: int = 1) -> OCREngine:
    """Built lazily: onnxruntime and cv2 load only when a page is OCR'd."""
    from .ocr_rapid import RapidOCREngine

    return RapidOCREngine(threads=threads)


@ocr_engines.register("tesseract")
class TesseractEngine:
    """Tesseract through ``pytesseract`` (a subprocess per call, so thread-safe). It
    threads with OpenMP; ``OMP_THREAD_LIMIT=1`` with pages in parallel uses cores better."""

    name = "tesseract"
    config = "--oem 1 --psm 3"  # LSTM recogniser, automatic page segmentation

    def __init__(self, threads: int = 1, lang: str = "eng"):
        try:
            import pytesseract
        except ImportError:
            raise MissingDependencyError("OCR engine 'tesseract' (pytesseract)", "ocr") from None
        try:
            pytesseract.get_tesseract_version()
        except Exception:
            raise MissingDependencyError(
                "OCR engine 'tesseract' (apt-get install tesseract-ocr tesseract-ocr-eng)",
                "ocr") from None
        self.lang = lang
        self._tess = pytesseract

    def read(self, image: Image.Image, classify: bool = True) -> list[OCRLine]:
        data = self._tess.image_to_data(image.convert("RGB"), lang=self.lang,
                                        config=self.config,
                                        output_type=self._tess.Output.DICT)
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if str(word).strip() and float(data["conf"][i]) >= 0:
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                groups.setdefault(key, []).append(i)
        lines = []
        for idx in groups.values():
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            conf = sum(float(data["conf"][i]) for i in idx) / len(idx) / 100.0
            text = " ".join(str(data["text"][i]).strip() for i in idx)
            lines.append(OCRLine(text, (float(x0), float(y0), float(x1), float(y1)), conf))
        return lines

    def orientation(self, image: Image.Image) -> int | None:
        """Counter-clockwise turn that makes ``image`` upright, from Tesseract's OSD."""
        try:
            osd = self._tess.image_to_osd(image.convert("RGB"),
                                          output_type=self._tess.Output.DICT)
        except Exception:  # too little text for OSD, or no osd.traineddata
            return None
        # OSD's "rotate" is the clockwise turn that makes the page upright.
        return (360 - int(osd.get("rotate", 0))) % 360


_engines: dict[tuple[str, int], OCREngine] = {}
_engines_lock = threading.RLock()  # an engine may wrap another (get_engine inside)


def get_engine(name: str = "rapidocr", threads: int = 1) -> OCREngine:
    """The process-wide engine called ``name`` (registry name or dotted path) running
    ``threads`` threads per call, built once: model load costs ~1 s."""
    with _engines_lock:
        engine = _engines.get((name, threads))
        if engine is None:
            engine = _engines[(name, threads)] = ocr_engines.create(name, threads=threads)
        return engine


# --- rotation ---------------------------------------------------------------------------

_TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
          270: Image.Transpose.ROTATE_270}


def _score(lines: list[OCRLine]) -> float:
    return sum(line.confidence * len(line.text.replace(" ", "")) for line in lines)


def _confident(lines: list[OCRLine]) -> bool:
    """Upright enough to stop at 0°: decent confidence and mostly wide boxes."""
    chars = sum(len(line.text.replace(" ", "")) for line in lines)
    if chars == 0:
        return True  # nothing to read in any direction worth the 3 extra passes
    mean = _score(lines) / chars
    tall = sum(len(line.text) for line in lines
               if (line.bbox[3] - line.bbox[1]) > 1.5 * (line.bbox[2] - line.bbox[0]))
    return mean >= 0.85 and tall * 2 < chars


def _unrotate(bbox: tuple[float, float, float, float], turn: int, w: int,
              h: int) -> tuple[float, float, float, float]:
    """Map a box from the image turned ``turn``° counter-clockwise back to the original
    ``w`` × ``h`` image."""
    x0, y0, x1, y1 = bbox
    if turn == 90:  # turned (x, y) -> (y, w - x)
        pts = [(w - y, x) for x, y in ((x0, y0), (x1, y1))]
    elif turn == 180:
        pts = [(w - x, h - y) for x, y in ((x0, y0), (x1, y1))]
    elif turn == 270:  # turned (x, y) -> (h - y, x)
        pts = [(y, h - x) for x, y in ((x0, y0), (x1, y1))]
    else:
        return bbox
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def _read(engine: OCREngine, image: Image.Image, classify: bool = True) -> list[OCRLine]:
    try:
        return engine.read(image, classify=classify)  # type: ignore[call-arg]
    except TypeError:  # a plug-in engine with the bare Protocol signature
        return engine.read(image)


def read_upright(engine: OCREngine, image: Image.Image, probe_side: int = 1024) -> OCRResult:
    """Read ``image`` in whichever quarter turn gives the best text; boxes are mapped back
    to ``image``'s own pixel coordinates. An engine with its own ``read_upright(image)``
    (lines, turn) does it all; else its ``orientation(image)`` picks the turn, else the
    quarter turns of a downscaled copy are scored."""
    turn: int | None
    single_pass = getattr(engine, "read_upright", None)
    if callable(single_pass):  # orientation from the same detection pass (rapidocr)
        lines, turn = single_pass(image)
        return OCRResult(lines, turn, getattr(engine, "name", ""))
    w, h = image.size
    turn = None
    osd = getattr(engine, "orientation", None)
    if callable(osd):
        turn = osd(image)
    if turn is None or turn not in (0, 90, 180, 270):
        # Without the angle classifier an upside-down line reads badly, which is what
        # tells 180° from 0°; the classifier is used for the final read only.
        first = _read(engine, image, classify=False)
        if _confident(first):
            return OCRResult(first, 0, getattr(engine, "name", ""))
        probe = image
        if max(w, h) > probe_side:
            probe = image.copy()
            probe.thumbnail((probe_side, probe_side))
        scale = probe.width / w
        scores = {0: _score(first) * scale}  # same units as the downscaled probes
        for t, op in _TURNS.items():
            scores[t] = _score(_read(engine, probe.transpose(op), classify=False))
        turn = max(scores, key=lambda t: scores[t])
        if turn == 0:
            return OCRResult(_read(engine, image), 0, getattr(engine, "name", ""))
    if turn == 0:
        return OCRResult(_read(engine, image), 0, getattr(engine, "name", ""))
    lines = _read(engine, image.transpose(_TURNS[turn]))
    lines = [OCRLine(ln.text, _unrotate(ln.bbox, turn, w, h), ln.confidence) for ln in lines]
    return OCRResult(lines, turn, getattr(engine, "name", ""))


# --- cache ------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmrag" / "ocr"


class OCRCache:
    """One JSON file per image under ``root/ab/abcdef....json``; unreadable entries are
    misses, write failures are logged and ignored (the cache is an optimisation)."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root) if root else default_cache_dir()

    @staticmethod
    def key(image: Image.Image, engine: str) -> str:
        digest = hashlib.sha256()
        digest.update(f"{_CACHE_VERSION}|{engine}|{image.mode}|{image.size}|".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> OCRResult | None:
        try:
            raw = json.loads(self._path(key).read_text("utf-8"))
            lines = [OCRLine(str(d["text"]), tuple(float(v) for v in d["bbox"]),  # type: ignore[arg-type]
                             float(d["confidence"])) for d in raw["lines"]]
            return OCRResult(lines, int(raw["rotation"]), str(raw["engine"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, result: OCRResult) -> None:
        path = self._path(key)
        data = {"engine": result.engine, "rotation": result.rotation,
                "lines": [asdict(line) for line in result.lines]}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("OCR cache write failed in %s: %s", self.root, exc)


def ocr_workers(settings: IngestSettings) -> int:
    return settings.ocr_workers or _cores()


def ocr_image(image: Image.Image, settings: IngestSettings,
              engine: OCREngine | None = None) -> OCRResult:
    """Read ``image`` upright with the configured engine, through the on-disk cache.
    Images with a side under :data:`MIN_SIDE` give an empty result."""
    if min(image.size) < MIN_SIDE:
        return OCRResult([], 0, settings.ocr_engine)
    cache = OCRCache(settings.ocr_cache or None)
    key = OCRCache.key(image, settings.ocr_engine)
    hit = cache.get(key)
    if hit is not None:
        return hit
    if engine is None:
        # Threads per model: share the cores among the pages read at once.
        threads = max(1, _cores() // ocr_workers(settings))
        engine = get_engine(settings.ocr_engine, threads=threads)
    result = read_upright(engine, image)
    cache.put(key, result)
    return result


# --- does a text layer need OCR? --------------------------------------------------------

LETTER_AREA_PT2 = 612.0 * 792.0
MIN_CHARS_PER_LETTER_PAGE = 40
"""A page with fewer visible characters than this per US-letter area (scaled to the page's
area, and at least 16) is near-empty: a scan with a stray header, a slide of pictures."""
MIN_CHARS = 16
MAX_BAD_SHARE = 0.10
"""Share of visible characters that are U+FFFD, private-use, control, unassigned or
surrogate codepoints above which the layer is garbled (fonts without a ToUnicode map)."""
MIN_ALNUM_SHARE = 0.50
"""Share of visible characters that are letters or digits below which the layer is
garbled: real prose, tables and even formula pages stay well above it."""

_SPACE = re.compile(r"\s+")


def needs_ocr(text: str, page_area_pt2: float) -> bool:
    """True when a page's text layer is unusable: empty, near-empty for the page's size
    (see :data:`MIN_CHARS_PER_LETTER_PAGE`) or garbled (:data:`MAX_BAD_SHARE`,
    :data:`MIN_ALNUM_SHARE`). ``page_area_pt2`` is width × height in points."""
    visible = _SPACE.sub("", text or "")
    n = len(visible)
    if n == 0:
        return True
    pages = max(page_area_pt2, 1.0) / LETTER_AREA_PT2
    if n < max(MIN_CHARS, MIN_CHARS_PER_LETTER_PAGE * pages):
        return True
    return _garbled(visible)


def is_garbled(text: str) -> bool:
    """The garbled half of :func:`needs_ocr`, whatever the amount of text."""
    visible = _SPACE.sub("", text or "")
    return bool(visible) and _garbled(visible)


def _garbled(visible: str) -> bool:
    n = len(visible)
    bad = alnum = 0
    for ch in visible:
        if ch == "\ufffd":
            bad += 1
            continue
        cat = unicodedata.category(ch)
        if cat in ("Co", "Cc", "Cn", "Cs"):
            bad += 1
        elif cat[0] in "LN":
            alnum += 1
    return bad / n > MAX_BAD_SHARE or alnum / n < MIN_ALNUM_SHARE


def line_spans(lines: list[OCRLine]) -> tuple[str, list[tuple[int, int]]]:
    """The page text (lines joined by newlines) and each line's ``(start, end)`` in it."""
    spans, pos = [], 0
    for line in lines:
        spans.append((pos, pos + len(line.text)))
        pos += len(line.text) + 1
    return "\n".join(line.text for line in lines), spans


def union_bbox(lines: list[OCRLine], spans: list[tuple[int, int]], start: int, end: int,
               to_page: Callable[[float, float], tuple[float, float]] | None = None,
               ) -> tuple[float, float, float, float] | None:
    """Union of the boxes of the lines overlapping text ``[start, end)``, optionally mapped
    by ``to_page(x, y)``."""
    boxes = [ln.bbox for ln, (s, e) in zip(lines, spans, strict=False) if s < end and e > start]
    if not boxes:
        return None
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if to_page is not None:
        x0, y0 = to_page(x0, y0)
        x1, y1 = to_page(x1, y1)
    return (x0, y0, x1, y1)
