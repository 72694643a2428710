"""Open-vocabulary object detection by asking a vision-language model for JSON boxes.

VLMs such as Gemini, Qwen-VL and PaliGemma answer "where is X" with boxes as
``[ymin, xmin, ymax, xmax]`` normalised to 0–1000, which makes the reply independent of
the image size we sent (we may shrink it) and of the model's own resizing. Replies are
untrusted text: they come fenced, wrapped in prose, as a list or as ``{"boxes": [...]}``,
with coordinates out of range or swapped, or with entries missing fields. One bad entry
is dropped with a warning; only a reply with no JSON at all is an error.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator

from ..errors import ConfigError, GenerationError, IngestError
from .base import Generator, Message, Part

log = logging.getLogger(__name__)

SCALE = 1000  # the models' normalised coordinate range
LIST_KEYS = ("boxes", "detections", "objects", "results", "items")
# Distinct, saturated colours; a label keeps its colour for the whole image.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40))


class BoxSchema(BaseModel):
    """One entry of the reply: ``box_2d`` is ``[ymin, xmin, ymax, xmax]`` in 0–1000."""

    box_2d: list[float] = Field(validation_alias=AliasChoices("box_2d", "box", "bbox"),
                                min_length=4, max_length=4)
    label: str = Field(min_length=1)

    @field_validator("label", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


@dataclass(slots=True)
class Detection:
    """A validated box in pixels of the original image: ``box`` is ``(x0, y0, x1, y1)``;
    ``box_2d`` keeps the normalised ``[ymin, xmin, ymax, xmax]`` after clamping."""

    label: str
    box: tuple[int, int, int, int]
    box_2d: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt(labels: Sequence[str] = ()) -> str:
    """The JSON-only instruction; without labels the model picks the salient objects."""
    what = (f"every instance of: {', '.join(labels)}" if labels
            else "the prominent objects (at most 25)")
    return (f"Detect {what} in the image. Answer with JSON only, no prose and no code fence: "
            'a list like [{"box_2d": [ymin, xmin, ymax, xmax], "label": "name"}] where the '
            f"coordinates are integers normalised to 0-{SCALE}. Answer [] if there is none.")


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file fully (so a truncated file fails here, with its name)."""
    try:
        with Image.open(Path(path).expanduser()) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IngestError(str(path), f"cannot read image: {reason}") from exc


def detect(image: Image.Image, labels: Sequence[str], generator: Generator, *,
           max_side: int = 1024, max_tokens: int = 1024,
           temperature: float = 0.0) -> list[Detection]:
    """Ask ``generator`` (a VLM) for boxes around ``labels`` in ``image``, in pixels."""
    if not getattr(generator, "supports_images", False):
        raise ConfigError(f"generator {generator.name!r} cannot see images; detection needs a "
                          "vision-language model (set --generator/--model or "
                          "generate.generator)")
    messages = [Message("user", [Part.of_image(_png(image, max_side), "image/png"),
                                 Part.of_text(prompt(labels))])]
    reply = "".join(generator.stream(messages, max_tokens=max_tokens, temperature=temperature))
    return to_pixels(parse_boxes(reply), image.size)


def _png(image: Image.Image, max_side: int) -> bytes:
    """PNG keeps edges crisp (boxes need them); coordinates are normalised, so shrinking
    the copy we send does not change the answer's meaning."""
    img = image.convert("RGB")
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# -- parsing ------------------------------------------------------------------------------
def parse_boxes(reply: str) -> list[BoxSchema]:
    """Valid entries of a reply; raises :class:`GenerationError` if it holds no JSON list
    of boxes."""
    boxes = []
    for n, entry in enumerate(_find_entries(reply), 1):
        try:
            boxes.append(BoxSchema.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            log.warning("dropping box %d of the reply (%s: %s): %s", n, where, first["msg"],
                        _short(json.dumps(entry, default=str)))
    return boxes


def _find_entries(reply: str) -> list[Any]:
    """The first JSON value in the reply shaped like a box list: the whole (unfenced)
    reply, else the first such value embedded in prose."""
    text = _unfence(reply.strip())
    try:
        entries = _entries(json.loads(text))
    except ValueError:
        entries = None
    if entries is not None:
        return entries
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            entries = _entries(decoder.raw_decode(text, match.start())[0])
        except ValueError:
            continue
        if entries is not None:
            return entries
    raise GenerationError(f"the model's reply has no JSON list of boxes: {_short(reply)}")


def _unfence(text: str) -> str:
    fenced = re.search(r"```(?:json|JSON)?\s*\n?(.*?)```", text, re.DOTALL)
    return fenced.group(1).strip() if fenced else text


def _entries(data: Any) -> list[Any] | None:
    """Entries of a list / ``{"boxes": [...]}`` / single-box object; None if not boxes
    (a bare coordinate list like ``[1, 2, 3, 4]`` is not a list of boxes)."""
    if isinstance(data, list):
        return data if not data or any(isinstance(e, dict) for e in data) else None
    if isinstance(data, dict):
        for key in LIST_KEYS:
            if isinstance(data.get(key), list):
                return _entries(data[key])
        if any(k in data for k in ("box_2d", "box", "bbox")):
            return [data]
    return None


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


# -- geometry -----------------------------------------------------------------------------
def to_pixels(boxes: Sequence[BoxSchema], size: tuple[int, int]) -> list[Detection]:
    """Clamp to 0–1000, put swapped corners in order, scale to ``size`` (width, height);
    boxes with no area left are dropped with a warning."""
    width, height = size
    found = []
    for box in boxes:
        y0, x0, y1, x1 = (min(max(v, 0.0), float(SCALE)) for v in box.box_2d)
        if (y0, x0, y1, x1) != tuple(box.box_2d):
            log.warning("clamped box %r (%s) to 0-%d", box.box_2d, box.label, SCALE)
        y0, y1 = sorted((y0, y1))
        x0, x1 = sorted((x0, x1))
        px = (round(x0 * width / SCALE), round(y0 * height / SCALE),
              round(x1 * width / SCALE), round(y1 * height / SCALE))
        if px[2] <= px[0] or px[3] <= px[1]:
            log.warning("dropping empty box %r (%s)", box.box_2d, box.label)
            continue
        found.append(Detection(box.label, px, (y0, x0, y1, x1)))
    return found


# -- drawing ------------------------------------------------------------------------------
def colors_for(detections: Sequence[Detection]) -> dict[str, tuple[int, int, int]]:
    """Label → colour, in order of first appearance (so a legend is stable)."""
    colors: dict[str, tuple[int, int, int]] = {}
    for d in detections:
        colors.setdefault(d.label, PALETTE[len(colors) % len(PALETTE)])
    return colors


def draw_boxes(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    """A copy of ``image`` with each box outlined and labelled in its label's colour."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 200))
    font = ImageFont.load_default()
    colors = colors_for(detections)
    for d in detections:
        color = colors[d.label]
        draw.rectangle(d.box, outline=color, width=width)
        left, top, right, bottom = draw.textbbox((0, 0), d.label, font=font)
        tw, th = right - left + 4, bottom - top + 4
        # The tag sits above the box, or inside it when the box touches the top edge.
        ty = d.box[1] - th if d.box[1] >= th else d.box[1] + width
        tx = d.box[0] + width if ty > d.box[1] else d.box[0]
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=color)
        draw.text((tx + 2 - left, ty + 2 - top), d.label, fill="white", font=font)
    return out
