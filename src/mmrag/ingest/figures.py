"""Figures inside a PDF page: embedded raster images and coarse vector drawings, each as
its own ``image`` piece with the caption that names it ("Figure 3: ...", "Table 1 ...").

The PDF loader calls :func:`extract_figures` once per page, while the page is still open
and under ``pdfium_lock``. Everything pdfium does here is best-effort: a broken object is
logged at DEBUG and skipped, never raised, so a figure can never cost the page its text.

Coordinates: every ``bbox`` is ``(x0, y0, x1, y1)`` in PDF points (1/72 in) with the
origin at the **top-left** of the page *as displayed* (after the page's /Rotate and
relative to its crop box), y growing downwards, the same frame as the page render: a
pixel box is ``bbox * render_scale``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..config import IngestSettings
from .base import Piece
from .ocr import OCRLine, OCRResult

__all__ = ["CAPTION_RE", "extract_figures"]

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1; top-left origin, points

# "Figure 3:", "Fig. 2.", "FIG 4a", "Table 1", "Tab. IV", "Chart 2", "Exhibit 5", "Plate 3"
CAPTION_RE = re.compile(
    r"^\s*(?i:fig(?:ure)?s?|tab(?:le)?s?|chart|graph|diagram|exhibit|plate|scheme|"
    r"illustration|photo|abbildung|abb|tabelle|tableau)"
    r"(?:\.\s*|\s+|(?=\d))"           # "Fig.2", "Figure 2", "FIG2"; not "Figures are"
    r"(\d+|[IVXLC]+\b|[A-Z]\b)"        # arabic, upper-case roman or a single capital
    r"[\w.\-]*\s*(?:[:.\-\u2013\u2014|)]|\s|$)")


_PAGEOBJ_IMAGE = 3  # FPDF_PAGEOBJ_IMAGE / _PATH; literal so importing costs no pdfium
_PAGEOBJ_PATH = 2


@dataclass(slots=True)
class _Line:
    box: Box
    text: str

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(slots=True)
class _Figure:
    box: Box
    origin: str
    objects: list[Any] = field(default_factory=list)  # image objects, for the fallback


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


class _Frame:
    """Maps PDF user space (bottom-left origin) to the displayed top-left frame."""

    def __init__(self, page: Any):
        self.left, self.bottom, self.right, self.top = page.get_bbox()
        try:
            self.rotation = int(page.get_rotation()) % 360
        except Exception:  # an odd /Rotate renders unrotated too
            self.rotation = 0
        w0, h0 = self.right - self.left, self.top - self.bottom
        self.w0, self.h0 = w0, h0
        self.width, self.height = (h0, w0) if self.rotation in (90, 270) else (w0, h0)

    def _point(self, x: float, y: float) -> tuple[float, float]:
        u, v = x - self.left, self.top - y
        if self.rotation == 90:
            return self.h0 - v, u
        if self.rotation == 180:
            return self.w0 - u, self.h0 - v
        if self.rotation == 270:
            return v, self.w0 - u
        return u, v

    def to_top_left(self, left: float, b: float, r: float, t: float) -> Box:
        (x0, y0), (x1, y1) = self._point(left, b), self._point(r, t)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def to_pdf(self, box: Box) -> tuple[float, float, float, float]:
        """Inverse of :meth:`to_top_left`: ``(left, bottom, right, top)`` in user space."""
        x0, y0, x1, y1 = box
        pts = []
        for x, y in ((x0, y0), (x1, y1)):
            if self.rotation == 90:
                u, v = y, self.h0 - x
            elif self.rotation == 180:
                u, v = self.w0 - x, self.h0 - y
            elif self.rotation == 270:
                u, v = self.w0 - y, x
            else:
                u, v = x, y
            pts.append((u + self.left, self.top - v))
        (a, b), (c, d) = pts
        return (min(a, c), min(b, d), max(a, c), max(b, d))

    def clip(self, box: Box) -> Box:
        x0, y0, x1, y1 = box
        return (max(0.0, x0), max(0.0, y0), min(self.width, x1), min(self.height, y1))


def _page_bounds(obj: Any) -> tuple[float, float, float, float]:
    """Bounds in page user space; objects inside Form XObjects report form space."""
    left, bottom, right, top = obj.get_bounds()
    container = getattr(obj, "container", None)
    while container is not None:
        left, bottom, right, top = container.get_matrix().on_rect(left, bottom, right, top)
        container = getattr(container, "container", None)
    return left, bottom, right, top


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _near(a: Box, b: Box, gap: float) -> bool:
    return (a[0] - gap <= b[2] and b[0] - gap <= a[2]
            and a[1] - gap <= b[3] and b[1] - gap <= a[3])


def _big_enough(box: Box, frame: _Frame, min_side: float, min_area: float,
                max_area: float, max_aspect: float) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    if min(w, h) < min_side or max(w, h) / max(min(w, h), 1e-6) > max_aspect:
        return False
    share = _area(box) / max(frame.width * frame.height, 1e-6)
    return min_area <= share <= max_area


def _object_boxes(page: Any, kind: int, frame: _Frame, label: str) -> Iterator[tuple[Any, Box]]:
    """Page objects of one kind with their top-left page box; an object whose bounds
    pdfium cannot give is skipped, never raised."""
    for obj in page.get_objects(filter=[kind]):
        try:
            yield obj, frame.clip(frame.to_top_left(*_page_bounds(obj)))
        except Exception as exc:
            log.debug("%s object without bounds skipped: %s", label, _one_line(exc))


def _image_figures(page: Any, frame: _Frame) -> list[_Figure]:
    """Raster images, touching ones merged (producers tile big images into strips)."""
    figs: list[_Figure] = []
    for obj, box in _object_boxes(page, _PAGEOBJ_IMAGE, frame, "image"):
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue  # off the visible page
        figs.append(_Figure(box, "pdf-image", [obj]))
    merged = True
    while merged and len(figs) > 1:
        merged = False
        for i in range(len(figs)):
            for j in range(i + 1, len(figs)):
                if _near(figs[i].box, figs[j].box, 1.0):
                    figs[i].box = _union(figs[i].box, figs[j].box)
                    figs[i].objects += figs[j].objects
                    del figs[j]
                    merged = True
                    break
            if merged:
                break
    return figs


def _vector_figures(page: Any, frame: _Frame, gap: float, min_paths: int,
                    cell: float = 2.0) -> list[_Figure]:
    """Clusters of path objects (charts, diagrams, ruled tables), found on a coarse
    occupancy grid: each path's box is painted, dilated by ``gap`` and labelled, which
    stays linear in the number of paths where pairwise merging would be quadratic."""
    from scipy import ndimage

    boxes = []
    page_area = max(frame.width * frame.height, 1e-6)
    for _obj, box in _object_boxes(page, _PAGEOBJ_PATH, frame, "path"):
        if box[2] < box[0] or box[3] < box[1] or _area(box) > 0.8 * page_area:
            continue  # off-page, or a page background / frame around everything
        boxes.append(box)
    if len(boxes) < min_paths:
        return []
    gw, gh = int(frame.width / cell) + 1, int(frame.height / cell) + 1
    grid = np.zeros((gh, gw), dtype=bool)
    idx = np.array([[int(b[0] / cell), int(b[1] / cell), int(b[2] / cell), int(b[3] / cell)]
                    for b in boxes])
    idx[:, [0, 2]] = idx[:, [0, 2]].clip(0, gw - 1)
    idx[:, [1, 3]] = idx[:, [1, 3]].clip(0, gh - 1)
    for x0, y0, x1, y1 in idx:
        grid[y0:y1 + 1, x0:x1 + 1] = True
    reach = max(1, int(round(gap / cell)))
    grown = ndimage.binary_dilation(grid, structure=np.ones((2 * reach + 1,) * 2, bool))
    labels, _n = ndimage.label(grown)
    owner = labels[idx[:, 1], idx[:, 0]]  # every box's top-left cell is painted
    figs = []
    for lab in np.unique(owner):
        members = np.flatnonzero(owner == lab)
        if len(members) < min_paths:
            continue
        box = boxes[members[0]]
        for m in members[1:]:
            box = _union(box, boxes[m])
        figs.append(_Figure(box, "pdf-vector"))
    return figs


def _text_lines(textpage: Any, frame: _Frame) -> list[_Line]:
    """The page's text as lines with boxes: pdfium's text rectangles (runs of characters
    on one baseline) joined left to right when they share a baseline and nearly touch."""
    runs: list[_Line] = []
    try:
        n = textpage.count_rects()
    except Exception as exc:
        log.debug("text rectangles unavailable: %s", _one_line(exc))
        return []
    for i in range(n):
        try:
            left, b, r, t = textpage.get_rect(i)
            text = textpage.get_text_bounded(left, b, r, t)
        except Exception as exc:
            log.debug("text rectangle %d skipped: %s", i, _one_line(exc))
            continue
        text = " ".join(text.replace("\x02", "").replace("\ufffe", "").split())
        if text:
            runs.append(_Line(frame.to_top_left(left, b, r, t), text))
    runs.sort(key=lambda ln: (round(ln.box[1]), ln.box[0]))
    lines: list[_Line] = []
    for run in runs:
        last = lines[-1] if lines else None
        if last is not None:
            overlap = min(last.box[3], run.box[3]) - max(last.box[1], run.box[1])
            h = max(min(last.height, run.height), 1.0)
            # a column gutter is wider than one line height, a word gap is not
            if overlap > 0.5 * h and -h < run.box[0] - last.box[2] < 1.2 * h:
                lines[-1] = _Line(_union(last.box, run.box), f"{last.text} {run.text}")
                continue
        lines.append(run)
    return lines


def page_lines(textpage: Any, page: Any, scale: float) -> OCRResult:
    """The page's text-layer lines with boxes in the pixels of a render at ``scale``: what
    the chart reader and facets need, as OCR would give them, without OCR."""
    lines = _text_lines(textpage, _Frame(page))
    return OCRResult([OCRLine(ln.text, tuple(v * scale for v in ln.box), 1.0)  # type: ignore
                      for ln in lines], 0, "text")


def lines_in(lines: list[_Line], box: Box, size: tuple[int, int]) -> OCRResult:
    """The text-layer lines whose centre lies in ``box`` (points), in the pixels of a crop
    of ``box`` that is ``size`` big: a vector chart's tick labels for the chart reader."""
    sx = size[0] / max(box[2] - box[0], 1e-6)
    sy = size[1] / max(box[3] - box[1], 1e-6)
    out = []
    for ln in lines:
        cx, cy = (ln.box[0] + ln.box[2]) / 2, (ln.box[1] + ln.box[3]) / 2
        if box[0] <= cx <= box[2] and box[1] <= cy <= box[3]:
            out.append(OCRLine(ln.text, ((ln.box[0] - box[0]) * sx, (ln.box[1] - box[1]) * sy,
                                         (ln.box[2] - box[0]) * sx, (ln.box[3] - box[1]) * sy),
                               1.0))
    return OCRResult(out, 0, "text")


