"""Encode-stage throughput: our CLIP image pipeline vs the bare model, and MiniLM text.

The CLIP model is ViT-B/32-shaped with *random* weights (nothing can be downloaded here);
throughput depends on shapes and FLOPs only, never on weight values. Each measurement runs
in its own subprocess so peak RSS belongs to that mode alone.

    python benchmarks/bench_encode.py                 # full run, writes results/encode.md
    python benchmarks/bench_encode.py --images 64 --repeats 2 --no-write
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results" / "encode.md"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def build_vit_b32(path: Path) -> None:
    """A ViT-B/32-shaped CLIP saved like a hub checkpoint: config, weights, tokenizer, processor."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    text = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                num_attention_heads=8, max_position_embeddings=77, bos_token_id=0,
                eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12, image_size=224, patch_size=32)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
              ).save_pretrained(path)
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77).save_pretrained(path)
    CLIPImageProcessorPil().save_pretrained(path)  # OpenAI defaults: resize 224 + crop 224


def make_images(n: int, width: int, height: int):
    """Photo-like JPEGs (gradients + noise), decoded up front as ingest would hand them over."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(n):
        arr = np.stack([(x * 255 / width + 7 * i) % 256, (y * 255 / height + 3 * i) % 256,
                        ((x + y) * (i % 5 + 1) / 4) % 256], axis=-1)
        arr += rng.normal(0, 12, arr.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        buf.seek(0)
        img = Image.open(buf)
        img.load()
        out.append(img)
    return out


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocator, oneDNN kernels, thread pools
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def image_setup(args: argparse.Namespace):
    """The encoder, the decoded images, and the same images' pixel tensors for the bare run."""
    from mmrag.encode import CLIPEncoder

    enc = CLIPEncoder(args.model, batch_size=args.batch_size, threads=args.threads)
    images = make_images(args.images, args.width, args.height)
    # Pre-made inputs for the bare run: exactly what preprocessing produces, made untimed.
    batches = [enc._preprocess(images[i:i + args.batch_size])["pixel_values"]
               for i in range(0, len(images), args.batch_size)]
    return enc, images, batches


def bare_fn(model, batches):
    import torch

    def bare():
        with torch.inference_mode():
            for px in batches:
                model.get_image_features(pixel_values=px)
    return bare


def run_mode(args: argparse.Namespace) -> dict:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out: dict = {"mode": args.mode}
    if args.mode == "compare":
        # Bare and pipeline repeats alternate (order flipped each round) on the same model
        # object, so load from other processes on the box hits both sides alike.
        enc, images, batches = image_setup(args)
        bare, pipe = bare_fn(enc._model, batches), (lambda: enc.encode_images(images))
        bare(), pipe()
        tb, tp = [], []
        for r in range(args.repeats):
            for name in (("bare", "pipe") if r % 2 == 0 else ("pipe", "bare")):
                t = time.perf_counter()
                (bare if name == "bare" else pipe)()
                (tb if name == "bare" else tp).append(time.perf_counter() - t)
        out.update(n=len(images), bare=tb, pipeline=tp)
    elif args.mode in ("rss-bare", "rss-pipeline"):
        enc, images, batches = image_setup(args)
        if args.mode == "rss-bare":
            del images
            bare_fn(enc._model, batches)()
        else:
            del batches
            enc.encode_images(images)
    elif args.mode == "text":
        from mmrag.encode import SentenceTransformerEncoder

        words = ("revenue chart quarterly growth dog puppy park invoice total tax figure "
                 "shows the of a in and page section table results").split()
        texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12 + i % 20))
                 for i in range(args.texts)]
        enc = SentenceTransformerEncoder(batch_size=args.batch_size, threads=args.threads)
        out.update(n=len(texts), text=timed(lambda: enc.encode_text(texts), args.repeats))
    else:
        raise SystemExit(f"unknown mode {args.mode!r}")
    out.update(threads=torch.get_num_threads(), peak_rss_mib=peak_rss_mib())
    return out


def child(args: argparse.Namespace, mode: str, model: str) -> dict:
    cmd = [sys.executable, __file__, "--mode", mode, "--model", model,
           "--images", str(args.images), "--texts", str(args.texts),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--width", str(args.width),
           "--height", str(args.height)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=128, help="images per timed repeat")
    ap.add_argument("--texts", type=int, default=512, help="texts per timed repeat")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--no-write", action="store_true", help="print only; keep results/encode.md")
    ap.add_argument("--mode", choices=["compare", "rss-bare", "rss-pipeline", "text"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.mode:  # child process: one measurement, JSON on the last stdout line
        print(json.dumps(run_mode(args)))
        return

    command = shlex.join(["python", "benchmarks/bench_encode.py", *sys.argv[1:]])
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vit-b32-random"
        build_vit_b32(path)
        cmp = child(args, "compare", str(path))
        rss = {m: child(args, f"rss-{m}", str(path))["peak_rss_mib"] for m in ("bare", "pipeline")}
    text = child(args, "text", "")
    load_after = os.getloadavg()[0]

    def rate(n: int, times: list[float]) -> tuple[float, float]:
        per_s = [n / t for t in times]
        return statistics.median(per_s), (max(per_s) - min(per_s)) / 2

    bare, pipe = rate(cmp["n"], cmp["bare"]), rate(cmp["n"], cmp["pipeline"])
    ratios = [b / p for b, p in zip(cmp["bare"], cmp["pipeline"], strict=True)]
    ratio = statistics.median(ratios)
    txt = rate(text["n"], text["text"])
    import torch
    import transformers

    lines = [
        "## Encode throughput",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__} ({cmp['threads']} threads), transformers "
        f"{transformers.__version__}, Python {platform.python_version()}; 1-min load average "
        f"{load_before:.1f} before, {load_after:.1f} after (other processes share the box).",
        "Model: ViT-B/32-shaped CLIPModel (vision 768 wide, 12 layers, 12 heads, patch 32, "
        "224 px; projection 512) with random weights: throughput depends on shapes, not weights.",
        f"Batch {args.batch_size}, {args.images} images per repeat, {args.repeats} repeats after "
        "one warm-up; bare and pipeline repeats alternate on the same model object; peak RSS "
        "from separate one-pass processes.",
        "",
        "| what | median throughput | ± half-range | peak RSS |",
        "|---|---|---|---|",
        f"| bare `get_image_features` on pre-made 224 px tensors | {bare[0]:.1f} img/s | "
        f"{bare[1]:.1f} | {rss['bare']:.0f} MiB |",
        f"| `CLIPEncoder.encode_images`, {args.width}x{args.height} decoded JPEGs, incl. "
        f"preprocessing | {pipe[0]:.1f} img/s | {pipe[1]:.1f} | {rss['pipeline']:.0f} MiB |",
        f"| `SentenceTransformerEncoder` (bundled MiniLM-L6), 12-31 word texts | "
        f"{txt[0]:.1f} texts/s | {txt[1]:.1f} | {text['peak_rss_mib']:.0f} MiB |",
        "",
        f"Pipeline / bare ratio (median of paired repeats {', '.join(f'{r:.3f}' for r in ratios)}):"
        f" **{ratio:.3f}** (target ≥ 0.90: {'met' if ratio >= 0.90 else 'NOT met'}).",
    ]
    block = "\n".join(lines)
    print(block)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(block + "\n")
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
