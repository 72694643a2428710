"""The web page at ``/``, driven in headless Debian chromium against the real server.

Each test opens a fresh browser context on one shared server (uvicorn in a thread) over
an index built here from files made in code: a three-page text PDF, a PDF whose page 1
holds a captioned raster figure (a hit with a bbox), a Markdown note and two images of
different colours. Every test checks the page made no request off the machine and
logged no console error, and saves a screenshot under ``tests/artifacts/web/`` (or
``$MMRAG_TEST_ARTIFACTS/web/``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mmrag import Index
from tests.factories import _pdf_escape, make_png, make_raster_figure_pdf, make_text_pdf
from tests.server.browser import browser, open_page, screenshot  # noqa: F401 (fixture)
from tests.server.conftest import FAST, serve_in_thread

pytestmark = pytest.mark.browser

PAGE_PT = (612, 792)
FIGURE_PT = (100.0, 450.0, 300.0, 225.0)  # x, y, w, h in PDF user space (bottom-left origin)
# The same box in the API's convention: PDF points, top-left origin.
FIGURE_BOX = (FIGURE_PT[0], PAGE_PT[1] - FIGURE_PT[1] - FIGURE_PT[3],
              FIGURE_PT[0] + FIGURE_PT[2], PAGE_PT[1] - FIGURE_PT[1])


def figure_pdf() -> bytes:
    """One page: a red disc drawn as a raster image at FIGURE_PT, captioned below."""
    img = Image.new("RGB", (200, 150), "white")
    ImageDraw.Draw(img).ellipse((10, 10, 190, 140), fill="red")
    x, y, w, h = FIGURE_PT
    content = b"\n".join([
        b"q %g 0 0 %g %g %g cm /Im0 Do Q" % (w, h, x, y),
        b"BT /F1 10 Tf 100 432 Td (%s) Tj ET" % _pdf_escape(
            "Figure 1: A red lighthouse lamp seen from the pier."),
        b"BT /F1 12 Tf 72 720 Td (Coastal survey of the northern harbour.) Tj ET",
    ])
    return make_raster_figure_pdf(img, content, PAGE_PT)


def blue_picture(size: tuple[int, int] = (96, 64)) -> bytes:
    return make_png((30, 60, 220), size)


@pytest.fixture(scope="module")
def web_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("web")
    docs = root / "docs"
    docs.mkdir()
    (docs / "report.pdf").write_bytes(make_text_pdf([
        "Quarterly revenue rose to 42 million euros.",
        "The zeppelin hangar was rebuilt in aluminium in 1931.",
        "Staff turnover fell by three percent."]))
    (docs / "survey.pdf").write_bytes(figure_pdf())
    (docs / "notes.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering twice a week.\n")
    (docs / "harbour.png").write_bytes(blue_picture())
    (docs / "sunset.png").write_bytes(make_png((240, 140, 20), (96, 64)))
    # Server text that looks like markup: the page must show it, never run it.
    (docs / "markup.txt").write_text('Escaping rules: a < b && c > d; write '
                                     '<img src=x onerror="window.pwned=1"> on the mooring mast.')
    (docs / "<b>bold<i>.txt").write_text("Mooring lines are checked every week.")
    with Index(root / "idx", **FAST) as index:
        report = index.add(docs)
        assert not report.failed, report.failed
    return root / "idx"


@pytest.fixture(scope="module")
def web_url(web_index) -> Iterator[str]:
    from mmrag.server import create_app

    with serve_in_thread(create_app(web_index)) as url:
        yield url


@pytest.fixture()
def page_of(browser, web_url, request):  # noqa: F811 (browser is a fixture)
    """``page_of(width=...)`` opens ``/`` in a fresh context; on teardown the page is
    screenshotted and checked for console errors and off-machine requests."""
    opened = []

    def open_(width: int = 1280, height: int = 900, allow_console: str | None = None):
        context, page, watch = open_page(browser, width=width, height=height)
        watch.allow_console = allow_console
        opened.append((context, page, watch))
        page.goto(web_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        return page

    yield open_
    for i, (context, page, watch) in enumerate(opened):
        try:
            screenshot(page, request.node.name + (f"-{i}" if i else ""))
            watch.assert_clean()
        finally:
            context.close()


def search(page, text: str) -> None:
    page.get_by_test_id("search-input").fill(text)
    page.get_by_test_id("search-input").press("Enter")
    page.wait_for_function(
        "document.querySelector('[data-testid=search-status]').textContent.includes('result')")


def results(page) -> list[dict[str, str]]:
    return page.eval_on_selector_all("[data-testid=result]", """els => els.map(e => ({
        name: e.querySelector('[data-testid=result-name]').textContent,
        page: e.querySelector('[data-testid=result-page]').textContent,
        score: e.querySelector('[data-testid=result-score]').textContent,
        snippet: e.querySelector('[data-testid=result-snippet]').textContent,
        marks: [...e.querySelectorAll('[data-testid=result-snippet] mark')]
               .map(m => m.textContent.toLowerCase()),
    }))""")


def wait_for_thumbnails(page) -> None:
    """Until every result's picture has loaded (a broken one never does)."""
    page.wait_for_function("""() => {
        const imgs = [...document.querySelectorAll('img[data-testid=result-thumb]')];
        return imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0); }""")


