"""Video and audio ingest speed (issue #6): video seconds processed per wall second, and
the transcription real-time factor. Inputs are made in code, nothing is downloaded.

    python benchmarks/bench_media.py [--seconds 60 120] [--audio-seconds 60]
                                     [--out benchmarks/results/media.md]

Video: a synthetic 640x360, 25 fps H.264 clip per length in ``--seconds`` (a new scene
every 5 s, with moving texture so every frame decodes as real work) through the video
loader with transcription and OCR off: decode + scene sampling + frame pictures. Peak RSS growth
during the load is sampled every 10 ms, to show that memory stays flat with length.
Audio: espeak-ng speech of distinct sentences lasting ``--audio-seconds`` through the audio
loader with the bundled faster-whisper tiny.en (int8, CPU), model loaded beforehand;
real-time factor = wall seconds / audio seconds (below 1 = faster than real time), plus
the share of spoken words found in the transcript.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mmrag.config import IngestSettings  # noqa: E402
from mmrag.ingest import load, sniff  # noqa: E402
from mmrag.ingest.audio import _whisper  # noqa: E402
from mmrag.types import Blob  # noqa: E402

# Varied sentences: a repeated paragraph compresses so well that Whisper's
# compression-ratio guard takes it for a hallucination loop and drops it.
_WHO = ("the farmer", "my sister", "a young doctor", "the old captain", "our teacher",
        "the baker", "a tall student", "the mayor", "her cousin", "the pilot")
_DID = ("painted the fence", "bought fresh bread", "read a long letter", "fixed the radio",
        "planted tomatoes", "cleaned the kitchen", "wrote a short poem", "visited the museum",
        "washed the green car", "called the office")
_WHEN = ("on monday morning", "before lunch", "after the storm", "during the holiday",
         "late at night", "in the spring", "last winter", "at noon", "on friday evening",
         "next to the river")


def sentences(n: int) -> str:
    """``n`` distinct plain sentences."""
    out = []
    for i in range(n):
        out.append(f"{_WHO[i % 10]} {_DID[(i * 3 + i // 10) % 10]} {_WHEN[(i * 7 + 3) % 10]}.")
    return " ".join(out)


def synthetic_video(seconds: int, fps: int = 25, size: tuple[int, int] = (640, 360)) -> bytes:
    import av

    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 60, (h, w * 2, 3), dtype=np.uint8)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for n in range(seconds * fps):
            scene = n // (5 * fps)
            base = np.array([(scene * 67) % 256, (scene * 131) % 256, (scene * 29) % 256],
                            np.uint8)
            shift = (n * 4) % w  # texture pans: every frame differs a little
            arr = (texture[:, shift:shift + w] + base).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def speech(seconds: float, folder: Path) -> tuple[bytes, float, str]:
    """espeak-ng wav of distinct sentences lasting at least ``seconds``: (bytes, duration,
    text)."""
    count, duration, data, text = 10, 0.0, b"", ""
    out = folder / "speech.wav"
    while duration < seconds:
        text = sentences(count)
        subprocess.run(["espeak-ng", "-s", "160", "-w", str(out), text], check=True,
                       capture_output=True)
        data = out.read_bytes()
        duration = (len(data) - 44) / 2 / 22050  # espeak: 16-bit mono 22.05 kHz
        count = int(count * seconds / max(duration, 1.0)) + 2
    return data, duration, text


def peak_rss_growth(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, peak RSS growth in MiB) of ``fn()``."""
    proc = psutil.Process(os.getpid())
    start_rss = proc.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    done.set()
    thread.join()
    return result, wall, (peak[0] - start_rss) / 2**20


def bench_video(lengths: list[int]) -> list[str]:
    settings = IngestSettings(transcribe=False, ocr="never")
    rows = ["| video | frames kept | wall s | video s / wall s | peak RSS growth MiB |",
            "|---|---:|---:|---:|---:|"]
    warm = synthetic_video(1)  # one-time costs (imports, codec threads) out of the rows
    list(load(Blob(uri="warm.mp4", data=warm, name="warm.mp4", mime=sniff(warm)), settings))
    folder = Path(tempfile.mkdtemp(prefix="mmrag-bench-media-"))
    for seconds in lengths:
        data = synthetic_video(seconds)
        path = folder / f"bench-{seconds}.mp4"
        path.write_bytes(data)
        # A file-backed Blob, as the resolver makes for a local file: PyAV reads the file.
        blob = Blob(uri=str(path), path=str(path), name=path.name, mime=sniff(data))
        del data
        # Consume one piece at a time, as ingestion does: nothing is kept.
        pieces, wall, rss = peak_rss_growth(lambda b=blob: sum(1 for _ in load(b, settings)))
        size = blob.size
        path.unlink()
        rows.append(f"| {seconds} s 640x360 25 fps ({size / 2**20:.1f} MiB) | {pieces} "
                    f"| {wall:.2f} | {seconds / wall:.1f} | {rss:.0f} |")
        print(rows[-1], flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def bench_audio(seconds: float) -> list[str]:
    settings = IngestSettings()
    t0 = time.perf_counter()
    _whisper(settings.transcribe_model)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        data, duration, text = speech(seconds, Path(tmp))
    blob = Blob(uri="speech.wav", data=data, name="speech.wav", mime=sniff(data))
    pieces, wall, rss = peak_rss_growth(lambda: list(load(blob, settings)))
    spoken = set(re.findall(r"[a-z]+", text))
    heard = set(re.findall(r"[a-z]+", " ".join(p.text for p in pieces).lower()))
    recall = len(spoken & heard) / len(spoken)
    rows = ["| audio | segments | wall s | real-time factor | distinct words found | "
            "model load s |", "|---|---:|---:|---:|---:|---:|",
            f"| {duration:.0f} s espeak-ng speech (wav) | {len(pieces)} | {wall:.2f} | "
            f"{wall / duration:.3f} | {recall:.0%} | {load_s:.2f} |"]
    print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[60, 120])
    parser.add_argument("--audio-seconds", type=float, default=60.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/media.md"))
    args = parser.parse_args()
    video = bench_video(args.seconds)
    audio = bench_audio(args.audio_seconds) if shutil.which("espeak-ng") else \
        ["(audio skipped: espeak-ng is not installed)"]
    command = "python benchmarks/bench_media.py " + " ".join(sys.argv[1:])
    body = [f"`{command.strip()}` — {os.cpu_count()} CPU cores, shared.", "",
            "Video loader, transcription and OCR off (decode, 64 px scene-change sampling, frame "
            "pictures; min 2 s / max 30 s between frames, a scene cut every 5 s):", "",
            *video, "",
            "Audio loader: bundled faster-whisper tiny.en, int8 on CPU, VAD on; model "
            "loaded once per process before timing:", "", *audio, ""]
    Path(args.out).write_text("\n".join(body))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
