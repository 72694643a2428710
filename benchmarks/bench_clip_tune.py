"""CLIP tuning on CPU: steps/s of a ViT-B/32-shaped CLIP and the loss curves of the
synthetic tiny-model runs the tests make. Random weights: wiring/speed only.

    .venv/bin/python benchmarks/bench_clip_tune.py [--steps 3] [--batch 32] \
        [--out benchmarks/results/clip_tune.md]

Speed: ``tune_clip`` itself (hard negatives off, so every step is one training step)
on a checkpoint shaped like openai/clip-vit-base-patch32 (vision 768 wide x 12 layers,
32 px patches at 224 px; text 512 x 12; projection 512), float32, built from
``CLIPConfig`` with random weights. Baseline in the same run: one no-grad forward pass of
the same batch, so the ratio says what a training step costs over encoding.

Curves: the tiny random CLIP and SigLIP of tests/conftest.py on the coloured-shapes pair
set (tests/tune/shapes.py), with the settings of tests/tune/test_clip_tune.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _tokenizer():
    from tests.conftest import _tokenizer as tiny_tokenizer

    return tiny_tokenizer()


def _pairs(folder: Path, per_name: int, seed: int, numbered: bool, side: int) -> Path:
    from tests.tune.shapes import shape_pairs

    lines = []
    for i, (img, text) in enumerate(shape_pairs(per_name, seed=seed, side=side)):
        img.save(folder / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png",
                                 "text": f"{text} {i}" if numbered else text}))
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "pairs.jsonl"


def vit_b32(folder: Path) -> Path:
    """A random-weight CLIP with ViT-B/32's shapes (about 151M parameters)."""
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = _tokenizer()
    text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12, image_size=224, patch_size=32)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
              ).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 224},
                          crop_size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def speed(work: Path, steps: int, batch: int, threads: int) -> dict:
    import torch

    from mmrag.config import Settings
    from mmrag.tune.clip import (
        ClipTuneOptions,
        _image_inputs,
        _text_inputs,
        load_model,
        read_pairs,
        tune_clip,
    )

    model = vit_b32(work / "vitb32")
    pairs = _pairs(work, per_name=max(4, batch // 9 + 1), seed=0, numbered=True, side=224)
    settings = Settings(encode={"threads": threads})
    opts = ClipTuneOptions(model=str(model), out=str(work / "tuned"), steps=steps,
                           batch_size=batch, hard_negatives=0.0, holdout=0.0)
    report = tune_clip(None, str(pairs), False, 30.0, settings, opts)
    # baseline: one no-grad forward pass over a batch of the same size
    m = load_model(str(model), threads)
    m.model.eval()
    from PIL import Image

    chosen = read_pairs(pairs)[:batch]
    imgs = [Image.open(p.image).convert("RGB") for p in chosen]
    inputs = {**_text_inputs(m, [p.text for p in chosen]), **_image_inputs(m, imgs)}
    with torch.no_grad():
        m.model(**inputs)  # warm-up
        t0 = time.perf_counter()
        m.model(**inputs)
        forward_s = time.perf_counter() - t0
    params = sum(p.numel() for p in m.model.parameters())
    step_s = report["seconds"] / max(1, report["steps"])
    return {"steps": report["steps"], "batch": batch, "threads": threads,
            "params_m": round(params / 1e6, 1), "steps_per_s": report["steps_per_s"],
            "s_per_step": round(step_s, 2), "forward_s": round(forward_s, 2),
            "step_over_forward": round(step_s / forward_s, 2),
            "losses": [round(x, 4) for x in report["losses"]]}


def tiny(folder: Path, kind: str) -> Path:
    """The tiny CLIP / SigLIP of tests/conftest.py (same configs and seeds)."""
    import torch

    from tests.conftest import _tower_configs

    tok = _tokenizer()
    text, vision = _tower_configs(len(tok))
    if kind == "clip":
        from transformers import CLIPConfig, CLIPModel
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        torch.manual_seed(0)
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
                  ).save_pretrained(folder)
        CLIPImageProcessorPil(size={"shortest_edge": 32},
                              crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    else:
        from transformers import SiglipConfig, SiglipModel
        from transformers.models.siglip.image_processing_pil_siglip import (
            SiglipImageProcessorPil,
        )

        torch.manual_seed(1)
        SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(folder)
        SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def curves(work: Path) -> dict:
    from mmrag.config import Settings
    from mmrag.tune.clip import ClipTuneOptions, tune_clip

    (work / "shapes").mkdir()
    pairs = _pairs(work / "shapes", per_name=10, seed=0, numbered=False, side=32)
    out = {}
    for kind, logit_lr in (("clip", None), ("siglip", 5e-2)):
        base = tiny(work / f"tiny-{kind}", kind)
        opts = ClipTuneOptions(model=str(base), out=str(work / f"tuned-{kind}"), steps=150,
                               batch_size=9, lr=1e-3, logit_lr=logit_lr, warmup=0.0,
                               weight_decay=0.0, mine_every=25)
        r = tune_clip(None, str(pairs), False, 10.0, Settings(encode={"threads": 1}), opts)
        out[kind] = {k: r[k] for k in ("recall_before", "recall_after", "steps",
                                       "steps_per_s")}
        out[kind]["losses"] = [round(x, 3) for x in r["losses"]]
    return out


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def markdown(fast: dict, tiny: dict, command: str, load: str) -> str:
    lines = ["# CLIP tuning on CPU — wiring/speed only (random weights)", "",
             f"Command: `{command}`", "",
             f"Machine: {load} at the start (shared with other engineers; timings noisy).",
             "", "## Steps/s, ViT-B/32-shaped CLIP (random weights, float32)", "",
             "| params | batch | torch threads | steps | s/step | steps/s | no-grad forward "
             "(s) | step / forward |", "|---|---|---|---|---|---|---|---|",
             f"| {fast['params_m']}M | {fast['batch']} | {fast['threads']} | {fast['steps']} "
             f"| {fast['s_per_step']} | {fast['steps_per_s']} | {fast['forward_s']} | "
             f"{fast['step_over_forward']} |", "",
             "A step is `tune_clip`'s own loop (tokenise, preprocess, forward with "
             "`return_loss=True`, backward, AdamW) with hard-negative mining off; mining "
             "costs one no-grad pass over the pair set every `mine_every` steps.", "",
             "## Loss curves of the synthetic test (tiny random CLIP / SigLIP)", "",
             "9 names (3 colours x 3 shapes), 90 pairs, 18 held out; batch 9, lr 1e-3, "
             "SigLIP temperature/bias at 5e-2; recall@1 on the held-out images "
             "(image → distinct texts).", ""]
    for name, r in tiny.items():
        kind = "CLIP" if name == "clip" else "SigLIP"
        every = r["losses"][::10] + [r["losses"][-1]]
        lines += [f"**{kind}**: image→text recall@1 {r['recall_before']['image_to_text']:.2f}"
                  f" → {r['recall_after']['image_to_text']:.2f} (chance "
                  f"{r['recall_after']['chance']:.2f}); text→image "
                  f"{r['recall_before']['text_to_image']:.2f} → "
                  f"{r['recall_after']['text_to_image']:.2f}; {r['steps_per_s']} steps/s", "",
                  "loss every 10 steps: " + ", ".join(f"{x:.3f}" for x in every), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/clip_tune.md")
    args = ap.parse_args()
    command = "python benchmarks/bench_clip_tune.py " + " ".join(sys.argv[1:])
    load = _load()
    with tempfile.TemporaryDirectory(prefix="mmrag-clip-tune-") as tmp:
        work = Path(tmp)
        tiny = curves(work)
        fast = speed(work, args.steps, args.batch, args.threads)
    text = markdown(fast, tiny, command.strip(), load)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