def _caption_for(fig: Box, lines: list[_Line], used: set[int],
                 max_distance: float) -> tuple[float, int] | None:
    """Closest caption-like line below (preferred) or above the figure."""
    best: tuple[float, int] | None = None
    width = fig[2] - fig[0]
    for i, line in enumerate(lines):
        if i in used or not CAPTION_RE.match(line.text):
            continue
        overlap = min(fig[2], line.box[2]) - max(fig[0], line.box[0])
        if overlap < min(0.3 * width, 0.5 * (line.box[2] - line.box[0])):
            continue  # another column's caption
        below = line.box[1] - fig[3]
        above = fig[1] - line.box[3]
        tol = max(line.height, 4.0)  # captions may overlap the bottom of the box a little
        is_table = line.text.lstrip().lower().startswith("tab")
        for dist, penalty in ((below, 12.0 if is_table else 0.0),
                              (above, 0.0 if is_table else 12.0)):
            if -tol <= dist <= max_distance:
                score = max(dist, 0.0) + penalty
                if best is None or score < best[0]:
                    best = (score, i)
    return best


def _caption_text(lines: list[_Line], start: int, max_lines: int = 4) -> str:
    """The caption line plus the lines that continue its paragraph beneath it."""
    parts = [lines[start].text]
    box = lines[start].box
    for line in lines[start + 1:start + max_lines]:
        gap = line.box[1] - box[3]
        if gap > 0.8 * max(line.height, 1.0) or CAPTION_RE.match(line.text):
            break
        if min(box[2], line.box[2]) - max(box[0], line.box[0]) <= 0:
            break
        parts.append(line.text)
        box = line.box
    return " ".join(parts)


