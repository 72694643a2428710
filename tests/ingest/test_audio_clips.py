"""Audio clips for an audio–text encoder (CLAP): cut, silence skipped, embedded, searched.

The CLAP model is the tiny random-weight one built from config classes in
tests/encode/test_clap.py: these tests prove wiring (clips reach the encoder, vectors
reach the store, text queries reach them), never retrieval quality.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.ingest.audio import SAMPLE_RATE, clip_pieces, loudness_db
from tests.encode.test_clap import tiny_clap_path  # noqa: F401  (fixture)
from tests.ingest.test_audio import wav_bytes


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _tone_silence_noise() -> np.ndarray:
    """0–10 s tone, 10–20 s silence, 20–25 s noise."""
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 5 * SAMPLE_RATE).astype(np.float32)
    return np.concatenate([_tone(10), np.zeros(10 * SAMPLE_RATE, np.float32), noise])


def test_loudness_tells_silence_from_sound():
    assert loudness_db(np.zeros(1000, np.float32)) < -150
    assert -12 < loudness_db(_tone(1)) < -8  # 0.4 amplitude sine: about -11 dBFS


def test_clips_skip_silence_and_keep_their_times():
    pieces = list(clip_pieces(_tone_silence_noise(), 60.0, IngestSettings(audio_clip_s=10)))
    assert [(p.metadata["start"], p.metadata["end"]) for p in pieces] == [(60.0, 70.0),
                                                                         (80.0, 85.0)]
    assert all(p.modality == "audio" and p.text == "" for p in pieces)
    assert pieces[0].audio.dtype == np.float32 and len(pieces[0].audio) == 10 * SAMPLE_RATE
    assert pieces[0].metadata["timestamp"] == "01:00"


@pytest.fixture()
def index(tmp_path, tiny_clap_path):  # noqa: F811
    idx = Index(tmp_path / "idx", profile="offline", show_progress=False,
                encode={"text_encoder": "hashing", "audio_model": str(tiny_clap_path)},
                ingest={"transcribe": False})
    yield idx
    idx.close()


def test_clap_wiring_clips_are_embedded_and_found_by_text(index):
    report = index.add([("mix.wav", wav_bytes(_tone_silence_noise()))])
    assert not report.failed, report.failed
    assert "clap" in index.info()["spaces"]
    hits = index.search("a dog barking", k=5, mode="dense", group_by="item")
    assert {h.item.metadata["start"] for h in hits} == {0.0, 20.0}
    assert all(h.item.modality == "audio" and "clap:text" in h.scores for h in hits)
    assert "embed:clap" in report.timings


def test_silent_file_gives_no_items_and_no_error(index):
    report = index.add([("quiet.wav", wav_bytes(np.zeros(3 * SAMPLE_RATE)))])
    assert index.store.count() == 0 and report.items == 0
    assert not report.failed and len(report.added) == 1
    again = index.add([("quiet.wav", wav_bytes(np.zeros(3 * SAMPLE_RATE)))])
    assert again.skipped and not again.added  # recorded: not decoded a second time


def test_without_audio_model_no_clips_are_made(tmp_path):
    with Index(tmp_path / "idx", profile="offline", show_progress=False,
               encode={"text_encoder": "hashing"}, ingest={"transcribe": False}) as idx:
        report = idx.add([("mix.wav", wav_bytes(_tone_silence_noise()))])
        assert idx.store.count() == 0 and "clap" not in idx.info()["spaces"]
        assert not report.failed and report.items == 0


def test_clips_carry_playable_opus_media():
    import io

    import av

    piece = next(clip_pieces(_tone(10), 0.0, IngestSettings(audio_clip_s=10)))
    assert piece.media_ext == "ogg" and piece.media[:4] == b"OggS"
    assert len(piece.media) < 80_000  # ~32 kb/s, not a WAV's 320 KB
    with av.open(io.BytesIO(piece.media)) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
        seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
    assert 9.9 < seconds < 10.1


def test_clip_media_is_stored_unless_store_media_is_off(tmp_path, tiny_clap_path):  # noqa: F811
    for store, expect in ((True, ".ogg"), (False, "")):
        with Index(tmp_path / f"idx-{store}", profile="offline", show_progress=False,
                   encode={"text_encoder": "hashing", "audio_model": str(tiny_clap_path)},
                   ingest={"transcribe": False}, privacy={"store_media": store}) as idx:
            idx.add([("tone.wav", wav_bytes(_tone(3)))])
            item = idx.search("a tone", k=1, mode="dense")[0].item
            assert item.media.endswith(expect) if expect else item.media == ""
