"""Contrastive fine-tuning of the ``clip`` space's dual encoder (CLIP or SigLIP).

Why: a general CLIP/SigLIP checkpoint knows photos, not a user's invoices, slides or
diagrams; a few thousand (image, text) pairs of their own material move both towers
towards it. The tuned checkpoint is an ordinary transformers folder, so an index uses it
through the same setting as any checkpoint (``encode.vision_model = "<folder>"``); its
vectors are not comparable with the base model's, so it needs a fresh index (the manifest
refuses to mix two models in one column).

Pairs come from a JSONL file, one object a line::

    {"image": "scans/0001.png", "text": "invoice from ACME, March 2024"}
    {"image": "https://example.org/chart.png", "text": "quarterly revenue bar chart"}

``image`` is a path (relative to the JSONL file's folder), a ``file://`` or an
``http(s)://`` URL (fetched under ``ingest``'s URL rules). ``--from-index`` builds them from
what an index holds: figures and their captions, pictures and their alt text or OCR text,
slide renders and the slide's title.

Training (one step): a batch of pairs, half anchors drawn at random and half their hard
negatives (for an anchor's image, the pairs whose *text* the current model finds most
similar, re-mined every ``mine_every`` steps), so the loss has to separate the pairs the
model confuses. The loss is the model's own (``return_loss=True``): CLIP's symmetric
InfoNCE over the batch's image–text logits scaled by its learnable temperature
``logit_scale`` (Radford et al. 2021), SigLIP's pairwise sigmoid loss with learnable
``logit_scale`` and ``logit_bias`` (Zhai et al. 2023); :func:`pair_loss` is the same maths
for dual encoders whose forward has no loss. Two pairs with the same text are never put
in one batch: they would be each other's false negatives.

Hardware: ``accelerate`` (when installed) runs the loop, so ``accelerate launch`` gives
multi-GPU data parallelism and ``mixed_precision`` bf16/fp16 on GPUs; on CPU it is plain
float32. With ``peft`` installed, ``lora=True`` trains low-rank adapters on the attention
and projection layers of both towers (plus the temperature/bias) and merges them into the
saved checkpoint, which then loads like any other.
"""

from __future__ import annotations

import io
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..config import Settings
from ..encode._util import input_side, shrink
from ..errors import ConfigError, MissingDependencyError
from ..progress import Progress

if TYPE_CHECKING:
    from ..index import Index

log = logging.getLogger(__name__)

# LoRA targets: attention query/value of both towers (CLIP and SigLIP name them alike) and
# CLIP's two projections into the shared space.
LORA_TARGETS = ("q_proj", "v_proj", "visual_projection", "text_projection")
MIN_PAIRS = 4


@dataclass(slots=True)
class Pair:
    """One (image, text) example; ``image`` is a path/URL or an image already decoded."""

    image: str | Image.Image
    text: str


@dataclass(slots=True)
class ClipTuneOptions:
    """Knobs of one run; the defaults suit a GPU and a few thousand pairs."""

    model: str = ""  # base checkpoint; empty = the index's encode.vision_model
    out: str = ""  # where the tuned checkpoint goes; empty = <index>/tuned/clip
    steps: int = 0  # optimizer steps; 0 = as many as ``minutes`` allows
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 0.1
    logit_lr: float | None = None  # rate of the temperature (and SigLIP bias); None = lr,
    # 0 = frozen (random towers: see tests/tune/test_clip_tune.py)
    warmup: float = 0.1  # share of steps with a linear learning-rate ramp (known steps only)
    hard_negatives: float = 0.5  # share of each batch filled with mined hard negatives
    mine_every: int = 50  # steps between two hard-negative minings
    holdout: float = 0.2  # share of pairs kept out of training to measure recall
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16 (auto: bf16/fp16 on CUDA)
    lora: bool = False
    lora_rank: int = 8
    seed: int = 0
    show_progress: bool | None = None


@dataclass(slots=True)
class _Model:
    """The model with its tokenizer and image processor, as one loaded checkpoint."""

    model: Any
    tokenizer: Any
    processor: Any
    sigmoid: bool  # SigLIP family: sigmoid loss and max-length text padding
    max_length: int
    forward_params: set[str] = field(default_factory=set)


