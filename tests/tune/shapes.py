"""A synthetic (image, text) pair set for contrastive tuning tests: coloured shapes on a
white canvas, each named by its colour and shape ("a red square"), drawn with PIL in code.

Position, size and a little colour jitter vary per image, so a held-out image of a known
name is still a new picture: recall on it rises only if the towers learn colour and shape.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

# No "b" in any name: the shared tiny tokenizer (tests/conftest.py) reads it as unknown,
# i.e. as its end-of-text token, where CLIP's text tower stops reading.
COLOURS = {"red": (220, 30, 30), "purple": (120, 40, 200), "green": (30, 170, 60)}
SHAPES = ("square", "dot", "line")


def shape_image(colour: str, shape: str, rng: random.Random, side: int = 32) -> Image.Image:
    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    size = rng.randint(5 * side // 8, 7 * side // 8)
    x, y = rng.randint(0, side - size - 1), rng.randint(0, side - size - 1)
    fill = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[colour])
    if shape == "square":
        draw.rectangle((x, y, x + size, y + size), fill=fill)
    elif shape == "dot":
        draw.ellipse((x, y, x + size, y + size), fill=fill)
    else:  # a thick horizontal line across most of the canvas
        draw.rectangle((2, y, side - 3, y + max(3, size // 3)), fill=fill)
    return img


def shape_pairs(per_name: int, seed: int = 0, side: int = 32) -> list[tuple[Image.Image, str]]:
    """``per_name`` images for each of the 9 names, in a seeded order."""
    rng = random.Random(seed)
    pairs = [(shape_image(c, s, rng, side), f"a {c} {s}")
             for _ in range(per_name) for c in COLOURS for s in SHAPES]
    rng.shuffle(pairs)
    return pairs
