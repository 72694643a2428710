"""Video loader on synthetic videos encoded here with PyAV: colour scenes, a static clip,
and a clip with an espeak-ng speech track."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from mmrag import Index
from mmrag.errors import IngestError
from mmrag.ingest import load, sniff
from mmrag.ingest.video import SceneSampler
from mmrag.types import Blob
from tests.ingest.test_audio import FAST, needs_espeak, speech_wav, words_found

av = pytest.importorskip("av")

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 60), (40, 60, 230)


def make_video(scenes: list[tuple[tuple[int, int, int], float]], fps: int = 10,
               size: tuple[int, int] = (96, 64), speech: bytes | None = None,
               fmt: str = "mp4", slides: list | None = None, codec: str = "libx264"
               ) -> bytes:
    """An H.264 video of flat colour ``scenes`` (colour, seconds), or of ``slides`` (PIL
    image, seconds) sized like the first, optionally with ``speech`` (a wav) as AAC."""
    if slides:
        size = slides[0][0].size
    w, h = size
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        audio = _audio_stream(out, speech) if speech is not None else None
        n = 0
        for arr, seconds in [*((_scene(c, w, h), s) for c, s in scenes),
                             *((np.asarray(img), s) for img, s in slides or [])]:
            for _ in range(round(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts = n
                n += 1
                for packet in vs.encode(frame):
                    out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if audio is not None:
            _mux_speech(out, *audio)
    return buf.getvalue()


def _scene(colour: tuple[int, int, int], w: int, h: int) -> np.ndarray:
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = colour
    arr[: h // 4, : w // 4] = 255 - np.array(colour, np.uint8)  # some structure
    return arr


def _audio_stream(out, speech: bytes):
    """Streams must all exist before the first packet is muxed (the header is written)."""
    with wave.open(io.BytesIO(speech)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(1, -1)
    return out.add_stream("aac", rate=rate, layout="mono"), pcm, rate


def _mux_speech(out, stream, pcm: np.ndarray, rate: int) -> None:
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate, frame.pts = rate, 0
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                  rate=rate, frame_size=stream.codec_context.frame_size)
    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        for packet in stream.encode(chunk):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def _load(data: bytes, settings, name: str = "clip.mp4") -> list:
    return list(load(Blob(uri=name, data=data, name=name, mime=sniff(data, name)), settings))


def test_three_scenes_give_three_timed_frames(settings):
    pieces = _load(make_video([(RED, 2), (GREEN, 2), (BLUE, 2)]), settings)
    frames = [p for p in pieces if p.modality == "image"]
    assert [p.page for p in frames] == [1, 2, 3]
    starts = [p.metadata["start"] for p in frames]
    assert starts == pytest.approx([0.0, 2.0, 4.0], abs=0.15)
    assert [p.metadata["end"] for p in frames[:2]] == starts[1:]
    assert frames[-1].metadata["end"] == pytest.approx(6.0, abs=0.2)
    assert [p.metadata["timestamp"] for p in frames] == ["00:00", "00:02", "00:04"]
    # Each kept frame shows its scene's colour (centre pixel, outside the corner patch).
    for frame, colour in zip(frames, (RED, GREEN, BLUE), strict=True):
        pixel = np.asarray(frame.image)[40, 60].astype(int)
        assert np.abs(pixel - colour).max() < 30


@pytest.mark.parametrize(("fmt", "codec", "mime"), [
    ("matroska", "libx264", "video/x-matroska"), ("webm", "libvpx-vp9", "video/webm"),
    ("mov", "libx264", "video/quicktime")])
def test_other_containers_give_the_same_frames(settings, fmt, codec, mime):
    data = make_video([(RED, 2), (BLUE, 2)], fmt=fmt, codec=codec)
    assert sniff(data) == mime
    frames = [p for p in _load(data, settings, f"clip.{fmt}") if p.modality == "image"]
    assert [p.metadata["start"] for p in frames] == pytest.approx([0.0, 2.0], abs=0.15)


def test_cuts_closer_than_min_interval_are_thinned(settings):
    flicker = [(c, 0.5) for c in (RED, GREEN, BLUE) * 4]  # a cut every 0.5 s, 6 s long
    frames = [p for p in _load(make_video(flicker), settings) if p.modality == "image"]
    starts = [p.metadata["start"] for p in frames]
    assert 2 <= len(frames) <= 4
    assert all(b - a >= settings.video_min_interval - 1e-6
               for a, b in zip(starts, starts[1:], strict=False))


def test_static_video_gets_a_frame_per_max_interval(settings):
    data = make_video([(GREEN, 65)], fps=2, size=(32, 32))
    frames = [p for p in _load(data, settings) if p.modality == "image"]
    starts = [p.metadata["start"] for p in frames]
    assert starts == pytest.approx([0.0, 30.0, 60.0], abs=0.6)


def test_text_on_screen_is_read_by_ocr(settings):
    from PIL import Image, ImageDraw, ImageFont

    slide = Image.new("RGB", (320, 96), "white")
    ImageDraw.Draw(slide).text((12, 28), "QUARTERLY REVENUE", fill="black",
                               font=ImageFont.load_default(size=28))
    frames = [p for p in _load(make_video([], slides=[(slide, 1.0)]), settings)
              if p.modality == "image"]
    assert len(frames) == 1
    assert "REVENUE" in frames[0].text.upper()
    assert frames[0].metadata["ocr_text"] == frames[0].text


def test_scene_sampler_rules():
    sampler = SceneSampler(min_interval=2.0, max_interval=10.0, threshold=0.1)
    dark, light = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)
    assert sampler.keep(0.0, dark)          # the first frame is always kept
    assert not sampler.keep(1.0, light)     # a cut, but too soon
    assert sampler.keep(2.0, light)         # still different from the last kept frame
    assert not sampler.keep(5.0, light)     # nothing changed
    assert sampler.keep(12.0, light)        # max interval reached


@needs_espeak
def test_video_with_speech_gives_frames_and_transcript(tmp_path, settings):
    data = make_video([(RED, 2), (BLUE, 2)], speech=speech_wav(tmp_path))
    pieces = _load(data, settings)
    frames = [p for p in pieces if p.modality == "image"]
    texts = [p for p in pieces if p.modality == "text"]
    assert len(frames) == 2 and texts
    assert len(words_found(" ".join(p.text for p in texts))) >= 6
    for p in texts:  # linked to the frame on screen when the speech starts
        assert p.page == (1 if p.metadata["start"] < frames[1].metadata["start"] else 2)
        assert p.metadata["start"] < p.metadata["end"]


@needs_espeak
def test_video_hits_carry_timestamps(tmp_path):
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(make_video([(RED, 2), (BLUE, 2)], speech=speech_wav(tmp_path)))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add([clip])
        assert not report.failed
        hits = index.search("kitchen light", k=3)
    assert hits and hits[0].item.name == "talk.mp4"
    assert hits[0].item.metadata["timestamp"].count(":") == 1


def test_truncated_video_is_one_line_error(settings):
    data = make_video([(RED, 1), (GREEN, 1)])
    with pytest.raises(IngestError) as info:
        _load(data[: len(data) // 2], settings, "cut.mp4")
    assert str(info.value).startswith("cut.mp4: ")
    assert "\n" not in str(info.value)


def test_garbage_after_mp4_magic_is_one_line_error(settings):
    data = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8
    with pytest.raises(IngestError, match="^junk.mp4: "):
        _load(data, settings, "junk.mp4")


def test_video_containers_are_sniffed_by_bytes():
    assert sniff(make_video([(RED, 0.5)]), "clip.txt") == "video/mp4"
    assert sniff(make_video([(RED, 0.5)], fmt="matroska")) == "video/x-matroska"
    assert sniff(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 40) == "video/quicktime"
    assert sniff(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 40) \
        == "video/webm"