# -- pairs ---------------------------------------------------------------------------------
def read_pairs(path: str | Path) -> list[Pair]:
    """Pairs from a JSONL file; a line that is not ``{"image": ..., "text": ...}`` is a
    one-line error naming the file and line."""
    src = Path(path).expanduser()
    if not src.is_file():
        raise ConfigError(f"pairs file {str(path)!r} not found")
    pairs = []
    for number, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{str(path)!r} line {number}: not JSON ({exc.msg})") from None
        if not (isinstance(row, dict) and isinstance(row.get("image"), str)
                and isinstance(row.get("text"), str) and row["text"].strip()):
            raise ConfigError(f"{str(path)!r} line {number}: expected "
                              f'{{"image": "path or URL", "text": "..."}}')
        image = row["image"]
        if "://" not in image and not Path(image).expanduser().is_absolute():
            image = str(src.parent / image)
        pairs.append(Pair(image, " ".join(row["text"].split())))
    return pairs


def index_pairs(index: Index) -> list[Pair]:
    """Pairs from an index's own items: figure + caption, picture + alt text (else its OCR
    text), slide render + the slide's title. Items without a stored image are skipped."""
    items = index.store.get([i for r in index.documents() for i in r.item_ids])
    titles = {(it.doc_id, it.page): str(it.metadata["slide_title"]) for it in items
              if it.metadata.get("slide_title")}
    pairs = []
    for it in items:
        path = index.media_path(it)
        if path is None or not path.exists() or it.modality not in ("image", "page"):
            continue
        meta = it.metadata
        if it.modality == "image":
            text = meta.get("caption") or meta.get("alt_text") or meta.get("ocr_text") or ""
        else:
            text = titles.get((it.doc_id, it.page), "")
        text = " ".join(str(text).split())
        if text:
            pairs.append(Pair(str(path), text))
    return pairs


def split_pairs(pairs: Sequence[Pair], holdout: float, seed: int) -> tuple[list[Pair],
                                                                          list[Pair]]:
    """(train, held out): a seeded shuffle, at least two pairs on each side."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_out = min(max(2, round(len(pairs) * holdout)), len(pairs) - 2) if holdout > 0 else 0
    held = [pairs[i] for i in order[:n_out]]
    return [pairs[i] for i in order[n_out:]], held


def _load_image(ref: str | Image.Image, settings: Settings) -> Image.Image:
    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    try:
        if ref.startswith(("http://", "https://")):
            from ..ingest.fetch import fetch_url

            with Image.open(io.BytesIO(fetch_url(ref, settings.ingest).data)) as img:
                return img.convert("RGB")
        path = ref[len("file://"):] if ref.startswith("file://") else ref
        with Image.open(Path(path).expanduser()) as img:
            return img.convert("RGB")
    except Exception as exc:  # one line, naming the image
        raise ConfigError(f"cannot read pair image {ref!r}: "
                          f"{type(exc).__name__}: {str(exc)[:200]}") from None


# -- model ---------------------------------------------------------------------------------
def load_model(model: str, threads: int = 0) -> _Model:
    """Load a CLIP/SigLIP checkpoint for training in float32 (a half-precision
    checkpoint would be updated in half precision otherwise)."""
    import inspect

    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from ..encode._util import first_line, model_source

    source = model_source(model, threads, name="clip tuner", kind="vision model",
                          needs="a CLIP/SigLIP hub id or local path")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        processor = AutoImageProcessor.from_pretrained(source, backend="pil")
        net = AutoModel.from_pretrained(source, dtype=torch.float32)
    except Exception as exc:
        raise ConfigError(f"cannot load vision model {model!r} (hub id or local path): "
                          f"{first_line(exc)}") from None
    if not (hasattr(net, "get_text_features") and hasattr(net, "get_image_features")):
        raise ConfigError(f"model {model!r} ({type(net).__name__}) is not a dual text/image "
                          f"encoder (no get_text_features/get_image_features)")
    cfg = net.config
    sigmoid = str(getattr(cfg, "model_type", "")).startswith("siglip")
    declared = [getattr(getattr(cfg, "text_config", None), "max_position_embeddings", None),
                getattr(tokenizer, "model_max_length", None)]
    limits = [int(x) for x in declared if isinstance(x, int) and 0 < x < 1_000_000]
    return _Model(net, tokenizer, processor, sigmoid, min(limits) if limits else 77,
                  set(inspect.signature(net.forward).parameters))


def _text_inputs(m: _Model, texts: Sequence[str]) -> dict[str, Any]:
    enc = m.tokenizer(list(texts), padding="max_length" if m.sigmoid else "longest",
                      truncation=True, max_length=m.max_length, return_tensors="pt")
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")
            and k in m.forward_params}


def _image_inputs(m: _Model, images: Sequence[Image.Image]) -> dict[str, Any]:
    enc = m.processor(images=list(images), return_tensors="pt")
    return {k: v for k, v in enc.items() if k in m.forward_params}


def pair_loss(logits_per_text: Any, sigmoid: bool, logit_bias: Any = None) -> Any:
    """The contrastive loss over a batch's text×image logits (diagonal = matching pairs).

    CLIP (Radford et al. 2021, eq. in fig. 3): the mean of the text→image and image→text
    cross-entropies with the matching pair as the class. SigLIP (Zhai et al. 2023, alg. 1):
    ``-Σ_j log σ(z_ij · (t·x_i·y_j + b))`` per text, ``z = 1`` on the diagonal and ``-1``
    elsewhere, averaged over texts; ``logits_per_text`` already holds ``t·x·y + b``.
    """
    import torch
    import torch.nn.functional as F

    n = logits_per_text.shape[0]
    if sigmoid:
        labels = 2 * torch.eye(n, device=logits_per_text.device) - 1
        return -F.logsigmoid(labels * logits_per_text).sum(dim=-1).mean()
    target = torch.arange(n, device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, target)
            + F.cross_entropy(logits_per_text.T, target)) / 2


def _embed(m: _Model, pairs: Sequence[Pair], images: Sequence[Image.Image], device: Any,
           batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised image and text vectors of ``pairs`` with the current weights."""
    import torch

    from ..encode.clip import _pooled

    net = m.model
    was_training = net.training
    net.eval()
    img_out, txt_out = [], []
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            pix = _image_inputs(m, images[i:i + batch])
            img_out.append(_pooled(net.get_image_features(
                **{k: v.to(device) for k, v in pix.items()})).float().cpu())
            tok = _text_inputs(m, [p.text for p in pairs[i:i + batch]])
            txt_out.append(_pooled(net.get_text_features(
                **{k: v.to(device) for k, v in tok.items()})).float().cpu())
    net.train(was_training)
    img, txt = torch.cat(img_out).numpy(), torch.cat(txt_out).numpy()
    img /= np.linalg.norm(img, axis=1, keepdims=True) + 1e-12
    txt /= np.linalg.norm(txt, axis=1, keepdims=True) + 1e-12
    return img, txt


