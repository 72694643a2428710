"""Video loader: mp4, mov, webm, mkv → key frames as ``image`` pieces + a timed transcript.

Frames are decoded one at a time with PyAV; each is averaged down to about 64 px wide
(straight from its YUV planes) and compared with that of the last frame kept. A frame is
kept when it differs by more than ``ingest.video_scene_threshold`` (mean absolute
difference, 0..1) and at least ``video_min_interval`` seconds passed since the last kept
one, or when ``video_max_interval`` seconds passed whatever it shows, so a static talk
still gets a frame per interval. Comparing with the last *kept* frame, not the previous
one, means a slow fade is still caught and a cut that came too soon after the last frame
is taken once the minimum interval has passed.

Each frame piece has ``page`` = its ordinal (1, 2, ...) and ``metadata`` start/end (the
seconds it stands for, until the next kept frame) and ``timestamp`` (``mm:ss``). Only the
thumbnails and one pending frame live in memory, so long videos stream. The audio track
is then transcribed (see :mod:`.audio`) into ``text`` pieces whose page is the frame on
screen when the speech starts, so a hit groups the picture with what was said over it.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..config import IngestSettings
from ..errors import IngestError
from ..progress import note
from ..timing import stage
from ..types import Blob
from .audio import clock, media_error, open_container, sound_pieces
from .base import Piece, loaders
from .images import _ocr as read_text

__all__ = ["SceneSampler", "load_video"]

_THUMB_W = 64
_PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}
log = logging.getLogger(__name__)


@dataclass
class SceneSampler:
    """Decides, frame by frame, which frames to keep (see the module docstring)."""

    min_interval: float
    max_interval: float
    threshold: float
    _last_thumb: np.ndarray | None = None
    _last_time: float = 0.0

    def due(self, t: float) -> bool:
        """Whether frame time ``t`` may be kept at all (skips thumbnails before that)."""
        return self._last_thumb is None or t - self._last_time >= self.min_interval

    def keep(self, t: float, thumb: np.ndarray) -> bool:
        if self._last_thumb is None:
            return self._take(t, thumb)
        elapsed = t - self._last_time
        if elapsed >= self.max_interval:
            return self._take(t, thumb)
        if elapsed < self.min_interval:
            return False
        if thumb.shape != self._last_thumb.shape:  # the resolution changed mid-stream
            return self._take(t, thumb)
        diff = float(np.abs(thumb.astype(np.int16) - self._last_thumb).mean()) / 255.0
        return self._take(t, thumb) if diff > self.threshold else False

    def _take(self, t: float, thumb: np.ndarray) -> bool:
        self._last_thumb, self._last_time = thumb.astype(np.int16), t
        return True


def _frame_time(frame: Any, stream: Any) -> float | None:
    if frame.pts is None:
        return None
    base = frame.time_base or stream.time_base
    return float(frame.pts * base) if base is not None else None


def _thumb(frame: Any) -> np.ndarray:
    """The frame averaged down to about 64 px wide, flattened.

    For planar YUV (nearly every H.264/VP9/AV1 video) the Y, U and V planes are averaged
    in place, without a colour conversion. A swscale resize to 64 px cost 2 ms a
    frame, four times the decoding of a 360p frame, and capped throughput.
    """
    if frame.format.name in _PLANAR_YUV:
        step = max(1, frame.width // _THUMB_W)
        return np.concatenate([_plane(p, step if i == 0 else max(1, step // 2)).ravel()
                               for i, p in enumerate(frame.planes[:3])])
    h = max(1, round(frame.height * _THUMB_W / max(1, frame.width)))
    return frame.to_ndarray(width=_THUMB_W, height=h, format="rgb24").ravel()


def _plane(plane: Any, step: int) -> np.ndarray:
    """Area average of each ``step`` x ``step`` block: averaging, not picking one pixel,
    keeps film grain and noise from looking like a scene change. (OpenCV comes with
    rapidocr; its area resize is ~5x faster than a numpy block mean.)"""
    import cv2

    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    pixels = rows[:plane.height, :plane.width]
    size = (max(1, plane.width // step), max(1, plane.height // step))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def _picture(frame: Any, side: int) -> Image.Image:
    """The frame as RGB, longest side bounded by ``ingest.max_image_side``."""
    w, h = frame.width, frame.height
    if max(w, h) > side:
        ratio = side / max(w, h)
        w, h = max(1, round(w * ratio)), max(1, round(h * ratio))
    return frame.to_image(width=w, height=h)


def _frames(container: Any, blob: Blob, settings: IngestSettings
            ) -> Iterator[tuple[float, Image.Image]]:
    """``(seconds, picture)`` of each kept frame, in order."""
    import av

    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame-threaded decode; the sampler stays sequential
    sampler = SceneSampler(settings.video_min_interval, settings.video_max_interval,
                           settings.video_scene_threshold)
    last_log = last_note = 0.0
    try:
        for frame in container.decode(stream):
            t = _frame_time(frame, stream)
            if t is None:
                continue
            if t - last_note >= 1.0:  # the bar shows how far into the video we are
                note(f"{blob.name or blob.uri} {clock(t)}")
                last_note = t
            if t - last_log >= 60.0:
                log.info("%s: %.0f s of video processed", blob.uri, t)
                last_log = t
            if sampler.due(t) and sampler.keep(t, _thumb(frame)):
                yield t, _picture(frame, settings.max_image_side)
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise IngestError(blob.uri, f"corrupt or truncated video: {media_error(exc)}") from None


def _duration(container: Any) -> float | None:
    if container.duration is not None:
        return container.duration / 1_000_000  # microseconds (av.time_base)
    return None


def _frame_piece(ordinal: int, start: float, end: float, img: Image.Image,
                 blob: Blob, settings: IngestSettings) -> Piece:
    meta: dict[str, Any] = {"start": round(start, 2), "end": round(max(end, start), 2),
                            "timestamp": clock(start), "width": img.width,
                            "height": img.height, "origin": "video_frame"}
    # Slides and captions on screen are read like any image (ingest.ocr decides).
    ocr = read_text(img, settings, blob.uri)
    text = ocr.text if ocr is not None else ""
    if text:
        meta["ocr_text"] = text
    return Piece(modality="image", text=text, page=ordinal, image=img, metadata=meta,
                 ocr=ocr)


def _frame_pieces(container: Any, blob: Blob, settings: IngestSettings,
                  starts: list[float]) -> Iterator[Piece]:
    """Kept frames as pieces, each held back until the next one gives its end time."""
    pending: tuple[float, Image.Image] | None = None
    frames = _frames(container, blob, settings)
    while True:
        with stage("video"):
            item = next(frames, None)
        if item is None:
            break
        if pending is not None:
            yield _frame_piece(len(starts), pending[0], item[0], pending[1], blob, settings)
        starts.append(item[0])
        pending = item
    if pending is not None:
        end = _duration(container) or pending[0]
        yield _frame_piece(len(starts), pending[0], end, pending[1], blob, settings)


@loaders.register("video")
def load_video(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Key frames (``image`` pieces), then the transcript (``text`` pieces)."""
    starts: list[float] = []
    container = open_container(blob)
    with container:
        if not container.streams.video and not container.streams.audio:
            raise IngestError(blob.uri, "no video or audio stream in the file")
        if container.streams.video:
            yield from _frame_pieces(container, blob, settings, starts)
    if not settings.transcribe and not settings.audio_clips:
        return
    # A second demux pass (reading the file again is cheap): decoding both tracks in one
    # pass would have to buffer whichever runs ahead.
    container = open_container(blob)
    with container:
        yield from sound_pieces(container, blob.uri, settings,
                                page_at=lambda s: _page_at(starts, s))


def _page_at(starts: list[float], seconds: float) -> int:
    """Ordinal of the frame on screen at ``seconds`` (1 when there are no frames)."""
    return max(1, bisect.bisect_right(starts, seconds))