def drop_files(page, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    """Dispatch a real ``drop`` event carrying ``files`` (name, mime, bytes) on selector."""
    payload = [[n, m, base64.b64encode(b).decode()] for n, m, b in files]
    page.eval_on_selector(selector, """(el, files) => {
        const dt = new DataTransfer();
        for (const [name, type, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            dt.items.add(new File([bytes], name, {type}));
        }
        el.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
        el.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true,
                                                cancelable: true}));
    }""", payload)


def test_page_loads_offline_with_collections(page_of, web_url):
    page = page_of()
    assert page.title() == "mmrag"
    picker = page.get_by_test_id("collection")
    assert picker.input_value() == "default"
    assert "default" in picker.inner_text()
    # Every control a user needs has an accessible name.
    for label in ("Search query", "Search by image", "Question", "Files to add", "API key",
                  "Collection"):
        assert page.get_by_label(label, exact=True).count() >= 1, label
    # The page and its assets come from the package, not from a CDN.
    html = page.content()
    assert "static/app.js" in html and "static/style.css" in html
    assert not re.search(r"(src|href)=\"https?://", html)


def test_search_by_text_shows_file_page_score_and_highlighted_snippet(page_of):
    page = page_of()
    search(page, "zeppelin hangar")
    hits = results(page)
    assert hits, "no results shown"
    top = hits[0]
    assert top["name"] == "report.pdf"
    assert top["page"] == "page 2"
    assert re.fullmatch(r"\d+\.\d{3}", top["score"]), top["score"]
    assert "zeppelin hangar was rebuilt" in top["snippet"]
    assert {"zeppelin", "hangar"} <= set(top["marks"])
    wait_for_thumbnails(page)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A second server whose index has an API key: ``(url, key)``."""
    from mmrag.server import create_app
    from mmrag.server.keys import KEYS_FILE, KeyStore

    root = tmp_path_factory.mktemp("web-keyed")
    (root / "docs").mkdir()
    (root / "docs" / "ledger.pdf").write_bytes(make_text_pdf(["Invoices are paid in March."]))
    (root / "docs" / "stamp.png").write_bytes(blue_picture())
    with Index(root / "idx", **FAST) as index:
        assert not index.add(root / "docs").failed
    token, _ = KeyStore(root / "idx" / KEYS_FILE).create("write")
    with serve_in_thread(create_app(root / "idx")) as url:
        yield url, token


def test_api_key_is_stored_and_sent_as_bearer(browser, keyed):  # noqa: F811
    url, token = keyed
    context, page, watch = open_page(browser)
    watch.allow_console = r"status of 401"  # the calls made before the key is entered
    try:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='true']")
        error = page.get_by_test_id("error")
        assert error.is_visible()
        assert "API key" in error.inner_text() and "\n" not in error.inner_text()
        page.get_by_test_id("api-key").fill(token)
        page.get_by_test_id("api-key").press("Enter")
        assert page.evaluate("localStorage.getItem('mmrag.apiKey')") == token
        error.wait_for(state="hidden")
        with page.expect_request(lambda r: "/search" in r.url) as sent:
            search(page, "invoices paid")
        assert sent.value.headers.get("authorization") == f"Bearer {token}"
        assert results(page)[0]["name"] == "ledger.pdf"
        # An <img> cannot send the header: thumbnails are fetched with it, shown as blobs.
        wait_for_thumbnails(page)
        assert page.eval_on_selector_all("img[data-testid=result-thumb]",
                                         "imgs => imgs.every(i => i.src.startsWith('blob:'))")
        # Uploads send it too.
        page.get_by_test_id("upload-input").set_input_files(files=[
            {"name": "memo.pdf", "mimeType": "application/pdf",
             "buffer": make_text_pdf(["The audit closes in April."])}])
        page.wait_for_selector("[data-testid=upload][data-state='done']", timeout=120_000)
        watch.console_errors.clear()  # from here on, nothing may fail
        page.reload()
        page.wait_for_selector("body[data-ready='true']")
        assert page.get_by_test_id("api-key").input_value() == token
        assert page.get_by_test_id("error").is_hidden()
        search(page, "audit closes")
        assert results(page)[0]["name"] == "memo.pdf"
        wait_for_thumbnails(page)
        screenshot(page, "api-key")
        watch.assert_clean()
    finally:
        context.close()


def test_server_text_is_shown_as_text_never_as_markup(page_of):
    page = page_of()
    search(page, "mooring mast")
    hits = {h["name"]: h for h in results(page)}
    assert "<b>bold<i>.txt" in hits
    snippet = hits["markup.txt"]["snippet"]
    assert '<img src=x onerror="window.pwned=1">' in snippet and "a < b && c > d" in snippet
    assert {"mooring", "mast"} <= set(hits["markup.txt"]["marks"])
    # Nothing but the page's own elements: no <b>, <i> or extra <img> from server text.
    assert page.locator("[data-testid=results] b, [data-testid=results] i").count() == 0
    assert page.locator("[data-testid=results] img:not([data-testid=result-thumb])").count() == 0
    assert page.evaluate("window.pwned") is None
    # A text hit has no picture: the viewer shows its text alone.
    page.locator("[data-testid=result]").filter(has_text="markup.txt").first.click()
    assert page.get_by_test_id("viewer-title").inner_text().startswith("markup.txt")
    assert page.get_by_test_id("viewer-stage").is_hidden()
    assert "onerror" in page.get_by_test_id("viewer-snippet").inner_text()
    assert page.evaluate("window.pwned") is None


def test_search_by_dropped_image_ranks_the_same_picture_first(page_of):
    page = page_of()
    drop_files(page, "[data-testid=search-form]",
               [("query.png", "image/png", blue_picture((80, 54)))])
    page.wait_for_function(
        "document.querySelector('[data-testid=search-status]').textContent.includes('result')")
    assert page.get_by_test_id("image-chip").is_visible()
    assert page.get_by_test_id("image-chip-name").inner_text() == "query.png"
    assert results(page)[0]["name"] == "harbour.png"
    wait_for_thumbnails(page)
    screenshot(page, "search-by-image")
    page.get_by_test_id("image-chip-remove").click()
    assert page.get_by_test_id("image-chip").is_hidden()


def test_search_by_pasted_image_and_by_file_input(page_of):
    page = page_of()
    orange = make_png((240, 140, 20), (72, 48))
    page.get_by_test_id("search-input").focus()
    page.evaluate("""b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
        document.activeElement.dispatchEvent(new ClipboardEvent('paste',
            {clipboardData: dt, bubbles: true, cancelable: true}));
    }""", base64.b64encode(orange).decode())
    page.wait_for_function("""() => {
        const r = document.querySelector('[data-testid=result-name]');
        return r && r.textContent === 'sunset.png'; }""")
    assert page.get_by_test_id("image-chip-name").inner_text() == "pasted.png"
    page.get_by_test_id("search-image-input").set_input_files(
        files=[{"name": "blue.png", "mimeType": "image/png", "buffer": blue_picture()}])
    page.wait_for_function("""() => {
        const r = document.querySelector('[data-testid=result-name]');
        return r && r.textContent === 'harbour.png'; }""")
    assert page.get_by_test_id("image-chip-name").inner_text() == "blue.png"


def test_clicking_a_figure_hit_shows_the_page_with_its_box(page_of):
    page = page_of()
    search(page, "red lighthouse lamp")
    hit = page.locator("[data-testid=result]").filter(has_text="survey.pdf").first
    hit.click()
    viewer = page.get_by_test_id("viewer")
    assert viewer.is_visible()
    assert "survey.pdf" in page.get_by_test_id("viewer-title").inner_text()
    page.wait_for_selector("[data-testid=viewer-image][data-loaded='true']")
    page.wait_for_selector("[data-testid=viewer-bbox]:not([hidden])")
    img = page.get_by_test_id("viewer-image")
    natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    # The viewer shows the whole page render (page aspect), not the cropped figure.
    assert natural[0] / natural[1] == pytest.approx(PAGE_PT[0] / PAGE_PT[1], rel=0.02)
    ib = img.bounding_box()
    bb = page.get_by_test_id("viewer-bbox").bounding_box()
    sx, sy = ib["width"] / PAGE_PT[0], ib["height"] / PAGE_PT[1]
    x0, y0, x1, y1 = FIGURE_BOX
    tol = 4  # px: figure detection is to the point, rounding to the pixel
    assert bb["x"] == pytest.approx(ib["x"] + x0 * sx, abs=tol)
    assert bb["y"] == pytest.approx(ib["y"] + y0 * sy, abs=tol)
    assert bb["width"] == pytest.approx((x1 - x0) * sx, abs=tol)
    assert bb["height"] == pytest.approx((y1 - y0) * sy, abs=tol)
    screenshot(page, "viewer-figure-box")
    page.keyboard.press("Escape")
    assert viewer.is_hidden()
    # A plain text hit has no box: the page is shown without one.
    page.locator("[data-testid=result]").filter(has_text="report.pdf").first.click()
    page.wait_for_selector("[data-testid=viewer-image][data-loaded='true']")
    assert page.get_by_test_id("viewer-bbox").is_hidden()
    page.get_by_test_id("viewer-close").click()
    assert viewer.is_hidden()


def test_ask_streams_an_answer_with_clickable_citations(page_of):
    page = page_of()
    page.get_by_test_id("ask-input").fill("When was the zeppelin hangar rebuilt?")
    page.get_by_test_id("ask-button").click()
    page.wait_for_selector("[data-testid=answer][data-state='done']", timeout=60_000)
    answer = page.get_by_test_id("answer")
    assert int(answer.get_attribute("data-deltas")) >= 1  # rendered from delta events
    assert "1931" in answer.inner_text()
    links = page.locator("[data-testid=answer] [data-testid=citation-link]")
    assert links.count() >= 1
    assert re.fullmatch(r"\[\d+\]", links.first.inner_text())
    listed = page.get_by_test_id("citation")
    assert any("report.pdf, page 2" in t for t in listed.all_inner_texts())
    screenshot(page, "ask-answer")
    number = links.first.get_attribute("data-number")
    cited = page.locator(f"[data-testid=citation]:has([data-number='{number}'])").inner_text()
    links.first.click()
    assert page.get_by_test_id("viewer").is_visible()
    title = page.get_by_test_id("viewer-title").inner_text()
    assert title.split(" — ")[0] in cited
    page.wait_for_selector("[data-testid=viewer-image][data-loaded='true']")


def test_upload_shows_progress_per_file_and_a_one_line_error(page_of):
    page = page_of()
    page.get_by_test_id("upload-input").set_input_files(files=[
        {"name": "minutes.pdf", "mimeType": "application/pdf",
         "buffer": make_text_pdf(["The orchid greenhouse opens in May."])},
        {"name": "broken.pdf", "mimeType": "application/pdf",
         "buffer": b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrunc"},
    ])
    drop_files(page, "[data-testid=upload-drop]",
               [("dropped.png", "image/png", make_png((20, 160, 60), (40, 30)))])
    page.wait_for_selector("[data-testid=upload][data-name='dropped.png'][data-state='done']",
                           timeout=120_000)
    good = page.locator("[data-testid=upload][data-name='minutes.pdf']")
    bad = page.locator("[data-testid=upload][data-name='broken.pdf']")
    page.wait_for_selector("[data-testid=upload][data-name='minutes.pdf'][data-state='done']",
                           timeout=120_000)
    page.wait_for_selector("[data-testid=upload][data-name='broken.pdf'][data-state='failed']",
                           timeout=120_000)
    assert good.get_by_test_id("upload-status").inner_text() == "done"
    assert good.get_by_test_id("upload-progress").evaluate("p => p.value") == 1
    assert good.get_by_test_id("upload-error").is_hidden()
    error = bad.get_by_test_id("upload-error")
    assert error.is_visible()
    message = error.text_content()
    assert message.strip() and "\n" not in message and "Traceback" not in message
    screenshot(page, "upload")
    # The added file is searchable at once.
    search(page, "orchid greenhouse")
    assert results(page)[0]["name"] == "minutes.pdf"


def test_new_collection_on_a_data_server_takes_uploads(browser, tmp_path):  # noqa: F811
    """``mmrag serve --data DIR``: start empty, create a collection, add a file, find it."""
    from mmrag.server import create_app

    with serve_in_thread(create_app(data=tmp_path / "data", **FAST)) as url:
        context, page, watch = open_page(browser)
        try:
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='true']")
            page.get_by_test_id("new-collection").click()
            page.get_by_test_id("new-collection-name").fill("photos")
            page.get_by_test_id("new-collection-create").click()
            picker = page.get_by_test_id("collection")
            page.wait_for_function(
                "document.querySelector('[data-testid=collection]').value === 'photos'")
            assert picker.locator("option").all_inner_texts() == ["photos (0)"]
            page.get_by_test_id("upload-input").set_input_files(files=[
                {"name": "lagoon.png", "mimeType": "image/png", "buffer": blue_picture()}])
            page.wait_for_selector("[data-testid=upload][data-state='done']",
                                   timeout=120_000)
            page.wait_for_function(  # the picker's count follows the upload
                "document.querySelector('[data-testid=collection]').textContent"
                ".includes('photos (1)')")
            search(page, "lagoon")
            assert results(page)[0]["name"] == "lagoon.png"
            screenshot(page, "data-server")
            watch.assert_clean()
        finally:
            context.close()


def test_api_errors_show_as_one_line(page_of):
    # Chromium logs the 404 this test provokes; no other console error is allowed.
    page = page_of(allow_console=r"status of 404")
    page.get_by_test_id("collection").evaluate("""s => {
        const o = document.createElement('option');
        o.value = o.textContent = 'no-such-collection';
        s.append(o); s.value = 'no-such-collection'; }""")
    page.get_by_test_id("search-input").fill("anything")
    page.get_by_test_id("search-button").click()
    error = page.get_by_test_id("error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert text.strip() and "\n" not in text and "{" not in text
    assert "no-such-collection" in text  # the server's message, not a generic one
    assert page.locator("[data-testid=result]").count() == 0
    page.get_by_test_id("ask-input").fill("anything?")
    page.get_by_test_id("ask-button").click()
    page.wait_for_selector("[data-testid=answer][data-state='failed']")
    assert "no-such-collection" in page.get_by_test_id("answer").inner_text()
    assert "\n" not in error.inner_text()

def test_narrow_screen_stacks_without_horizontal_scroll(page_of):
    page = page_of(width=390, height=844)
    search(page, "zeppelin")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    xs = {round(b["x"]) for b in (r.bounding_box() for r in
                                  page.locator("[data-testid=result]").all())}
    assert len(xs) == 1, xs  # one column
    page.locator("[data-testid=result]").first.click()
    page.wait_for_selector("[data-testid=viewer-image][data-loaded='true']")
    vb = page.get_by_test_id("viewer-image").bounding_box()
    assert vb["x"] >= 0 and vb["x"] + vb["width"] <= 390


@pytest.fixture(scope="module")
def speech_url(tmp_path_factory) -> Iterator[str]:
    """A collection holding one espeak-ng recording, transcribed by the bundled model."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng (Debian package) is not installed")
    from mmrag.server import create_app
    from tests.ingest.test_audio import speech_wav

    root = tmp_path_factory.mktemp("speech")
    with Index(root / "idx", **FAST) as index:
        report = index.add([("door.wav", speech_wav(root))])
        assert not report.failed and report.items, report
    with serve_in_thread(create_app(root / "idx")) as url:
        yield url