def _crop(render: Image.Image, box: Box, sx: float, sy: float) -> Image.Image | None:
    px = (int(box[0] * sx), int(box[1] * sy),
          int(np.ceil(box[2] * sx)), int(np.ceil(box[3] * sy)))
    if px[2] - px[0] < 8 or px[3] - px[1] < 8:
        return None
    return render.crop(px).convert("RGB")


def _bitmap(fig: _Figure, max_side: int) -> Image.Image | None:
    """The largest image object's pixels, rendered (mask, transform) else raw. For a
    figure merged from tiles this is one tile: pass ``render`` to get the whole."""
    for obj in sorted(fig.objects, key=lambda o: -_area(_safe_bounds(o))):
        for render in (True, False):
            try:
                # a copy; the foreign bitmap is freed by its finaliser (closing it
                # explicitly makes pypdfium2 warn)
                img = obj.get_bitmap(render=render).to_pil().convert("RGB")
            except Exception as exc:
                log.debug("image bitmap (render=%s) failed: %s", render, _one_line(exc))
                continue
            if max(img.size) > max_side:  # huge scans: the figure piece needs no more
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return img
    return None


def _safe_bounds(obj: Any) -> Box:
    try:
        return tuple(obj.get_bounds())
    except Exception:
        return (0.0, 0.0, 0.0, 0.0)


