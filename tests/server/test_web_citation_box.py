"""Clicking a citation in an answer opens the viewer with the box on the region it quotes.

The index holds a PDF with a ruled results table drawn in code (tests.generate._tables);
the extractive generator answers the BLEU question with the table cell, and the citation
carries that cell's box. The test asks through the page, clicks the ``[n]`` marker in the
answer, and checks the drawn box against both the citation's ``bbox`` (scaled to the page
as displayed) and the cell as drawn in the PDF, at two window sizes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmrag import Index
from tests.generate._tables import QUESTION, cell_box, results_pdf
from tests.server.browser import browser, open_page, screenshot  # noqa: F401 (fixture)
from tests.server.conftest import serve_in_thread
from tests.server.test_web_highlight import LETTER, assert_box_on, drawn_box

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def table_url(tmp_path_factory) -> Iterator[str]:
    pytest.importorskip("pdfplumber")
    from mmrag.server import create_app

    root = tmp_path_factory.mktemp("citebox")
    (root / "attention.pdf").write_bytes(results_pdf())
    settings = {"encode__text_encoder": "hashing", "ingest__ocr": "never",
                # the table item and the page text both retrieved, not one per page
                "search__group_by": "item", "generate__generator": "extractive"}
    with Index(root / "idx", **settings) as index:
        assert not index.add(root / "attention.pdf").failed
    with serve_in_thread(create_app(root / "idx", **settings)) as url:
        yield url


@pytest.mark.parametrize("viewport", [(1280, 900), (1280, 560)], ids=["wide", "short"])
def test_citation_click_shows_the_quoted_cell(browser, table_url, request,  # noqa: F811
                                              viewport):
    context, page, watch = open_page(browser, width=viewport[0], height=viewport[1])
    try:
        page.goto(table_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        done = page.evaluate("""q => fetch('collections/default/ask?stream=false', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({question: q})}).then(r => r.json())""", QUESTION)
        assert "28.4" in done["text"], done
        [cite] = [c for c in done["citations"] if c["bbox"]
                  and c["bbox"][2] - c["bbox"][0] < 120]  # a cell, not the whole table
        size = (cite["page_width"], cite["page_height"])
        assert size == pytest.approx(LETTER, abs=1)
        assert cite["bbox"] == pytest.approx(cell_box(3, 1), abs=2.0)  # "28.4"

        page.get_by_test_id("ask-input").fill(QUESTION)
        page.get_by_test_id("ask-button").click()
        page.wait_for_selector("[data-testid=answer][data-state='done']", timeout=60_000)
        assert "28.4" in page.get_by_test_id("answer").inner_text()
        page.locator(f"[data-testid=answer] [data-testid=citation-link]"
                     f"[data-number='{cite['number']}']").click()
        assert page.get_by_test_id("viewer").is_visible()
        page.wait_for_selector("[data-testid=viewer-image][data-loaded='true']")
        img, box = drawn_box(page)
        # the box is the citation's bbox on the page as displayed (1 %: pixel rounding)...
        assert_box_on(img, box, tuple(cite["bbox"]), size, 0.01)
        # ...and that is the cell where "28.4" was drawn, not the table or the page
        assert_box_on(img, box, cell_box(3, 1), LETTER, 0.01)
        assert box["width"] < 0.2 * img["width"] and box["height"] < 0.05 * img["height"]
        screenshot(page, request.node.name)
        watch.assert_clean()
    finally:
        context.close()
