"""The query router: per question, which kinds of items to search and how many to fetch.

A question about "the photo of a red boat" is answered by an image or a page render, not
by a text chunk that happens to say "red"; a question comparing two things needs more
sources than one asking for a single number. :class:`Router` turns a question into a
:class:`Route`; ``Index.ask``/``chat``, the agent's ``multimodal_search`` and (with the
setting on) ``mmrag eval`` apply it as a modality filter and a hit count. A caller's own
modality filter always wins over the route.

``rules`` (default) is offline and deterministic; ``none`` searches everything with the
caller's k. Modalities are those of :data:`mmrag.types.MODALITIES`: a visual route keeps
``image`` and ``page`` items (a PDF page item holds its render *and* its whole text, so a
page whose text describes the picture is still found); a text route drops ``image`` and
``audio`` items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..registry import Registry

__all__ = ["Route", "Router", "RuleRouter", "VISUAL", "TEXTUAL", "create_router", "routers"]

VISUAL: tuple[str, ...] = ("image", "page")
TEXTUAL: tuple[str, ...] = ("text", "page")
MAX_K = 10  # a route never asks for more hits than this


@dataclass(frozen=True, slots=True)
class Route:
    """``modalities`` to search (None = every kind), ``k`` hits (None = the caller's),
    and a short ``reason`` for logs and ``mmrag ask --agent``."""

    modalities: tuple[str, ...] | None = None
    k: int | None = None
    reason: str = "default"

    @property
    def kind(self) -> str:
        if self.modalities == VISUAL:
            return "visual"
        if self.modalities == TEXTUAL:
            return "text"
        return "both"


@runtime_checkable
class Router(Protocol):
    name: str

    def route(self, question: str, k: int, *, has_image: bool = False) -> Route:
        """The route for ``question``; ``k`` is the caller's default hit count."""
        ...


# name → factory() -> Router
routers: Registry[Router] = Registry("router")

# A request that *opens* by naming a photograph as what it wants ("photo of a red boat",
# "show me the picture of ..."). Narrower on purpose: "illustration of ...", "diagram of
# ..." and "an e-mail containing a picture of ..." are often found by their caption or
# body text, and a visual-only route lost exactly those on the shared eval sets
# (benchmarks/results/router.md).
_VISUAL = re.compile(
    r"^\s*(?:(?:show|find|get)\s+(?:me\s+)?)?(?:an?\s+|the\s+)?"
    r"(?:photo(?:graph)?s?|pictures?|images?|pics?|snapshots?)\s+(?:of|showing|with)\b",
    re.IGNORECASE)
# A question about wording: quotes and passages are text, not pictures.
_TEXT = re.compile(
    r"\b(?:quote|verbatim|exact\s+(?:words?|wording|sentence)|which\s+(?:passage|paragraph|"
    r"sentence)|in\s+which\s+(?:passage|paragraph|sentence)|the\s+(?:passage|paragraph|"
    r"sentence)\s+(?:that|where|which))\b",
    re.IGNORECASE)
# Questions that need several sources: comparisons, lists, several parts.
_BROAD = re.compile(
    r"\b(?:compare[sd]?|comparison|versus|vs\.?|difference\s+between|differences|both|"
    r"each\s+of|all\s+(?:the\s+)?\w+|list\s+(?:all|every|the)|every|summari[sz]e|overview)\b",
    re.IGNORECASE)


class RuleRouter:
    """Keyword rules: picture requests go to the visual items, wording requests to the
    text items, everything else to both; broad questions get twice the hits."""

    name = "rules"

    def route(self, question: str, k: int, *, has_image: bool = False) -> Route:
        text = " ".join((question or "").split())
        broad = bool(_BROAD.search(text)) or text.count("?") > 1
        n = min(MAX_K, max(k, 2 * k if broad else k))
        why = "broad question: more hits" if broad else "default"
        if has_image and not text:
            return Route(None, n, "image query: every space that can embed it")
        if _VISUAL.search(text):
            return Route(VISUAL, n, "asks for a picture: images and pages")
        if _TEXT.search(text):
            return Route(TEXTUAL, n, "asks about wording: text and pages")
        return Route(None, n, why)


class NoRouter:
    name = "none"

    def route(self, question: str, k: int, *, has_image: bool = False) -> Route:
        return Route(None, k, "router off")


@routers.register("rules")
def _rules() -> Router:
    return RuleRouter()


@routers.register("none")
def _none() -> Router:
    return NoRouter()


def create_router(name: str) -> Router:
    return routers.create(name or "none")