def _region_render(page: Any, frame: _Frame, box: Box, scale: float) -> Image.Image | None:
    bitmap = None
    try:
        crop = (box[0], frame.height - box[3], frame.width - box[2], box[1])
        bitmap = page.render(scale=scale, crop=crop, rev_byteorder=True)
        return bitmap.to_pil().convert("RGB")
    except Exception as exc:
        log.debug("region render failed: %s", _one_line(exc))
        return None
    finally:
        if bitmap is not None:
            bitmap.close()


def extract_figures(pdf_page: Any, page_number: int, page_text: str = "",
                    settings: IngestSettings | None = None, *,
                    render: Image.Image | None = None,
                    render_scale: float | None = None,
                    textpage: Any = None,
                    min_side: float = 48.0,
                    min_area: float = 0.02,
                    max_area: float = 0.9,
                    max_aspect: float = 12.0,
                    caption_distance: float = 60.0,
                    vector: bool = True,
                    vector_gap: float = 6.0,
                    min_paths: int = 8,
                    max_side: int = 2048) -> list[Piece]:
    """Figure pieces of one open pypdfium2 page, top to bottom.

    Each embedded raster image (touching images merged into one) and each dense cluster
    of vector paths becomes ``Piece(modality="image")`` with ``bbox`` in top-left-origin
    points (see the module docstring), the pixels cropped from ``render`` so vector
    overlays (axes, labels, arrows) come along, else the image's own bitmap, and
    ``metadata = {"kind": "figure", "caption": ..., "origin": "pdf-image"|"pdf-vector",
    "width_pt": ..., "height_pt": ...}``. ``text`` is the caption plus any text printed
    inside the figure, so a text query finds the crop by its caption.

    Size filters (why the defaults): logos, icons, bullets and rules are decoration that
    would flood image search with near-identical hits. A figure must be at least
    ``min_side`` points (48 pt = 2/3 inch) on its short side, no more than ``max_aspect``
    times longer than wide (rules, separators, header bands) and cover ``min_area`` of
    the page (2% of Letter is ~98x98 pt); images covering more than ``max_area`` are
    full-page scans or backgrounds, already the page piece.

    ``page_text`` is unused when a text page can be opened (captions need character
    boxes) and only joined into debug logs otherwise; ``textpage`` lets the caller share
    an already open one. ``render_scale`` defaults to ``render.width / page width``;
    without a render, raster figures use their bitmap and vector figures are rendered
    at ``settings.pdf_dpi``. The caller must hold ``pdfium_lock``. Never raises for bad
    page content; returns ``[]`` instead.
    """
    settings = settings or IngestSettings()
    try:
        return _extract(pdf_page, page_number, settings, render, render_scale, textpage,
                        min_side, min_area, max_area, max_aspect, caption_distance, vector,
                        vector_gap, min_paths, max_side)
    except Exception as exc:  # a figure must never cost the page its text
        log.debug("page %d: figure extraction failed (%d chars of text kept): %s",
                  page_number, len(page_text), _one_line(exc))
        return []


