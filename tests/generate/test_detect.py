"""VLM object detection: scripted replies in, validated pixel boxes and a drawn PNG out."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from PIL import Image

from mmrag.config import GenerateSettings
from mmrag.errors import ConfigError, GenerationError
from mmrag.generate import create_generator
from mmrag.generate.base import Message, generators
from mmrag.generate.detect import PALETTE, detect, draw_boxes, parse_boxes

NAME = "test-scripted-vlm"


class ScriptedVLM:
    """Answers every chat with ``reply`` and keeps the messages it was sent."""

    name = NAME
    supports_images = True

    def __init__(self, reply: str):
        self.reply = reply
        self.seen: list[list[Message]] = []

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        self.seen.append(messages)
        half = len(self.reply) // 2  # two deltas, as a streaming provider would send
        yield from (self.reply[:half], self.reply[half:])


@generators.register(NAME)
def _scripted(settings: GenerateSettings) -> ScriptedVLM:
    return ScriptedVLM(settings.model)  # the test passes its reply as the "model"


def vlm(reply: str) -> ScriptedVLM:
    return create_generator(GenerateSettings(generator=NAME, model=reply))


@pytest.fixture()
def photo() -> Image.Image:
    return Image.new("RGB", (400, 200), "white")


GOOD = '[{"box_2d": [100, 250, 500, 750], "label": "cat"}, ' \
       '{"box_2d": [0, 0, 1000, 100], "label": "dog"}]'


def test_good_reply_becomes_pixel_boxes_and_sends_the_image(photo):
    gen = vlm(GOOD)
    found = detect(photo, ["cat", "dog"], gen)
    assert [(d.label, d.box) for d in found] == [("cat", (100, 20, 300, 100)),
                                               ("dog", (0, 0, 40, 200))]
    (message,) = gen.seen[0]
    image = message.images[0]
    assert image.mime == "image/png" and Image.open(io.BytesIO(image.data)).size == (400, 200)
    assert "cat, dog" in message.text and "ymin, xmin, ymax, xmax" in message.text


def test_fenced_json_in_prose_and_wrapped_object_are_read(photo):
    fenced = 'Sure! Here are the boxes:\n```json\n{"boxes": [{"box_2d": [0, 0, 500, 500], ' \
             '"label": "car"}]}\n```\nAnything else?'
    assert [d.box for d in detect(photo, ["car"], vlm(fenced))] == [(0, 0, 200, 100)]
    prose = 'I found [{"bbox": [500, 500, 1000, 1000], "label": "sun"}] in it.'
    assert [d.label for d in detect(photo, [], vlm(prose))] == ["sun"]


def test_malformed_entries_are_dropped_with_a_warning(photo, caplog):
    reply = ('[{"box_2d": [100, 100, 200, 200], "label": "ok"}, {"box_2d": [1, 2, 3]}, '
             '{"label": "no box"}, {"box_2d": ["a", 0, 10, 10], "label": "nan"}, "junk", '
             '{"box_2d": [300, 300, 300, 600], "label": "flat"}, '
             '{"box_2d": [600, 600, 900, 900], "label": "also ok"}]')
    with caplog.at_level(logging.WARNING, logger="mmrag.generate.detect"):
        found = detect(photo, ["x"], vlm(reply))
    assert [d.label for d in found] == ["ok", "also ok"]
    dropped = [r for r in caplog.records if "dropping" in r.getMessage()]
    assert len(dropped) == 5  # 4 malformed entries + 1 with no area


def test_out_of_range_is_clamped_and_inverted_corners_swapped(photo, caplog):
    reply = ('[{"box_2d": [-50, -10, 1200, 400], "label": "big"}, '
             '{"box_2d": [800, 900, 200, 100], "label": "swapped"}]')
    with caplog.at_level(logging.WARNING, logger="mmrag.generate.detect"):
        big, swapped = detect(photo, [], vlm(reply))
    assert big.box == (0, 0, 160, 200) and big.box_2d == (0, 0, 1000, 400)
    assert swapped.box == (40, 40, 360, 160)
    assert any("clamped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("reply", ["I cannot see any objects.", '{"boxes": "none"}',
                                   "[{'box_2d': [1, 2, 3, 4],"])
def test_reply_without_json_boxes_is_a_one_line_error(photo, reply):
    with pytest.raises(GenerationError) as err:
        detect(photo, ["cat"], vlm(reply))
    message = str(err.value)
    assert "\n" not in message and "JSON" in message and reply[:10] in message


def test_empty_list_means_nothing_found(photo):
    assert detect(photo, ["unicorn"], vlm("[]")) == []


def test_text_only_generator_is_refused(photo):
    class TextOnly:
        name, supports_images = "extractive", False

    with pytest.raises(ConfigError, match="cannot see images"):
        detect(photo, ["cat"], TextOnly())


def test_parse_boxes_keeps_label_and_order():
    boxes = parse_boxes('[{"box": [1, 2, 3, 4], "label": " tree "}]')
    assert boxes[0].label == "tree" and boxes[0].box_2d == [1, 2, 3, 4]


def test_drawn_png_has_box_colours_on_the_edges(photo):
    found = detect(photo, [], vlm(GOOD))
    drawn = draw_boxes(photo, found)
    buf = io.BytesIO()
    drawn.save(buf, format="PNG")
    png = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    cat, dog = PALETTE[0], PALETTE[1]
    assert png.getpixel((100, 60)) == cat and png.getpixel((300, 60)) == cat  # left/right
    assert png.getpixel((200, 100)) == cat                                  # bottom edge
    assert png.getpixel((200, 60)) == (255, 255, 255)                       # inside: untouched
    assert png.getpixel((40, 150)) == dog
    assert photo.getpixel((100, 60)) == (255, 255, 255)                     # input unchanged