def test_a_transcript_hit_plays_its_spoken_words(browser, speech_url, request):  # noqa: F811
    context, page, watch = open_page(browser)
    try:
        page.goto(speech_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        search(page, "door")
        first = results(page)[0]
        assert first["name"] == "door.wav" and first["page"].startswith("at 00:0")
        assert page.locator("[data-testid=result] img").count() == 0  # no picture to show
        page.locator("[data-testid=result]").first.click()
        audio = page.get_by_test_id("viewer-audio")
        assert audio.is_visible() and page.get_by_test_id("viewer-stage").is_hidden()
        page.wait_for_function("document.querySelector('[data-testid=viewer-audio]')"
                               ".readyState >= 1")  # the Ogg/Opus clip decoded its header
        seconds = audio.evaluate("a => a.duration")
        assert 0.3 < seconds < 6.0
        screenshot(page, request.node.name)
        page.keyboard.press("Escape")
        # the key event is handled asynchronously: wait (bounded) for the viewer to stop
        page.wait_for_function("() => { const a = document.querySelector("
                               "'[data-testid=viewer-audio]'); "
                               "return a.paused && !a.getAttribute('src'); }", timeout=5000)
        assert audio.evaluate("a => a.paused && !a.getAttribute('src')")
        watch.assert_clean()
    finally:
        context.close()
