"""The query router: its rules, and how Index.search / ask apply a route."""

from __future__ import annotations

import pytest

from mmrag import Index
from mmrag.errors import UnknownBackendError
from mmrag.search.router import MAX_K, TEXTUAL, VISUAL, Route, RuleRouter, create_router
from tests.factories import make_png, make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}}


@pytest.mark.parametrize(("question", "kind"), [
    ("Photo of a red-hulled supply vessel on calm sea", "visual"),
    ("show me the picture of the harbour boat", "visual"),
    ("the image of the boat", "visual"),
    ("In which passage does the narrator go to sea?", "text"),
    ("quote the sentence about revenue", "text"),
    ("What was the quarterly revenue?", "both"),
    # named pictures that are often found by their caption or body text stay on both
    ("illustration of a rolling token cache", "both"),
    ("Email containing a picture of a blue letter U", "both"),
])
def test_rules_pick_the_modalities(question, kind):
    assert RuleRouter().route(question, 5).kind == kind


def test_broad_questions_get_more_hits_and_a_cap():
    rules = RuleRouter()
    assert rules.route("What was the revenue?", 5).k == 5
    assert rules.route("Compare the revenue of 2022 and 2023", 5).k == 10
    assert rules.route("What is the difference between A and B?", 8).k == MAX_K
    assert rules.route("Who? And when?", 3).k == 6


def test_none_router_keeps_everything():
    route = create_router("none").route("photo of a boat", 7)
    assert route == Route(None, 7, "router off")
    with pytest.raises(UnknownBackendError):
        create_router("oracle")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("router-docs")
    (d / "report.pdf").write_bytes(make_text_pdf([
        "The boat in the harbour was repainted red.", "Revenue rose to 42 million euros.",
        *(f"Table {n}: revenue of the boat yard in quarter {n}." for n in range(1, 7))]))
    (d / "notes.md").write_text("# Notes\n\nThe harbour boat photo was taken at dawn.\n")
    (d / "harbour_boat_photo.png").write_bytes(make_png("boat", (96, 64)))
    with Index(tmp_path_factory.mktemp("router-idx"), **FAST) as idx:
        assert len(idx.add(d, show_progress=False).added) == 3
        yield idx


def test_a_picture_request_searches_images_and_pages_only(index):
    question = "photo of the boat in the harbour"
    routed = index.search(question, k=10, route=True)
    assert routed and {h.modality for h in routed} <= set(VISUAL)
    assert "harbour_boat_photo.png" in {h.item.name for h in routed}
    everything = index.search(question, k=10)
    assert "text" in {h.modality for h in everything}  # the notes' chunk, unrouted


def test_a_wording_request_searches_text_and_pages_only(index):
    hits = index.search("quote the sentence about the harbour boat", k=10, route=True)
    assert hits and {h.modality for h in hits} <= set(TEXTUAL)


def test_a_caller_s_modality_filter_wins_over_the_route(index):
    hits = index.search("photo of the boat", k=10, filters={"modality": "text"}, route=True)
    assert hits and {h.modality for h in hits} == {"text"}


def test_a_route_that_finds_nothing_falls_back_to_everything(index):
    notes = next(d for d in index.documents() if d.name == "notes.md")
    hits = index.search("photo of the boat", k=5, filters={"doc_id": notes.doc_id},
                        route=True)
    assert [h.item.name for h in hits] == ["notes.md"]  # a text chunk, found anyway


def test_ask_takes_the_router_s_k_unless_given_one(index, tmp_path):
    broad = "Compare the boat and the revenue in every document"
    assert len(index.ask(broad).hits) > index.settings.generate.k
    assert len(index.ask(broad, k=2).hits) == 2
    with Index(index.root, search={"router": "none"}, **FAST) as plain:
        assert len(plain.ask(broad).hits) == plain.settings.generate.k


def test_ask_applies_the_visual_route(index):
    answer = index.ask("photo of the boat in the harbour")
    assert answer.hits and {h.modality for h in answer.hits} <= set(VISUAL)
