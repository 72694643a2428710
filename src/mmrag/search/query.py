"""What a user asked for: text, an image, or both."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from ..errors import QueryError


@dataclass(slots=True)
class Query:
    text: str | None = None
    image: Image.Image | None = None

    def __post_init__(self) -> None:
        if self.text is not None:
            self.text = self.text.strip() or None
        if self.text is None and self.image is None:
            raise QueryError("empty query: give text, an image, or both")

    @property
    def kind(self) -> str:
        if self.text and self.image is not None:
            return "text+image"
        return "image" if self.image is not None else "text"
