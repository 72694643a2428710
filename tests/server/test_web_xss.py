"""Hostile documents on the web page: markup in their names, text, captions and OCR text
is shown as text, never run and never turned into elements.

The index holds files whose every user-visible string carries a payload that would set
``window.__xss`` (or open an ``alert``) if it ever reached the DOM as HTML or a URL:
file names, Markdown and HTML text (a ``javascript:`` link among them), a PDF figure's
caption, and the OCR text of a picture and of a scanned page (read by a fake OCR engine
that returns the payloads as lines, with boxes). The tests search, open each hit in the
viewer, ask for an answer that quotes them, upload a file named like markup, and check
that no script ran, no dialog opened and no element was injected.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image

from mmrag import Index
from mmrag.ingest.ocr import OCRLine, ocr_engines
from tests.factories import _pdf_escape, make_image_pdf, make_png, make_raster_figure_pdf
from tests.server.browser import browser, open_page, screenshot  # noqa: F401 (fixture)
from tests.server.conftest import serve_in_thread

pytestmark = pytest.mark.browser

IMG = '<img src=x onerror="window.__xss=1;alert(1)">'
SCRIPT = "<script>window.__xss=2;alert(2)</script>"
JS_LINK = "javascript:window.__xss=3;alert(3)"
SVG = "<svg onload=window.__xss=4>"
PAYLOADS = (IMG, SCRIPT, JS_LINK, SVG)


class HostileOCR:
    """An OCR engine that reads payloads off any picture, one line each, with boxes."""

    name = "hostile-test"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def read(self, image: Image.Image) -> list[OCRLine]:
        w, h = image.size
        texts = [f"mooring {IMG}", f"mooring {SCRIPT}", f"see {JS_LINK}"]
        step = h / (len(texts) + 1)
        return [OCRLine(t, (w * 0.1, step * i + 2, w * 0.9, step * (i + 1)), 0.99)
                for i, t in enumerate(texts)]


if "hostile-test" not in ocr_engines:
    ocr_engines.register("hostile-test")(HostileOCR)


def caption_pdf() -> bytes:
    """A raster figure captioned with markup (Helvetica prints ``<`` and ``>``)."""
    img = Image.new("RGB", (200, 150), (200, 30, 30))
    content = b"\n".join([
        b"q 300 0 0 225 100 450 cm /Im0 Do Q",
        b"BT /F1 10 Tf 100 432 Td (%s) Tj ET" % _pdf_escape(f"Figure 1: mooring {IMG}"),
        b"BT /F1 10 Tf 100 400 Td (%s) Tj ET" % _pdf_escape(f"mooring {SCRIPT} {SVG}"),
    ])
    return make_raster_figure_pdf(img, content)


@pytest.fixture(scope="module")
def xss_url(tmp_path_factory) -> Iterator[str]:
    from mmrag.server import create_app

    root = tmp_path_factory.mktemp("xss")
    docs = root / "docs"
    docs.mkdir()
    (docs / f"{IMG.replace('/', '')}.md").write_text(
        f"# Mooring {SVG}\n\nThe mooring mast: {IMG} and {SCRIPT}.\n\n"
        f"[mooring guide]({JS_LINK}) <a href=\"{JS_LINK}\">mooring link</a>\n")
    (docs / f"{SVG}.txt").write_text(f"Mooring lines, checked weekly. {SCRIPT}")
    (docs / "entities.html").write_text(
        "<html><body><p>Mooring &lt;img src=x onerror=&quot;window.__xss=1&quot;&gt; "
        "and &lt;script&gt;window.__xss=2&lt;/script&gt;</p></body></html>")
    (docs / "caption.pdf").write_bytes(caption_pdf())
    (docs / "picture.png").write_bytes(make_png((40, 90, 200), (160, 120)))
    (docs / "scan.pdf").write_bytes(make_image_pdf(size=(400, 300), color="white"))
    with Index(root / "idx", encode__text_encoder="hashing",
               ingest__ocr_engine="hostile-test",
               ingest__ocr_cache=str(root / "ocr-cache")) as index:
        report = index.add(docs)
        assert not report.failed, report.failed
    with serve_in_thread(create_app(root / "idx")) as url:
        yield url


@pytest.fixture()
def hostile_page(browser, xss_url, request):  # noqa: F811
    """The page with a record of dialogs; on teardown no script may have run."""
    context, page, watch = open_page(browser)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(xss_url + "/")
    page.wait_for_selector("body[data-ready='true']")
    yield page
    try:
        screenshot(page, request.node.name)
        assert_nothing_ran(page, dialogs)
        watch.assert_clean()
    finally:
        context.close()


def assert_nothing_ran(page, dialogs: list[str]) -> None:
    assert page.evaluate("window.__xss") is None, "a payload ran"
    assert not dialogs, f"a payload opened dialogs: {dialogs}"


INJECTED = ("script, svg, iframe, object, embed, [onerror], [onload], "
            "a[href^='javascript:' i], img:not([data-testid=result-thumb])"
            ":not(#viewer-image):not(#image-chip-thumb)")


def injected(page) -> list[str]:
    """Elements a payload would add: anything script-capable in the page's body."""
    return page.eval_on_selector_all(f"body :is({INJECTED})",
                                     "els => els.map(e => e.outerHTML.slice(0, 80))")


