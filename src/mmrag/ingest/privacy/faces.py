"""Finding faces and blurring them, so stored media and thumbnails show no one's face.

Detection uses OpenCV's bundled Haar cascades (frontal + profile) when the installed
OpenCV still ships them (4.x: ``cv2.data.haarcascades``). OpenCV 5 dropped cascades, so
the fallback is scikit-image's LBP frontal-face cascade, which ships in its wheel. Both run
on a grey copy downscaled to ``_DETECT_SIDE``: detection cost then no longer grows with
the photo, and boxes are scaled back to the image's own size.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ...errors import MissingDependencyError

__all__ = ["Box", "blur", "detect"]

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels
_DETECT_SIDE = 640
_PAD = 0.2  # widen each box so hairline, ears and chin are covered too


def _grey(img: Image.Image) -> tuple[np.ndarray, float]:
    """A grey uint8 copy no longer than ``_DETECT_SIDE`` and its scale to ``img``."""
    scale = min(1.0, _DETECT_SIDE / max(img.size))
    grey = img.convert("L")
    if scale < 1.0:
        grey = grey.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                           Image.Resampling.BILINEAR)
    return np.asarray(grey), scale


def _opencv() -> Callable[[np.ndarray], list[Box]] | None:
    try:
        import cv2
    except ImportError:
        return None
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    names = ["haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"]
    files = [Path(folder) / n for n in names if folder and (Path(folder) / n).is_file()]
    if not files or not hasattr(cv2, "CascadeClassifier"):
        return None
    cascades = [cv2.CascadeClassifier(str(f)) for f in files]

    def run(grey: np.ndarray) -> list[Box]:
        side = max(24, min(grey.shape) // 20)
        boxes: list[Box] = []
        for c in cascades:
            for x, y, w, h in c.detectMultiScale(grey, 1.1, 5, minSize=(side, side)):
                boxes.append((int(x), int(y), int(x + w), int(y + h)))
        return boxes

    return run


def _skimage() -> Callable[[np.ndarray], list[Box]] | None:
    try:
        from skimage import data
        from skimage.feature import Cascade
    except ImportError:
        return None
    cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def run(grey: np.ndarray) -> list[Box]:
        side = max(24, min(grey.shape) // 20)
        found = cascade.detect_multi_scale(img=grey.astype(np.float64) / 255.0,
                                           scale_factor=1.2, step_ratio=1,
                                           min_size=(side, side), max_size=grey.shape)
        return [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]

    return run


@functools.cache
def _detector() -> Callable[[np.ndarray], list[Box]]:
    run = _opencv() or _skimage()
    if run is None:  # OpenCV 5 without scikit-image
        raise MissingDependencyError("privacy.blur_faces (face detection)", "privacy")
    return run


def detect(img: Image.Image) -> list[Box]:
    """Face boxes in ``img``'s pixel coordinates."""
    grey, scale = _grey(img)
    return [tuple(round(v / scale) for v in box) for box in _detector()(grey)]  # type: ignore[misc]


def _padded(box: Box, size: tuple[int, int], scale: float = 1.0) -> Box:
    left, top, right, bottom = (round(v * scale) for v in box)
    dx, dy = round((right - left) * _PAD), round((bottom - top) * _PAD)
    return (max(0, left - dx), max(0, top - dy), min(size[0], right + dx),
            min(size[1], bottom + dy))


def blur(img: Image.Image, boxes: list[Box], scale: float = 1.0) -> Image.Image:
    """``img`` with each box (in coordinates ``scale`` times smaller than ``img``) pixelated
    then blurred in place: pixelation alone can be partly undone, a blur alone leaves
    recognisable shapes on large faces."""
    for box in boxes:
        left, top, right, bottom = _padded(box, img.size, scale)
        if right - left < 2 or bottom - top < 2:
            continue
        region = img.crop((left, top, right, bottom))
        w, h = region.size
        small = region.resize((max(1, w // 12), max(1, h // 12)), Image.Resampling.BILINEAR)
        region = small.resize((w, h), Image.Resampling.NEAREST)
        region = region.filter(ImageFilter.GaussianBlur(max(2, max(w, h) // 16)))
        img.paste(region, (left, top))
    return img
