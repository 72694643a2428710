"""The viewer's highlight box lies on the hit's region, for every kind of hit with a box.

An index is built here from PDFs made in code, each with a region at a known place:

- ``scan.pdf``: an image-only page (no text layer) whose text is found by OCR: the OCR
  line's chunk carries a box around the printed words;
- ``chart.pdf``: a vector bar chart with a caption: the figure crop's box is the chart;
- ``photo.pdf``: a raster chart image placed with a ``cm`` on a page whose MediaBox does
  not start at the origin (the box must be relative to the page's visible corner);
- ``turned.pdf``: the same picture on a page with ``/Rotate 90``: the box is in the
  displayed (landscape) frame, not in the unrotated user space;
- ``plain.pdf``: plain text chunks carry no box, so the viewer shows the page without one.

For each hit the test opens the viewer at two window sizes (one where the page is scaled
down to the window's height) and checks the drawn box against both the item's ``bbox``
scaled to the page image as displayed and the region drawn in the PDF (within 3 % of the
page), and that the pixels under the box are the region's colour.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag import Index
from tests.factories import _pdf, _pdf_escape, make_text_pdf
from tests.server.browser import browser, open_page, screenshot  # noqa: F401 (fixture)
from tests.server.conftest import serve_in_thread

pytestmark = pytest.mark.browser

LETTER = (612.0, 792.0)
TOL = 0.03  # of the page's side: figure and OCR boxes are found, not given

# Regions in the displayed frame: points, top-left origin (the API's convention).
CHART = (80.0, 792.0 - 150.0 - 190.0, 80.0 + 310.0, 792.0 - 150.0)
PHOTO = (100.0, 792.0 - 450.0 - 225.0, 400.0, 792.0 - 450.0)
# On the turned page (612 x 792 turned a quarter clockwise: 792 x 612 displayed) user
# space (x, y) shows at (y, x): the picture drawn at x 100..300, y 300..450 lands at
# x 300..450, y 100..300.
TURNED = (300.0, 100.0, 450.0, 300.0)
# Cropped to user space 50..562 x 100..742: the picture at x 100..400, y 300..525 shows
# at x 50..350, y 742-525..742-300 of the 512 x 642 visible page.
CROPPED = (50.0, 742.0 - 525.0, 350.0, 742.0 - 300.0)
SCAN_DPI = 150.0
SCAN_TEXT_PX = (120, 150)  # where the scan's first line is printed, at SCAN_DPI


def _stream(body: bytes, head: bytes = b"") -> bytes:
    return b"<< " + head + b"/Length %d >>\nstream\n" % len(body) + body + b"\nendstream"


def _image_obj(img: Image.Image) -> bytes:
    rgb = img.convert("RGB")
    data = zlib.compress(rgb.tobytes())
    return _stream(data, b"/Type /XObject /Subtype /Image /Width %d /Height %d "
                         b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
                         % rgb.size)


def one_page(content: bytes, *, media_box: bytes = b"0 0 612 792", rotate: int = 0,
             image: Image.Image | None = None, crop_box: bytes | None = None) -> bytes:
    """A one-page PDF: ``content`` drawn with Helvetica as /F1 and ``image`` as /Im0."""
    xobj = b" /XObject << /Im0 4 0 R >>" if image is not None else b""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [6 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        _image_obj(image) if image is not None else b"<< >>",
        _stream(content),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [" + media_box + b"] /Rotate %d " % rotate
        + (b"/CropBox [" + crop_box + b"] " if crop_box else b"")
        + b"/Resources << /Font << /F1 3 0 R >>" + xobj + b" >> /Contents 5 0 R >>",
    ])


def text_op(x: float, y: float, size: int, text: str) -> bytes:
    return b"BT /F1 %d Tf %g %g Td (%s) Tj ET" % (size, x, y, _pdf_escape(text))


def chart_pdf() -> bytes:
    """Ten green vector bars on two black axes, bottom-left at (80, 150), captioned."""
    x, y = 80.0, 150.0
    bars = [b"0 0.5 0 rg %g %g 20 %g re f" % (x + 8 + 30 * i, y + 2, 20 + 15 * i)
            for i in range(10)]
    axes = b"0 0 0 RG 1 w %g %g m %g %g l S %g %g m %g %g l S" % (
        x, y, x + 310, y, x, y, x, y + 190)
    return one_page(b"\n".join([*bars, axes,
                                text_op(80, 130, 10, "Fig. 2. Growth of green bars."),
                                text_op(72, 720, 12, "Harbour tonnage report.")]))


def picture() -> Image.Image:
    """A bar chart as a raster picture: solid red bars filling most of a white frame."""
    img = Image.new("RGB", (300, 225), "white")
    draw = ImageDraw.Draw(img)
    for i in range(5):
        draw.rectangle((10 + 58 * i, 215 - 35 * (i + 1), 58 + 58 * i, 215), fill="red")
    draw.rectangle((0, 0, 299, 224), outline="red", width=6)
    return img


def photo_pdf() -> bytes:
    """The picture at PHOTO on a page whose MediaBox starts at (-50, -30)."""
    x0, top, x1, bottom = PHOTO
    w, h = x1 - x0, bottom - top
    # user space is shifted by the MediaBox corner: drawn at (x - 50, y - 30)
    place = b"q %g 0 0 %g %g %g cm /Im0 Do Q" % (w, h, x0 - 50, LETTER[1] - bottom - 30)
    caption = text_op(x0 - 50, LETTER[1] - bottom - 48, 10, "Figure 1: Cargo by month.")
    return one_page(b"\n".join([place, caption, text_op(22, 690, 12, "Pier statistics.")]),
                    media_box=b"-50 -30 562 762", image=picture())


def turned_pdf() -> bytes:
    """The picture at user space (100, 300) 200 x 150 on a /Rotate 90 page."""
    place = b"q 200 0 0 150 100 300 cm /Im0 Do Q"
    caption = text_op(100, 282, 10, "Figure 3: Turned cargo chart.")
    return one_page(b"\n".join([place, caption]), rotate=90, image=picture())


def cropped_pdf() -> bytes:
    """The picture at user space (100, 300) 300 x 225 on a page cropped to CropBox
    50..562 x 100..742 (scanners and imposition tools set one)."""
    place = b"q 300 0 0 225 100 300 cm /Im0 Do Q"
    caption = text_op(100, 282, 10, "Figure 4: Cropped cargo chart.")
    return one_page(b"\n".join([place, caption]), image=picture(),
                    crop_box=b"50 100 562 742")


SCAN_LINES = ("Lighthouse keeper logbook", "Storm warning at dawn")


def _scan() -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A Letter page at SCAN_DPI with two printed lines near the top, and the box around
    them in pixels (one chunk holds both lines)."""
    img = Image.new("RGB", (int(8.5 * SCAN_DPI), int(11 * SCAN_DPI)), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=40)
    x, y = SCAN_TEXT_PX
    boxes = []
    for i, line in enumerate(SCAN_LINES):
        draw.text((x, y + 80 * i), line, fill="black", font=font)
        boxes.append(draw.textbbox((x, y + 80 * i), line, font=font))
    return img, (min(b[0] for b in boxes), min(b[1] for b in boxes),
                 max(b[2] for b in boxes), max(b[3] for b in boxes))


