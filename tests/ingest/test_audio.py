"""Audio loader on real inputs made here: espeak-ng speech, silence, corrupt files."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from mmrag import Index
from mmrag.errors import ConfigError, IngestError
from mmrag.ingest import load, sniff
from mmrag.ingest.audio import clock
from mmrag.types import Blob

# tiny.en hears every word of this espeak-ng sentence in wav, flac, mp3, opus and aac;
# "the quick brown fox..." lost 3-4 of its words, too close to any threshold.
SENTENCE = "please open the door and turn on the kitchen light"
FAST = {"encode": {"text_encoder": "hashing"}}
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng (Debian package) is not installed; "
                                         "CI installs it to make test speech")


def speech_wav(tmp_path: Path, text: str = SENTENCE, name: str = "speech.wav") -> bytes:
    """Speech synthesised by espeak-ng (22.05 kHz mono wav)."""
    out = tmp_path / name
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(out), text], check=True,
                   capture_output=True)
    return out.read_bytes()


def wav_bytes(samples: np.ndarray, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _load(data: bytes, name: str, settings) -> list:
    return list(load(Blob(uri=name, data=data, name=name, mime=sniff(data, name)), settings))


def words_found(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) & set(SENTENCE.split())


@needs_espeak
def test_speech_becomes_timed_text_with_most_words(tmp_path, settings):
    pieces = _load(speech_wav(tmp_path), "door.wav", settings)
    assert pieces and all(p.modality == "text" for p in pieces)
    text = " ".join(p.text for p in pieces)
    assert len(words_found(text)) >= 6, text  # most, not all: tiny.en on synthetic speech
    first = pieces[0].metadata
    assert 0.0 <= first["start"] < first["end"] <= 5.0
    assert first["timestamp"] == clock(first["start"])


@needs_espeak
def test_each_transcript_segment_carries_its_spoken_words_as_opus(tmp_path, settings):
    import av

    for piece in _load(speech_wav(tmp_path), "door.wav", settings):
        assert piece.media_ext == "ogg" and piece.media[:4] == b"OggS"
        with av.open(io.BytesIO(piece.media)) as container:
            seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
        span = piece.metadata["end"] - piece.metadata["start"]
        assert abs(seconds - span) < 0.1, (seconds, span)


@needs_espeak
def test_transcript_is_found_by_index_search(tmp_path):
    speech = tmp_path / "door.wav"
    speech.write_bytes(speech_wav(tmp_path))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add([speech])
        assert not report.failed
        hits = index.search("kitchen light", k=3)
    assert hits and hits[0].item.name == "door.wav"
    assert hits[0].item.modality == "text"
    assert "timestamp" in hits[0].item.metadata


def encode_audio(wav: bytes, fmt: str, codec: str) -> bytes:
    """``wav`` re-encoded with PyAV into container ``fmt`` with ``codec``."""
    import av

    with wave.open(io.BytesIO(wav)) as src:
        rate = src.getframerate()
        pcm = np.frombuffer(src.readframes(src.getnframes()), "<i2").reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=48_000 if codec == "libopus" else rate,
                                layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        ctx = stream.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=ctx.rate,
                                      frame_size=ctx.frame_size or None)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@needs_espeak
@pytest.mark.parametrize(("fmt", "codec", "mime"), [
    ("flac", "flac", "audio/flac"), ("mp3", "libmp3lame", "audio/mpeg"),
    ("ogg", "libopus", "audio/ogg"), ("ipod", "aac", "audio/mp4")])
def test_compressed_speech_formats_are_transcribed(tmp_path, settings, fmt, codec, mime):
    data = encode_audio(speech_wav(tmp_path), fmt, codec)
    assert sniff(data) == mime
    pieces = _load(data, f"door.{fmt}", settings)
    assert len(words_found(" ".join(p.text for p in pieces))) >= 6


def test_silence_yields_no_pieces_and_no_error(settings):
    assert _load(wav_bytes(np.zeros(16_000 * 3)), "quiet.wav", settings) == []


def test_missing_transcription_model_is_one_line_config_error(tmp_path, settings):
    settings.transcribe_model = str(tmp_path / "no-such-whisper")
    with pytest.raises(ConfigError, match="no-such-whisper") as info:
        _load(wav_bytes(np.zeros(16_000)), "quiet.wav", settings)
    assert "\n" not in str(info.value) and "transcribe_model" in str(info.value)


def test_transcribe_off_yields_nothing(settings):
    settings.transcribe = False
    assert _load(wav_bytes(np.zeros(16_000)), "quiet.wav", settings) == []


@pytest.mark.parametrize("data", [
    b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\x00" * 8,  # truncated header
    b"RIFF\xff\xff\xff\xffWAVE" + bytes(range(256)) * 4,  # garbage after the magic
])
def test_corrupt_wav_is_one_line_error(settings, data):
    with pytest.raises(IngestError) as info:
        _load(data, "broken.wav", settings)
    assert str(info.value).startswith("broken.wav: ")
    assert "\n" not in str(info.value)


def test_audio_containers_are_sniffed_by_bytes():
    assert sniff(wav_bytes(np.zeros(100)), "x.txt") == "audio/wav"
    assert sniff(b"fLaC\x00\x00\x00\x22" + b"\x00" * 40) == "audio/flac"
    assert sniff(b"OggS\x00\x02" + b"\x00" * 40) == "audio/ogg"
    assert sniff(b"ID3\x04\x00\x00" + b"\x00" * 40) == "audio/mpeg"
    assert sniff(b"\xff\xfb\x90\x64" + b"\x00" * 40) == "audio/mpeg"
    assert sniff(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 40) == "audio/mp4"
    assert sniff(b"ID3 is a tag format\n") == "text/plain"


def test_clock_formats_minutes_and_hours():
    assert clock(0) == "00:00"
    assert clock(75.9) == "01:15"
    assert clock(3725) == "1:02:05"


@needs_espeak
def test_cli_search_shows_the_timestamp(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mmrag.cli import app

    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    speech = tmp_path / "door.wav"
    speech.write_bytes(speech_wav(tmp_path))
    idx = str(tmp_path / "idx")
    runner = CliRunner()
    assert runner.invoke(app, ["add", str(speech), "--index", idx]).exit_code == 0
    result = runner.invoke(app, ["search", "kitchen light", "--index", idx])
    assert result.exit_code == 0, result.output
    assert "@ 00:00" in result.output