def recall_at_1(img: np.ndarray, txt: np.ndarray, texts: Sequence[str]) -> dict[str, float]:
    """Held-out retrieval with distinct texts as the candidates (several images may share
    one text): image→text is right when the image's own text ranks first among the
    distinct texts; text→image when the first image is one of that text's images.
    ``chance`` is image→text recall of a random ranking (1 / distinct texts)."""
    distinct = sorted(set(texts))
    row = {t: i for i, t in enumerate(texts)}  # one vector per distinct text
    tvec = txt[[row[t] for t in distinct]]
    truth = np.array([distinct.index(t) for t in texts])
    sims = img @ tvec.T
    i2t = float(np.mean(sims.argmax(axis=1) == truth))
    t2i = float(np.mean([truth[sims[:, j].argmax()] == j for j in range(len(distinct))]))
    return {"image_to_text": i2t, "text_to_image": t2i, "chance": 1.0 / len(distinct)}


def mine_hard_negatives(img: np.ndarray, txt: np.ndarray, texts: Sequence[str],
                        k: int) -> list[list[int]]:
    """For each pair, the ``k`` pairs whose text the model finds closest to its image,
    excluding pairs with the same text (those are positives, not negatives)."""
    sims = img @ txt.T
    same = np.array([[a == b for b in texts] for a in texts]) if len(texts) <= 4096 else None
    out = []
    for i in range(len(texts)):
        row = sims[i].copy()
        if same is not None:
            row[same[i]] = -np.inf
        else:
            row[[j for j, t in enumerate(texts) if t == texts[i]]] = -np.inf
        order = np.argsort(-row)
        out.append([int(j) for j in order[:k] if np.isfinite(row[j])])
    return out


def build_batch(n: int, size: int, negatives: Sequence[Sequence[int]], texts: Sequence[str],
                hard_share: float, rng: random.Random) -> list[int]:
    """Indices of one batch: random anchors, each followed by its hardest negatives while
    there is room, then random fill; every text at most once in the batch."""
    size = min(size, len(set(texts)))
    anchors_wanted = max(1, round(size * (1 - hard_share)))
    chosen: list[int] = []
    used: set[str] = set()

    def take(i: int) -> None:
        if len(chosen) < size and texts[i] not in used:
            chosen.append(i)
            used.add(texts[i])

    order = list(range(n))
    rng.shuffle(order)
    per_anchor = math.ceil((size - anchors_wanted) / anchors_wanted) if negatives else 0
    for i in order[:anchors_wanted]:
        take(i)
        for j in (negatives[i][:per_anchor] if negatives else ()):
            take(j)
    for i in order:
        if len(chosen) >= size:
            break
        take(i)
    return chosen


