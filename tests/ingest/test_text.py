from __future__ import annotations

import random

import pytest

from mmrag.config import IngestSettings
from mmrag.ingest import load
from mmrag.ingest.chunk import chunk_spans, section_spans
from mmrag.ingest.text import decode_text, html_to_text, load_html, load_markdown, load_text
from mmrag.types import Blob


def blob(data: bytes, mime: str, name: str = "") -> Blob:
    return Blob(uri="mem:doc", data=data, name=name, mime=mime)


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    sentences = []
    for _ in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(4, 14))]
        sentences.append(" ".join(words).capitalize() + ".")
    paras = [" ".join(sentences[i:i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paras)


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (200, 50), (1000, 200), (150, 149)])
def test_chunks_cover_text_within_size(size, overlap):
    text = _words(120)
    spans = chunk_spans(text, size, overlap)
    assert spans
    for s, e in spans:
        assert 0 < e - s <= size
        assert text[s:e] == text[s:e].strip()
    covered = set()
    for s, e in spans:
        covered.update(range(s, e))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    starts = [s for s, _ in spans]
    assert starts == sorted(set(starts))
    if overlap:
        overlaps = [spans[i][1] - spans[i + 1][0] for i in range(len(spans) - 1)]
        assert max(overlaps) > 0


def test_chunks_break_at_paragraph_then_sentence_then_word():
    para = "First paragraph sentence one. Sentence two here.\n\nSecond paragraph starts."
    spans = chunk_spans(para, 60, 0)
    assert para[slice(*spans[0])] == "First paragraph sentence one. Sentence two here."
    sent = "One short sentence here. Another sentence that keeps going on and on."
    spans = chunk_spans(sent, 40, 0)
    assert sent[slice(*spans[0])] == "One short sentence here."
    words = "word " * 30
    for s, e in chunk_spans(words, 23, 0):
        assert set(words[s:e].split()) == {"word"}  # never cut inside a word
    solid = "x" * 250
    assert chunk_spans(solid, 100, 0) == [(0, 100), (100, 200), (200, 250)]


def test_overlap_starts_on_word_boundary():
    text = " ".join(f"w{i:03d}" for i in range(200))
    spans = chunk_spans(text, 100, 30)
    for s, _ in spans:
        assert s == 0 or text[s - 1] == " "


def test_section_spans_fold_empty_headings():
    text = "# A\n\n## B\nbody b\n# C\nbody c"
    heads = [(0, 4, 1, "A"), (5, 10, 2, "B"), (17, 21, 1, "C")]
    assert section_spans(text, heads) == [(0, 17, "A > B"), (17, len(text), "C")]


def test_plain_text_offsets_and_pages(settings):
    text = _words(60)
    pieces = list(load_text(blob(text.encode(), "text/plain"), settings))
    assert len(pieces) > 1
    for p in pieces:
        assert p.modality == "text" and p.page == 1 and p.section == ""
        assert text[p.chunk_start:p.chunk_end] == p.text
        assert len(p.text) <= settings.chunk_size


def test_empty_documents_yield_nothing(settings):
    assert list(load_text(blob(b"  \n\n \t", "text/plain"), settings)) == []
    assert list(load_html(blob(b"<html><script>x()</script></html>", "text/html"),
                          settings)) == []


def test_decode_fallbacks():
    assert decode_text("naïve café\r\nline".encode()) == "naïve café\nline"
    assert decode_text("\ufeffbom".encode("utf-8")) == "bom"
    assert decode_text("ünïcödé".encode("utf-16")) == "ünïcödé"
    latin = ("Der Bär schläft im Wald, während die Vögel über den Bäumen "
             "zwitschern. Grüße aus München!").encode("cp1252")
    assert decode_text(latin).startswith("Der Bär schläft")


def test_markdown_sections_atx_setext_and_code():
    md = ("Preface words.\n\n# Intro\n\nIntro text.\n\n## Setup\nInstall it.\n\n"
          "Usage\n=====\n\nRun it.\n\n```\n# not a heading\n```\n")
    pieces = list(load_markdown(blob(md.encode(), "text/markdown"),
                                IngestSettings(chunk_size=100)))
    by_section = {p.section: p.text for p in pieces}
    assert by_section[""] == "Preface words."
    assert by_section["Intro"].startswith("# Intro") and "Intro text." in by_section["Intro"]
    assert "Install it." in by_section["Intro > Setup"]
    assert "# not a heading" in by_section["Usage"]
    assert len(by_section) == 4
    for p in pieces:
        assert md[p.chunk_start:p.chunk_end] == p.text
        assert p.metadata.get("title") == "Intro"


def test_markdown_front_matter_is_not_a_heading(settings):
    md = "---\ntitle: \"Guide\"\ntags: [a]\n---\n\n# Start\n\nBody here.\n"
    pieces = list(load_markdown(blob(md.encode(), "text/markdown"), settings))
    assert {p.section for p in pieces} <= {"", "Start"}
    assert pieces[-1].section == "Start" and "Body here." in pieces[-1].text
    assert all(p.metadata["title"] == "Guide" for p in pieces)


def test_markdown_long_section_splits_keep_section(settings):
    md = "# Big\n\n" + _words(80)
    pieces = list(load_markdown(blob(md.encode(), "text/markdown"), settings))
    assert len(pieces) > 2 and {p.section for p in pieces} == {"Big"}


def test_html_drops_chrome_and_finds_sections(settings):
    html = b"""<!doctype html><html><head><title>The Page</title>
    <style>.x{color:red}</style><script>var secret = 1;</script></head>
    <body><nav><a href="/">Home</a> | <a href="/m">Menu</a></nav>
    <h1>Main <em>Title</em></h1><p>Hello <b>bold</b> world.</p>
    <h2>Details</h2><ul><li>one</li><li>two</li></ul>
    <script>alert('no')</script></body></html>"""
    text, heads, title = html_to_text(html)
    assert title == "The Page"
    assert "secret" not in text and "alert" not in text and "Menu" not in text
    assert "Hello bold world." in text
    assert [h[3] for h in heads] == ["Main Title", "Details"]
    pieces = list(load(blob(html, "text/html"), settings))
    assert [p.section for p in pieces] == ["Main Title", "Main Title > Details"]
    assert all(p.metadata["title"] == "The Page" for p in pieces)
    assert "one\ntwo" in pieces[1].text
    for p in pieces:
        assert text[p.chunk_start:p.chunk_end] == p.text


def test_html_respects_meta_charset(settings):
    html = ('<html><head><meta charset="windows-1252"></head><body><p>Grüße</p></body>'
            '</html>').encode("cp1252")
    [piece] = list(load_html(blob(html, "text/html"), settings))
    assert piece.text == "Grüße"