def search(page, text: str) -> list[dict]:
    page.get_by_test_id("search-input").fill(text)
    page.get_by_test_id("search-input").press("Enter")
    page.wait_for_function(
        "document.querySelector('[data-testid=search-status]').textContent.includes('result')")
    return page.eval_on_selector_all("[data-testid=result]", """els => els.map(e => ({
        name: e.querySelector('[data-testid=result-name]').textContent,
        snippet: e.querySelector('[data-testid=result-snippet]').textContent,
        imgs: e.querySelectorAll('img').length,
        thumbs: e.querySelectorAll('img[data-testid=result-thumb]').length,
    }))""")


def test_names_snippets_captions_and_ocr_text_render_as_text(hostile_page):
    page = hostile_page
    shown = search(page, "mooring")
    names = {r["name"] for r in shown}
    assert f"{IMG}.md" in names and f"{SVG}.txt" in names, names
    text = " ".join(r["name"] + " " + r["snippet"] for r in shown)
    for payload in (IMG, SCRIPT, JS_LINK):  # the payloads, shown literally
        assert payload in text, payload
    snippets = {r["name"]: r["snippet"] for r in shown}
    assert IMG in snippets.get("caption.pdf", ""), "the caption's markup is shown as text"
    assert any(IMG in snippets.get(n, "") for n in ("picture.png", "scan.pdf")), \
        "the OCR text's markup is shown as text"
    # every result holds at most its own thumbnail: no <img> came from the payloads
    assert all(r["imgs"] == r["thumbs"] <= 1 for r in shown), shown
    assert injected(page) == []


def test_viewer_and_answer_show_markup_as_text(hostile_page):
    page = hostile_page
    shown = search(page, "mooring")
    for i in range(len(shown)):
        page.locator("[data-testid=result]").nth(i).click()
        viewer = page.get_by_test_id("viewer")
        viewer.wait_for()
        title = page.get_by_test_id("viewer-title").inner_text()
        assert title.startswith(shown[i]["name"])
        assert injected(page) == [], shown[i]["name"]
        page.get_by_test_id("viewer-close").click()
        viewer.wait_for(state="hidden")
    page.get_by_test_id("ask-input").fill("What is said about the mooring mast?")
    page.get_by_test_id("ask-button").click()
    page.wait_for_selector("[data-testid=answer][data-state='done']", timeout=60_000)
    answer = page.get_by_test_id("answer").inner_text()
    assert any(p in answer for p in PAYLOADS), answer  # quoted as text
    assert page.locator("[data-testid=citation-link]").count() >= 1
    page.locator("[data-testid=citation-link]").first.click()
    page.get_by_test_id("viewer").wait_for()
    assert injected(page) == []


def test_an_uploaded_file_named_like_markup_shows_its_name(hostile_page):
    page = hostile_page
    name = f"{SVG}{IMG.replace('/', '')}.txt"
    page.get_by_test_id("upload-input").set_input_files(files=[
        {"name": name, "mimeType": "text/plain",
         "buffer": f"Harbour dues {SCRIPT} paid in mooring fees.".encode()}])
    row = page.locator("[data-testid=upload]").first
    page.wait_for_selector("[data-testid=upload][data-state='done'], "
                           "[data-testid=upload][data-state='failed']", timeout=120_000)
    assert row.get_by_test_id("upload-name").inner_text() == name
    assert injected(page) == []
    shown = search(page, "harbour dues")
    assert any(SCRIPT in r["snippet"] for r in shown), shown
    assert injected(page) == []