# -- run -----------------------------------------------------------------------------------
def _accelerator(options: ClipTuneOptions, device: str) -> Any:
    """An ``accelerate.Accelerator`` (multi-GPU under ``accelerate launch``, mixed
    precision on GPUs), or None when accelerate is not installed."""
    try:
        from accelerate import Accelerator
    except ImportError:
        return None
    import torch

    mp = options.mixed_precision
    on_cpu = device == "cpu" or not torch.cuda.is_available()
    if mp == "auto":
        mp = "no" if on_cpu else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    return Accelerator(cpu=on_cpu, mixed_precision=mp)


def _with_lora(m: _Model, options: ClipTuneOptions) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise MissingDependencyError("CLIP LoRA tuning (peft)", "tune") from None
    names = {n.rsplit(".", 1)[-1] for n, _ in m.model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names]
    wrapped = get_peft_model(m.model, LoraConfig(r=options.lora_rank,
                                                 lora_alpha=2 * options.lora_rank,
                                                 target_modules=targets, lora_dropout=0.0))
    for name, param in wrapped.named_parameters():  # the temperature (and bias) learn too
        if name.endswith(("logit_scale", "logit_bias")):
            param.requires_grad_(True)
    return wrapped


def _param_groups(net: Any, opts: ClipTuneOptions) -> list[dict[str, Any]]:
    """The temperature and SigLIP's bias in a group of their own, without weight decay
    (as open_clip trains them) and at ``logit_lr``: a scalar moves about one learning rate
    per Adam step, and SigLIP's bias starts at -10, set for 32k-pair batches; small
    batches need it near -log(batch), which a fine-tuning rate would take thousands of
    steps to reach."""
    scalars: list[Any] = []
    weights: list[Any] = []
    for name, param in net.named_parameters():
        if param.requires_grad:
            (scalars if name.endswith(("logit_scale", "logit_bias")) else weights).append(param)
    groups = [{"params": weights, "lr": opts.lr, "weight_decay": opts.weight_decay}]
    if scalars:
        lr = opts.lr if opts.logit_lr is None else opts.logit_lr
        groups.append({"params": scalars, "lr": lr, "weight_decay": 0.0})
    return groups


def options_from(settings: Settings) -> ClipTuneOptions:
    """The run's options from the ``tune.clip_*`` settings (TOML, ``MMRAG_TUNE__*``)."""
    t = settings.tune
    return ClipTuneOptions(out=t.clip_out, steps=t.clip_steps, batch_size=t.clip_batch_size,
                           lr=t.clip_learning_rate, lora=t.clip_lora, seed=t.seed,
                           show_progress=settings.show_progress)


def _step_loss(net: Any, m: _Model, inputs: dict[str, Any]) -> Any:
    out = net(**inputs, return_loss=True)
    loss = getattr(out, "loss", None)
    if loss is None:  # a dual encoder whose forward computes no loss
        bias = getattr(net, "logit_bias", None)
        loss = pair_loss(out.logits_per_text, m.sigmoid, bias)
    return loss