def _extract(page: Any, page_number: int, settings: IngestSettings,
             render: Image.Image | None, render_scale: float | None, textpage: Any,
             min_side: float, min_area: float, max_area: float, max_aspect: float,
             caption_distance: float, vector: bool, vector_gap: float, min_paths: int,
             max_side: int) -> list[Piece]:
    frame = _Frame(page)
    keep = (min_side, min_area, max_area, max_aspect)
    figs = [f for f in _image_figures(page, frame) if _big_enough(f.box, frame, *keep)]
    if vector:
        try:
            for vf in _vector_figures(page, frame, vector_gap, min_paths):
                # a chart's axes drawn over its raster plot belong to that plot
                if any(_area(_intersect(vf.box, f.box)) > 0.5 * _area(vf.box) for f in figs):
                    continue
                if _big_enough(vf.box, frame, *keep):
                    figs.append(vf)
        except Exception as exc:
            log.debug("page %d: vector figure detection failed: %s", page_number,
                      _one_line(exc))
    if not figs:
        return []
    figs.sort(key=lambda f: (f.box[1], f.box[0]))

    own_textpage = textpage is None
    lines: list[_Line] = []
    try:
        if own_textpage:
            textpage = page.get_textpage()
        lines = _text_lines(textpage, frame)
    except Exception as exc:
        log.debug("page %d: no text layer for captions: %s", page_number, _one_line(exc))

    # captions go to the figure they are closest to, closest pairs first
    pairs = []
    for fi, fig in enumerate(figs):
        found = _caption_for(fig.box, lines, set(), caption_distance)
        if found is not None:
            pairs.append((found[0], fi))
    captions: dict[int, str] = {}
    used: set[int] = set()
    for _score, fi in sorted(pairs):
        found = _caption_for(figs[fi].box, lines, used, caption_distance)
        if found is not None:
            used.add(found[1])
            captions[fi] = _caption_text(lines, found[1])

    sx = sy = 0.0
    if render is not None:
        if render_scale:
            sx = sy = float(render_scale)
        else:
            sx, sy = render.width / frame.width, render.height / frame.height
    pieces = []
    try:
        for fi, fig in enumerate(figs):
            image = _crop(render, fig.box, sx, sy) if render is not None else None
            if image is None and fig.objects:
                image = _bitmap(fig, max_side)
            if image is None:
                image = _region_render(page, frame, fig.box, settings.pdf_dpi / 72.0)
            if image is None:
                log.debug("page %d: figure at %s has no pixels, skipped", page_number,
                          fig.box)
                continue
            inside = _inside_text(textpage, frame, fig.box)
            caption = captions.get(fi, "")
            text = "\n".join(t for t in (caption, inside) if t)
            box = tuple(round(v, 2) for v in fig.box)
            pieces.append(Piece(
                modality="image", text=text, page=page_number, bbox=box,  # type: ignore[arg-type]
                image=image, media_ext="png", ocr=lines_in(lines, fig.box, image.size),
                metadata={"kind": "figure", "caption": caption, "origin": fig.origin,
                          "width_pt": round(fig.box[2] - fig.box[0], 2),
                          "height_pt": round(fig.box[3] - fig.box[1], 2)}))
    finally:
        if own_textpage and textpage is not None:
            try:
                textpage.close()
            except Exception:
                pass
    return pieces


def _intersect(a: Box, b: Box) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _inside_text(textpage: Any, frame: _Frame, box: Box, limit: int = 2000) -> str:
    if textpage is None:
        return ""
    try:
        text = textpage.get_text_bounded(*frame.to_pdf(box))
    except Exception as exc:
        log.debug("text inside figure unavailable: %s", _one_line(exc))
        return ""
    return " ".join(text.replace("\x02", "").replace("\ufffe", "").split())[:limit]