def _as_pdf(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PDF", resolution=SCAN_DPI)
    return buf.getvalue()


def _points(box: tuple[float, ...]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (v * 72 / SCAN_DPI for v in box)
    return x0, y0, x1, y1


def scan_pdf() -> tuple[bytes, tuple[float, float, float, float]]:
    """An image-only page (OCR reads it) and its lines' region in points."""
    img, box = _scan()
    return _as_pdf(img), _points(box)


def sideways_pdf() -> tuple[bytes, tuple[float, float, float, float]]:
    """The scan fed into the scanner sideways (turned a quarter counter-clockwise), so
    the page is landscape and OCR reads it turned; the lines' region in points."""
    img, (x0, y0, x1, y1) = _scan()
    # ROTATE_90 is counter-clockwise: upright (x, y) lands at (y, width - x)
    box = (y0, img.width - x1, y1, img.width - x0)
    return _as_pdf(img.transpose(Image.Transpose.ROTATE_90)), _points(box)


SCAN, SCAN_LINE = scan_pdf()
SIDEWAYS, SIDEWAYS_LINE = sideways_pdf()


@pytest.fixture(scope="module")
def highlight_url(tmp_path_factory) -> Iterator[str]:
    from mmrag.server import create_app

    root = tmp_path_factory.mktemp("highlight")
    docs = root / "docs"
    docs.mkdir()
    (docs / "chart.pdf").write_bytes(chart_pdf())
    (docs / "photo.pdf").write_bytes(photo_pdf())
    (docs / "turned.pdf").write_bytes(turned_pdf())
    (docs / "scan.pdf").write_bytes(SCAN)
    (docs / "sideways.pdf").write_bytes(SIDEWAYS)
    (docs / "cropped.pdf").write_bytes(cropped_pdf())
    (docs / "plain.pdf").write_bytes(make_text_pdf(["The ferry timetable changes in May."]))
    # OCR on (the scan needs it); hashing vectors: the viewer is under test, not ranking
    with Index(root / "idx", encode__text_encoder="hashing") as index:
        report = index.add(docs)
        assert not report.failed, report.failed
    with serve_in_thread(create_app(root / "idx")) as url:
        yield url


def api_hits(page, query: str) -> list[dict]:
    return page.evaluate("""q => fetch('collections/default/search?k=20&group_by=item&q='
        + encodeURIComponent(q)).then(r => r.json()).then(d => d.hits)""", query)


def find_hit(page, query: str, name: str, modality: str) -> dict:
    hits = [h for h in api_hits(page, query) if h["name"] == name
            and h["modality"] == modality]
    assert hits, f"no {modality} hit of {name} for {query!r}"
    return hits[0]


def list_every_item(page, edit: Callable[[list[dict]], None] | None = None) -> None:
    """Make the page's own searches list every item (``group_by=item``): by default a
    figure is grouped under its page's best item and may not be listed at all. ``edit``
    may change the hits the page receives."""

    def handler(route) -> None:
        url = route.request.url + "&group_by=item"
        if edit is None:
            route.continue_(url=url)
            return
        response = route.fetch(url=url)
        data = response.json()
        edit(data.get("hits", []))
        route.fulfill(response=response, json=data)

    page.route("**/collections/default/search?*", handler)


def open_hit(page, hit: dict) -> None:
    """Open the viewer on ``hit`` through the page's own result list."""
    page.get_by_test_id("search-input").fill(hit["snippet"].split("\n")[0][:60] or hit["name"])
    page.get_by_test_id("search-input").press("Enter")
    result = page.locator(f"[data-testid=result][data-id='{hit['id']}']")
    result.wait_for()
    result.click()
    page.wait_for_selector("[data-testid=viewer-image][data-loaded='true']")


def drawn_box(page) -> tuple[dict, dict]:
    """The displayed page image's and the box's rectangles (CSS pixels)."""
    page.wait_for_selector("[data-testid=viewer-bbox]:not([hidden])")
    img = page.get_by_test_id("viewer-image").bounding_box()
    box = page.get_by_test_id("viewer-bbox").bounding_box()
    return img, box


def assert_box_on(img: dict, box: dict, region: tuple[float, float, float, float],
                  size: tuple[float, float], tol: float) -> None:
    """``box`` (drawn) covers ``region`` (points of a page of ``size`` points, top-left
    origin) on ``img`` (the page as displayed), to within ``tol`` of the page's sides."""
    sx, sy = img["width"] / size[0], img["height"] / size[1]
    want = (img["x"] + region[0] * sx, img["y"] + region[1] * sy,
            img["x"] + region[2] * sx, img["y"] + region[3] * sy)
    got = (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"])
    slack = (tol * img["width"], tol * img["height"]) * 2
    for g, w, s, side in zip(got, want, slack, ("left", "top", "right", "bottom"),
                             strict=True):
        assert abs(g - w) <= s, f"box {side} at {g:.1f}px, expected {w:.1f}px (±{s:.1f})"


INK = {  # what the region's pixels look like under the box's pale red tint
    "red": lambda r, g, b: r > 150 and g < 120 and b < 120,
    "green": lambda r, g, b: g > 70 and r < 90 and b < 90,
    "black": lambda r, g, b: r < 90 and g < 90 and b < 90,
}


def ink_share(page, box: dict, ink: str) -> float:
    """The share of ``ink`` pixels inside ``box`` (its 3 px border left out)."""
    shot = Image.open(io.BytesIO(page.screenshot(clip={
        "x": box["x"] + 4, "y": box["y"] + 4, "width": max(box["width"] - 8, 1),
        "height": max(box["height"] - 8, 1)}))).convert("RGB")
    px = np.asarray(shot).reshape(-1, 3).astype(int)
    hits = sum(1 for r, g, b in px if INK[ink](r, g, b))
    return hits / max(len(px), 1)


CASES = [  # query, file, modality, region (points, top-left origin), page size, ink
    ("green bars growth", "chart.pdf", "image", CHART, LETTER, "green"),
    ("cargo by month", "photo.pdf", "image", PHOTO, LETTER, "red"),
    ("turned cargo chart", "turned.pdf", "image", TURNED, (LETTER[1], LETTER[0]), "red"),
    ("cropped cargo chart", "cropped.pdf", "image", CROPPED, (512.0, 642.0), "red"),
    ("lighthouse keeper logbook", "scan.pdf", "text", SCAN_LINE, LETTER, "black"),
    ("lighthouse keeper logbook", "sideways.pdf", "text", SIDEWAYS_LINE,
     (LETTER[1], LETTER[0]), "black"),
]


@pytest.mark.parametrize("viewport", [(1280, 900), (1280, 560), (420, 820)],
                         ids=["wide", "short", "narrow"])
@pytest.mark.parametrize(("query", "name", "modality", "region", "size", "ink"), CASES,
                         ids=[c[1].removesuffix(".pdf") for c in CASES])
def test_box_lies_on_the_hit_region(browser, highlight_url, request, viewport,  # noqa: F811
                                    query, name, modality, region, size, ink):
    context, page, watch = open_page(browser, width=viewport[0], height=viewport[1])
    try:
        list_every_item(page)
        page.goto(highlight_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        hit = find_hit(page, query, name, modality)
        assert hit["bbox"] and hit["page_url"], hit
        assert (hit["page_width"], hit["page_height"]) == pytest.approx(size, abs=1), hit
        open_hit(page, hit)
        natural = page.get_by_test_id("viewer-image").evaluate(
            "i => i.naturalWidth / i.naturalHeight")
        assert natural == pytest.approx(size[0] / size[1], rel=0.02)  # the page, not a crop
        img, box = drawn_box(page)
        # the box is the item's bbox on the page as displayed (1 %: rounding to pixels)...
        assert_box_on(img, box, tuple(hit["bbox"]), size, 0.01)
        # ...that bbox is where the region was drawn...
        assert_box_on(img, box, region, size, TOL)
        # ...and the screenshot shows the region's pixels under it
        assert ink_share(page, box, ink) > 0.02
        screenshot(page, request.node.name)
        watch.assert_clean()
    finally:
        context.close()


def test_text_chunk_shows_its_page_without_a_box(browser, highlight_url):  # noqa: F811
    context, page, watch = open_page(browser)
    try:
        list_every_item(page)
        page.goto(highlight_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        hit = find_hit(page, "ferry timetable", "plain.pdf", "text")
        assert hit["bbox"] is None and hit["page_url"]
        open_hit(page, hit)
        assert page.get_by_test_id("viewer-bbox").is_hidden()
        watch.assert_clean()
    finally:
        context.close()


@pytest.mark.parametrize("missing", [("page_url",), ("page_url", "page_width", "page_height")],
                         ids=["no-page", "no-frame"])
def test_a_box_is_never_guessed_onto_another_picture(browser, highlight_url,  # noqa: F811
                                                     missing):
    """A figure hit whose page is unknown shows its crop: its bbox (points of the page)
    must not be drawn over the crop as if it were in the crop's pixels (at 110 dpi that
    drew a box of 72/110 the figure's size, off its place)."""
    context, page, watch = open_page(browser)

    def without_page(hits: list[dict]) -> None:
        for hit in hits:
            hit.update(dict.fromkeys(missing))

    try:
        list_every_item(page, without_page)
        page.goto(highlight_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        hit = find_hit(page, "green bars growth", "chart.pdf", "image")  # unchanged API
        open_hit(page, hit)
        shown = page.get_by_test_id("viewer-image").get_attribute("src")
        assert shown and hit["media_url"].lstrip("/") in shown  # the crop itself
        assert page.get_by_test_id("viewer-bbox").is_hidden()
        watch.assert_clean()
    finally:
        context.close()