def tune_clip(index: Index | None, pairs_path: str | None, from_index: bool, minutes: float,
              settings: Settings | None = None, options: ClipTuneOptions | None = None,
              ) -> dict[str, Any]:
    """Fine-tune the index's CLIP/SigLIP model on (image, text) pairs for at most
    ``minutes`` (and ``options.steps`` when set) and save it.

    Returns the report: steps, the loss after each step, held-out recall@1 before and
    after, and ``checkpoint`` (set ``encode.vision_model`` to it for a new index).
    """
    import torch

    settings = settings or (index.settings if index is not None else Settings())
    opts = options or options_from(settings)
    base = opts.model or settings.encode.vision_model
    if not base:
        raise ConfigError("clip tuning needs a CLIP/SigLIP model: an index with the `clip` "
                          "profile (encode.vision_model) or a model given explicitly")
    if bool(pairs_path) == bool(from_index):
        raise ConfigError("clip tuning needs pairs: give a pairs JSONL file or use the "
                          "index's own figures/captions (from_index), not both")
    if from_index and index is None:
        raise ConfigError("from_index needs an index")
    pairs = read_pairs(pairs_path) if pairs_path else index_pairs(index)  # type: ignore[arg-type]
    if len({p.text for p in pairs}) < MIN_PAIRS:
        where = pairs_path or "the index (figures with captions, pictures with alt/OCR " \
                              "text, slides with titles)"
        raise ConfigError(f"clip tuning needs at least {MIN_PAIRS} pairs with distinct "
                          f"texts; found {len({p.text for p in pairs})} in {where}")
    out = Path(opts.out).expanduser() if opts.out else (
        (index.root if index is not None else Path.cwd()) / "tuned" / "clip")

    random.seed(opts.seed)
    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    train, held = split_pairs(pairs, opts.holdout, opts.seed)
    texts = [p.text for p in train]

    threads_before = torch.get_num_threads()
    m = load_model(base, settings.encode.threads)
    # decoded once and kept, box-reduced while the short side stays >= 2x the model input
    # (a folder of 12-megapixel photos would not fit in memory otherwise)
    side = input_side(m.processor)
    images = [shrink(_load_image(p.image, settings), side) for p in train]
    held_images = [shrink(_load_image(p.image, settings), side) for p in held]
    accel = _accelerator(opts, settings.encode.device)
    device = accel.device if accel is not None else torch.device(settings.encode.device)
    net = _with_lora(m, opts) if opts.lora else m.model
    net.to(device).train()
    optim = torch.optim.AdamW(_param_groups(net, opts))
    total = opts.steps or None
    warm = max(1, int((total or 0) * opts.warmup)) if total else 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    if accel is not None:
        net, optim, sched = accel.prepare(net, optim, sched)
        rng = random.Random(opts.seed + accel.process_index)  # each process its own batches
    else:
        rng = random.Random(opts.seed)

    report: dict[str, Any] = {"model": base, "pairs": len(pairs), "train_pairs": len(train),
                              "heldout_pairs": len(held), "kind": "siglip" if m.sigmoid
                              else "clip", "lora": opts.lora, "device": str(device),
                              "mixed_precision": (accel.mixed_precision if accel is not None
                                                  else "no")}
    if held:
        report["recall_before"] = recall_at_1(*_embed(m, held, held_images, device),
                                              [p.text for p in held])
    deadline = time.monotonic() + minutes * 60
    n_neg = max(1, round(opts.batch_size * opts.hard_negatives))
    negatives: list[list[int]] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    with Progress("tuning clip", opts.show_progress, total=total) as bar:
        step = 0
        while (not total or step < total) and time.monotonic() < deadline:
            if opts.hard_negatives > 0 and step % max(1, opts.mine_every) == 0:
                negatives = mine_hard_negatives(*_embed(m, train, images, device), texts,
                                                n_neg)
            idx = build_batch(len(train), opts.batch_size, negatives, texts,
                              opts.hard_negatives, rng)
            inputs = {**_text_inputs(m, [texts[i] for i in idx]),
                      **_image_inputs(m, [images[i] for i in idx])}
            inputs = {k: v.to(device) for k, v in inputs.items()}
            if accel is not None:
                with accel.autocast():
                    loss = _step_loss(net, m, inputs)
                accel.backward(loss)
            else:
                loss = _step_loss(net, m, inputs)
                loss.backward()
            optim.step()
            sched.step()
            optim.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            bar.advance(f"loss {losses[-1]:.3f}")
    seconds = time.perf_counter() - t0
    if accel is not None:
        net = accel.unwrap_model(net)
    if opts.lora:
        net = net.merge_and_unload()
    m.model = net
    report.update(steps=len(losses), seconds=round(seconds, 2), losses=losses,
                  steps_per_s=round(len(losses) / seconds, 3) if seconds else 0.0)
    if held:
        report["recall_after"] = recall_at_1(*_embed(m, held, held_images, device),
                                             [p.text for p in held])
    if accel is None or accel.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        net.save_pretrained(out)
        m.tokenizer.save_pretrained(out)
        m.processor.save_pretrained(out)
    report["checkpoint"] = str(out)
    # the index keeps serving its model: vectors of two models cannot share a column
    report["switched"] = False
    report["reason"] = (f"tuned checkpoint saved to {out}; index with it through "
                        f"encode.vision_model = {str(out)!r} (a new index folder)")
    torch.set_num_threads(threads_before)  # encode.threads applies to this run only
    return report
