"""Figures inside PDF pages: raster images and vector charts as captioned image pieces."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from mmrag.ingest.base import Piece
from mmrag.ingest.figures import CAPTION_RE, extract_figures
from tests.factories import _pdf, _pdf_escape, make_image_pdf

PAGE = (612, 792)
SCALE = 110 / 72


@dataclass
class PageSpec:
    """Content of one test page, in PDF user space (origin bottom-left)."""

    images: list[tuple[Image.Image, float, float, float, float]] = field(default_factory=list)
    texts: list[tuple[float, float, int, str]] = field(default_factory=list)
    paths: list[bytes] = field(default_factory=list)
    form_images: list[tuple[Image.Image, float, float, float, float]] = field(
        default_factory=list)  # drawn through a Form XObject placed with a ``cm``
    rotate: int = 0


def _image_obj(img: Image.Image) -> bytes:
    rgb = img.convert("RGB")
    data = zlib.compress(rgb.tobytes())
    return (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
            % (rgb.width, rgb.height, len(data)) + data + b"\nendstream")


def _stream(body: bytes, head: bytes = b"") -> bytes:
    return b"<< " + head + b"/Length %d >>\nstream\n" % len(body) + body + b"\nendstream"


def build_pdf(pages: Sequence[PageSpec], size: tuple[int, int] = PAGE) -> bytes:
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
                         b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                         b"/Encoding /WinAnsiEncoding >>"]
    kids = []
    for spec in pages:
        xobjs: dict[bytes, int] = {}
        ops = []
        for k, (img, x, y, w, h) in enumerate(spec.images):
            objs.append(_image_obj(img))
            xobjs[b"Im%d" % k] = len(objs)
            ops.append(b"q %g 0 0 %g %g %g cm /Im%d Do Q" % (w, h, x, y, k))
        for k, (img, x, y, w, h) in enumerate(spec.form_images):
            objs.append(_image_obj(img))
            inner = b"q %g 0 0 %g 0 0 cm /Im0 Do Q" % (w, h)
            objs.append(_stream(inner, b"/Type /XObject /Subtype /Form /BBox [0 0 %g %g] "
                                       b"/Matrix [1 0 0 1 5 5] /Resources << /XObject "
                                       b"<< /Im0 %d 0 R >> >> " % (w + 10, h + 10, len(objs))))
            xobjs[b"Fm%d" % k] = len(objs)
            ops.append(b"q 1 0 0 1 %g %g cm /Fm%d Do Q" % (x - 5, y - 5, k))
        ops += spec.paths
        for x, y, font_size, text in spec.texts:
            ops.append(b"BT /F1 %d Tf %g %g Td (%s) Tj ET" % (font_size, x, y,
                                                             _pdf_escape(text)))
        res = b"/Font << /F1 3 0 R >>"
        if xobjs:
            res += b" /XObject << " + b" ".join(b"/%s %d 0 R" % kv for kv in xobjs.items())
            res += b" >>"
        objs.append(_stream(b"\n".join(ops)))
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Rotate %d "
                    % (*size, spec.rotate)
                    + b"/Resources << " + res + b" >> /Contents %d 0 R >>" % len(objs))
        kids.append(len(objs))
    objs[1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids)
               + b"] /Count %d >>" % len(kids))
    return _pdf(objs)


def picture(color: str = "red", size: tuple[int, int] = (200, 150)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).ellipse((10, 10, size[0] - 10, size[1] - 10), fill=color)
    return img


def bar_chart(x: float, y: float, n: int = 10) -> bytes:
    """A vector chart: ``n`` green bars and two black axes, bottom-left at (x, y)."""
    bars = [b"0 0.5 0 rg %g %g 20 %g re f" % (x + 8 + 30 * i, y + 2, 20 + 15 * i)
            for i in range(n)]
    axes = b"0 0 0 RG 1 w %g %g m %g %g l S %g %g m %g %g l S" % (
        x, y, x + 30 * n + 10, y, x, y, x, y + 15 * n + 40)
    return b"\n".join([*bars, axes])


def to_top_left(x: float, y: float, w: float, h: float, page_h: float = PAGE[1]
                ) -> tuple[float, float, float, float]:
    return (x, page_h - (y + h), x + w, page_h - y)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@contextmanager
def opened(data: bytes) -> Iterator[pdfium.PdfDocument]:
    pdf = pdfium.PdfDocument(data)
    try:
        yield pdf
    finally:
        pdf.close()


def figures_of(data: bytes, settings: Any, *, render: bool = True, **kw: Any
               ) -> list[list[Piece]]:
    """Run extract_figures on every page the way the PDF loader does."""
    out = []
    with opened(data) as pdf:
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                image = (page.render(scale=SCALE, rev_byteorder=True).to_pil().convert("RGB")
                         if render else None)
                out.append(extract_figures(page, index + 1, "", settings, render=image,
                                           render_scale=SCALE if render else None, **kw))
            finally:
                page.close()
    return out


FIG_AT = (100.0, 450.0, 300.0, 225.0)  # x, y, w, h in PDF points
LOGO_AT = (540.0, 740.0, 24.0, 24.0)


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    """Page 1: a captioned raster figure, a tiny logo, body text and a captioned vector
    chart; page 2: text only."""
    return build_pdf([
        PageSpec(images=[(picture("red"), *FIG_AT), (picture("blue", (40, 40)), *LOGO_AT)],
                 texts=[(100, 432, 10, "Figure 1: A red circle on white paper."),
                        (72, 720, 12, "Quarterly report body text."),
                        (100, 130, 10, "Fig. 2. Growth of green bars over time.")],
                 paths=[bar_chart(80, 150)]),
        PageSpec(texts=[(72, 700, 12, "Only text on this page.")]),
    ])


@pytest.fixture(scope="module")
def report_figs(report_pdf) -> list[list[Piece]]:
    from mmrag.config import IngestSettings

    return figures_of(report_pdf, IngestSettings())


def test_raster_figure_found_with_page_bbox_and_pixels(report_figs):
    raster = [p for p in report_figs[0] if p.metadata["origin"] == "pdf-image"]
    assert len(raster) == 1, [p.bbox for p in report_figs[0]]
    fig = raster[0]
    assert fig.modality == "image" and fig.page == 1 and fig.media_ext == "png"
    assert fig.metadata["kind"] == "figure"
    x0, y0, x1, y1 = fig.bbox
    assert 0 <= x0 < x1 <= PAGE[0] and 0 <= y0 < y1 <= PAGE[1]
    assert iou(fig.bbox, to_top_left(*FIG_AT)) > 0.9
    assert fig.image is not None and fig.image.mode == "RGB"
    # cropped from the 110-dpi render: its size follows the box, its centre is the circle
    assert abs(fig.image.width - FIG_AT[2] * SCALE) <= 2
    assert abs(fig.image.height - FIG_AT[3] * SCALE) <= 2
    r, g, b = fig.image.getpixel((fig.image.width // 2, fig.image.height // 2))
    assert r > 200 and g < 60 and b < 60


def test_caption_linked_and_searchable(report_figs):
    by_origin = {p.metadata["origin"]: p for p in report_figs[0]}
    assert by_origin["pdf-image"].metadata["caption"] == "Figure 1: A red circle on white paper."
    assert by_origin["pdf-image"].text.startswith("Figure 1: A red circle")
    assert "Quarterly" not in by_origin["pdf-image"].text
    assert by_origin["pdf-vector"].metadata["caption"].startswith("Fig. 2. Growth of green")


def test_tiny_logo_skipped(report_figs):
    logo = to_top_left(*LOGO_AT)
    assert all(iou(p.bbox, logo) == 0 for p in report_figs[0])


def test_vector_chart_detected(report_figs):
    vec = [p for p in report_figs[0] if p.metadata["origin"] == "pdf-vector"]
    assert len(vec) == 1
    chart = to_top_left(80, 150, 310, 190)  # axes span, see bar_chart
    assert iou(vec[0].bbox, chart) > 0.8
    assert vec[0].image is not None
    pixels = vec[0].image.convert("RGB").get_flattened_data()
    green = sum(1 for px in pixels if px[1] > 100 and px[0] < 60)
    assert green > 0.2 * vec[0].image.width * vec[0].image.height


def test_page_without_images_yields_none(report_figs):
    assert report_figs[1] == []


def test_order_is_top_to_bottom(report_figs):
    tops = [p.bbox[1] for p in report_figs[0]]
    assert tops == sorted(tops) and len(tops) == 2


def test_without_render_uses_the_embedded_bitmap(report_pdf, settings):
    figs = figures_of(report_pdf, settings, render=False)[0]
    raster = [p for p in figs if p.metadata["origin"] == "pdf-image"]
    assert len(raster) == 1 and raster[0].image.size == (200, 150)  # native pixels
    vec = [p for p in figs if p.metadata["origin"] == "pdf-vector"]
    assert len(vec) == 1 and vec[0].image is not None  # rendered on demand


def test_vector_detection_can_be_turned_off(report_pdf, settings):
    figs = figures_of(report_pdf, settings, vector=False)[0]
    assert [p.metadata["origin"] for p in figs] == ["pdf-image"]


def test_captions_pick_the_nearest_figure_and_column(settings):
    left, right = (60.0, 420.0, 220.0, 160.0), (330.0, 420.0, 220.0, 160.0)
    data = build_pdf([PageSpec(
        images=[(picture("red"), *left), (picture("blue"), *right),
                (picture("green"), 150.0, 200.0, 300.0, 150.0)],
        texts=[(330, 404, 9, "Figure 2: the blue one"), (60, 404, 9, "Figure 1: the red one"),
               (72, 600, 9, "Table 4 is mentioned in body text far away"),
               # ~90 pt under the green figure: too far to be its caption
               (150, 100, 9, "Figure 9: unrelated")])])
    figs = figures_of(data, settings)[0]
    assert len(figs) == 3
    caps = {round(p.bbox[0]): p.metadata["caption"] for p in figs}
    assert caps[60] == "Figure 1: the red one"
    assert caps[330] == "Figure 2: the blue one"
    assert caps[150] == ""


def test_table_caption_above_and_multiline(settings):
    data = build_pdf([PageSpec(
        images=[(picture("gray"), 100.0, 300.0, 300.0, 200.0)],
        texts=[(100, 522, 10, "Table 3: Results on the test set,"),
               (100, 510, 10, "averaged over five seeds."),
               (100, 560, 10, "Body paragraph that is not part of the caption."),
               (100, 240, 10, "Figure 5 is not this one, it is too far below.")])])
    fig = figures_of(data, settings)[0][0]
    assert fig.metadata["caption"] == ("Table 3: Results on the test set, "
                                       "averaged over five seeds.")


def test_thin_rule_and_full_page_scan_skipped(settings):
    rule = build_pdf([PageSpec(images=[(Image.new("RGB", (400, 4), "black"), 100, 400, 400, 3)])])
    assert figures_of(rule, settings) == [[]]
    scan = make_image_pdf(1, size=(612, 792))
    assert figures_of(scan, settings) == [[]]


def test_min_area_is_a_parameter(report_pdf, settings):
    figs = figures_of(report_pdf, settings, min_side=10, min_area=0.0, vector=False)[0]
    assert len(figs) == 2  # the logo now counts


def test_tiled_strips_merge_into_one_figure(settings):
    strips = [(picture("red", (200, 30)), 100.0, 400.0 + 30 * i, 300.0, 30.0)
              for i in range(5)]
    figs = figures_of(build_pdf([PageSpec(images=strips)]), settings)[0]
    assert len(figs) == 1
    assert iou(figs[0].bbox, to_top_left(100, 400, 300, 150)) > 0.95


def test_form_xobject_and_rotated_page(settings):
    data = build_pdf([PageSpec(form_images=[(picture("green"), 100.0, 300.0, 200.0, 150.0)]),
                      PageSpec(form_images=[(picture("green"), 100.0, 300.0, 200.0, 150.0)],
                               rotate=90)])
    upright, rotated = figures_of(data, settings)
    assert len(upright) == 1 and iou(upright[0].bbox, to_top_left(100, 300, 200, 150)) > 0.95
    assert len(rotated) == 1
    x0, y0, x1, y1 = rotated[0].bbox
    assert x1 - x0 == pytest.approx(150, abs=1) and y1 - y0 == pytest.approx(200, abs=1)
    for fig in (upright[0], rotated[0]):  # the crop lands on the picture in both frames
        r, g, b = fig.image.getpixel((fig.image.width // 2, fig.image.height // 2))
        assert g > 100 and r < 60


def test_broken_page_never_raises(settings):
    class Broken:
        def get_bbox(self):
            return (0, 0, 612, 792)

        def get_rotation(self):
            return 0

        def get_objects(self, *a, **k):
            raise RuntimeError("pdfium exploded")

    assert extract_figures(Broken(), 1, "text", settings) == []


def test_broken_object_is_skipped(report_pdf, settings):
    """One object whose bounds fail does not lose the others."""
    with opened(report_pdf) as pdf:
        page = pdf[0]
        real = page.get_objects

        class Bad:
            type = 3
            container = None

            def get_bounds(self):
                raise pdfium.PdfiumError("Failed to locate pageobject.")

        def objects(*a: Any, **k: Any):
            yield Bad()
            yield from real(*a, **k)

        page.get_objects = objects  # type: ignore[method-assign]
        figs = extract_figures(page, 1, "", settings, vector=False)
        page.close()
    assert len(figs) == 1 and figs[0].metadata["origin"] == "pdf-image"


@pytest.mark.parametrize("line", ["Figure 3: Revenue", "Fig. 2. Layout", "FIG 4a shows",
                                  "Table 1 Results", "Tab. IV: x", "Figure 12 - growth"])
def test_caption_pattern_matches(line):
    assert CAPTION_RE.match(line)


@pytest.mark.parametrize("line", ["Figures are shown below", "Tablespoon of salt",
                                  "In Figure 3 we see", "Figure it out",
                                  "Tables show the data", "Fig leaves"])
def test_caption_pattern_rejects(line):
    assert not CAPTION_RE.match(line)
