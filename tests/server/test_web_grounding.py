"""The web page marks the answer sentences its sources do not support.

The server runs a scripted generator (a dotted-path factory) whose answer has a supported
first sentence (with an emoji before it, so UTF-16 and code-point offsets differ) and a
second sentence with a number no source holds; the page must put the ``unsupported``
mark, with a tooltip naming the number, on the second sentence only, keep the citation
links working inside it, and show the grounded share.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag import Index
from tests.server.browser import browser, open_page, screenshot  # noqa: F401 (fixture)
from tests.server.conftest import FAST, serve_in_thread

pytestmark = pytest.mark.browser

SUPPORTED = "🦊 The red fox hunts voles in snowy meadows [1]."
INVENTED = "It hunts 42 voles a day [1]."


class _Invented:
    name, supports_images = "invented", False

    def stream(self, messages, *, max_tokens, temperature):
        yield SUPPORTED + " "
        yield INVENTED


def invented(settings) -> _Invented:
    return _Invented()


@pytest.fixture(scope="module")
def web_url(tmp_path_factory) -> Iterator[str]:
    from mmrag.server import create_app

    root = tmp_path_factory.mktemp("web-grounding")
    docs = root / "docs"
    docs.mkdir()
    (docs / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    with Index(root / "idx", **FAST) as index:
        assert not index.add(docs).failed
    app = create_app(Path(root / "idx"), **FAST,
                     generate__generator="tests.server.test_web_grounding.invented")
    with serve_in_thread(app) as url:
        yield url


def test_unsupported_sentence_is_marked_with_a_reason(browser, web_url):  # noqa: F811
    context, page, watch = open_page(browser)
    try:
        page.goto(web_url + "/")
        page.wait_for_selector("body[data-ready='true']")
        page.get_by_test_id("ask-input").fill("What does the red fox hunt?")
        page.get_by_test_id("ask-button").click()
        page.wait_for_selector("[data-testid=answer][data-state='done']", timeout=60_000)
        answer = page.get_by_test_id("answer")
        assert answer.inner_text() == f"{SUPPORTED} {INVENTED}"
        marks = page.locator("[data-testid=answer] [data-testid=unsupported]")
        assert marks.count() == 1
        mark = marks.first
        assert mark.inner_text() == INVENTED
        assert "42" in mark.get_attribute("title") and "unsupported" in \
            mark.get_attribute("title").lower()
        assert "unsupported" in mark.get_attribute("class")
        # the citation inside the marked sentence is still a link, and so is the first
        assert mark.locator("[data-testid=citation-link]").count() == 1
        assert page.locator("[data-testid=answer] [data-testid=citation-link]").count() == 2
        assert page.get_by_test_id("grounded").inner_text() == "grounded: 50 %"
        screenshot(page, "ask-unsupported")
        watch.assert_clean()
    finally:
        context.close()
