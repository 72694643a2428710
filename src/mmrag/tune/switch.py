"""`mmrag tune` end to end for the text space: pairs → negatives → training → re-embed
into a new column → atomic switch; and `--rollback`.

Why this order is safe:

* The tuned model embeds into a new column (``text_t<n>``) while the manifest still
  names the old one, so every query meanwhile is answered by the old vectors.
* The switch is one manifest write (temp file, then ``os.replace``), under the index's
  write lock after a catch-up pass that embeds rows added during the re-embed. A crash
  before it leaves the old model serving; the half-filled column is dropped by the next
  tune.
* The previous column is kept, so ``--rollback`` is another manifest write (plus
  embedding rows added since the switch with the previous model). The column before
  that is dropped when a new tune switches.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..progress import Progress
from ..store._common import has_col
from .negatives import mine_negatives
from .pairs import Pair, Passage, build_pairs, split_pairs
from .text import train_text_model

if TYPE_CHECKING:
    from ..config import TuneSettings
    from ..encode.base import Encoder
    from ..index import Index

log = logging.getLogger(__name__)

__all__ = ["active_entry", "passages_of", "rollback", "tune_text", "update_manifest"]

SPACE = "text"
TUNED_DIR = "tuned"
EMBED_BATCH = 256        # rows per re-embed commit: one Lance version each


def update_manifest(index: Index, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to the manifest and replace the file atomically."""
    from ..index import MANIFEST

    manifest = json.loads((index.root / MANIFEST).read_text())
    change(manifest)
    tmp = index.root / (MANIFEST + ".tune.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(index.root / MANIFEST)
    return manifest


def active_entry(manifest: dict[str, Any], space: str = SPACE) -> dict[str, str]:
    """``{"column", "model"}`` the space is served from (the profile's own by default)."""
    entry = manifest.get("active", {}).get(space) or {}
    return {"column": entry.get("column") or space, "model": entry.get("model") or ""}


def _store_of(index: Index) -> Any:
    store = index.store
    if not all(hasattr(store, m) for m in ("rows", "add_space", "set_vectors", "drop_spaces")):
        raise ConfigError(f"tune is supported on the LanceDB store; this index uses "
                          f"{index.settings.store.backend!r}")
    return store


def _reset(index: Index) -> None:
    """Forget the encoders an open Index built, so it reads the new manifest."""
    index._encoders = None


def passages_of(index: Index, column: str) -> list[Passage]:
    """Every stored item that has a vector in ``column``: what the text model embeds."""
    tbl = _store_of(index).rows(["id", "doc_id", "page", "text", "section", "modality",
                                 "metadata"], where=f"{has_col(column)} = true")
    out = []
    for r in tbl.to_pylist():
        try:
            meta = json.loads(r["metadata"] or "{}")
        except ValueError:
            meta = {}
        out.append(Passage(r["id"], r["doc_id"], int(r["page"] or 1), r["text"] or "",
                           r["section"] or "", r["modality"], meta))
    return [p for p in out if p.text.strip()]


def _text_encoder(index: Index, column: str) -> Encoder:
    enc = index.encoders.get(column)
    if enc is None or getattr(enc, "space", None) != column:
        raise ConfigError(f"index {str(index.root)!r} has no text encoder for {column!r}")
    return enc


def _model_source(index: Index) -> str:
    """The folder training starts from: the profile's text model (tuning always starts
    from it, so tunes do not drift one on top of another)."""
    from ..encode._util import resolve_model
    from ..encode.text import bundled_model_path

    text_model = index.settings.encode.text_model
    return resolve_model(text_model, "text model") if text_model else bundled_model_path()


def _fill_column(index: Index, encoder: Encoder, source: str, target: str,
                 show: bool | None, label: str) -> int:
    """Embed every row with a ``source`` vector but none in ``target``; returns how many."""
    store = _store_of(index)
    tbl = store.rows(["id", "text"], where=f"{has_col(source)} = true AND "
                                           f"{has_col(target)} IS NOT TRUE")
    ids, texts = tbl["id"].to_pylist(), [t or "" for t in tbl["text"].to_pylist()]
    with Progress(label, show, total=len(ids)) as bar:
        for i in range(0, len(ids), EMBED_BATCH):
            vecs = encoder.encode_text(texts[i:i + EMBED_BATCH])
            store.set_vectors(target, ids[i:i + EMBED_BATCH], vecs)
            for _ in range(len(vecs)):
                bar.advance("")
    return len(ids)


def _next_column(index: Index, manifest: dict[str, Any]) -> tuple[str, str]:
    used = {*manifest.get("spaces", {}), *_store_of(index).spaces}
    n = 1
    while f"{SPACE}_t{n}" in used or (index.root / TUNED_DIR / f"{SPACE}-{n}").exists():
        n += 1
    return f"{SPACE}_t{n}", f"{TUNED_DIR}/{SPACE}-{n}"


def tune_text(index: Index, minutes: float | None = None, show: bool | None = None
              ) -> dict[str, Any]:
    """Tune the text encoder on the index's own content and switch to it if it beats the
    serving model on held-out pseudo-queries. Returns the report (also saved as
    ``tuned/text-<n>/report.json``, or ``tuned/last-report.json`` when not switched)."""
    t0 = time.monotonic()
    s = index.settings.tune
    if index.settings.encode.text_encoder != "sentence-transformers":
        raise ConfigError(f"tune trains sentence-transformers text models, not "
                          f"{index.settings.encode.text_encoder!r}")
    store = _store_of(index)
    manifest = index._read_manifest()
    with index.lock.hold():
        _drop_leftovers(index, manifest)
    current = active_entry(manifest)
    serving = _text_encoder(index, current["column"])
    passages = passages_of(index, current["column"])
    ask = _generator_ask(index) if s.generator_queries else None
    pairs = build_pairs(passages, seed=s.seed, max_pairs=s.max_pairs, ask=ask,
                        generator_queries=s.generator_queries)
    if len(pairs) < 10:
        raise ConfigError(f"index {str(index.root)!r} has too little text to tune on "
                          f"({len(pairs)} pseudo-queries from {len(passages)} passages)")
    train, heldout = split_pairs(pairs, s.holdout, s.seed)
    with Progress("mining hard negatives", show, total=len(train)) as bar:
        def mined(n: int) -> None:
            for _ in range(n):
                bar.advance("")

        mine_negatives(train, store, current["column"], serving.encode_text,
                       n=s.hard_negatives, on_batch=mined)
    column, model_rel = _next_column(index, manifest)
    out_dir = index.root / model_rel
    serving_score = None
    if current["model"]:  # a tuned model serves: training must beat it, not the base
        serving_score = _score(index.root / current["model"], heldout, passages, s)
    budget = s.minutes if minutes is None else minutes
    with Progress("training", show, total=s.max_steps) as bar:
        report = train_text_model(
            _model_source(index), train, heldout, passages, out_dir, s,
            minutes=budget - (time.monotonic() - t0) / 60, serving_score=serving_score,
            on_step=lambda step, total, note: bar.advance(note))
    result: dict[str, Any] = {"space": SPACE, "passages": len(passages),
                              "pseudo_queries": len(pairs), **report.to_dict(),
                              "switched": False, "column": current["column"]}
    if report.best_score <= report.base_score + s.min_gain or not out_dir.exists():
        result["reason"] = (f"held-out {report.metric} {report.best_score:.4f} does not "
                            f"beat the serving model's {report.base_score:.4f}")
        result["total_seconds"] = round(time.monotonic() - t0, 1)
        (index.root / TUNED_DIR).mkdir(exist_ok=True)
        (index.root / TUNED_DIR / "last-report.json").write_text(json.dumps(result, indent=2))
        return result
    tuned = _encoder(index, str(out_dir))
    store.add_space(column, tuned.dim)
    _fill_column(index, tuned, current["column"], column, show, "re-embedding")
    with index.lock.hold():
        _fill_column(index, tuned, current["column"], column, False, "catching up")
        _switch(index, SPACE, {"column": column, "model": model_rel}, current, tuned)
    result.update(switched=True, column=column, model=model_rel,
                  total_seconds=round(time.monotonic() - t0, 1))
    (out_dir / "report.json").write_text(json.dumps(result, indent=2))
    return result


def _encoder(index: Index, model: str) -> Encoder:
    """The index's text encoder class on ``model`` ("" = the profile's own model)."""
    from ..encode.base import encoders

    e = index.settings.encode
    return encoders.create(e.text_encoder, model=model or e.text_model, device=e.device,
                           batch_size=e.batch_size, threads=e.threads,
                           precision=e.precision, cache_dir=e.cache_dir)


def _drop_leftovers(index: Index, manifest: dict[str, Any]) -> None:
    """Columns and model folders of tunes that never switched (crashed or interrupted)."""
    named = {e.get("column") for part in ("active", "previous")
             for e in manifest.get(part, {}).values()}
    models = {e.get("model") for part in ("active", "previous")
              for e in manifest.get(part, {}).values()}
    store = _store_of(index)
    stale = [c for c in store.spaces if c.startswith(f"{SPACE}_t") and c not in named]
    if stale:
        store.drop_spaces(stale)
    root = index.root / TUNED_DIR
    for d in root.glob(f"{SPACE}-*") if root.exists() else ():
        if f"{TUNED_DIR}/{d.name}" not in models:
            shutil.rmtree(d, ignore_errors=True)


def _score(model_dir: Path, heldout: list[Pair], passages: list[Passage],
           s: TuneSettings) -> float:
    from sentence_transformers import SentenceTransformer

    from .text import heldout_evaluator

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.max_seq_length = s.max_seq_length
    ev = heldout_evaluator(heldout, passages, s.batch_size * 2)
    return float(ev(model)[ev.primary_metric])


def _switch(index: Index, space: str, new: dict[str, str], old: dict[str, str],
            encoder: Encoder) -> None:
    """Point ``space`` at ``new`` (one atomic manifest write), keep ``old`` for rollback
    and drop whatever older column neither names."""
    dropped: list[str] = []

    def change(m: dict[str, Any]) -> None:
        prev = m.get("previous", {}).get(space)
        keep = {new["column"], old["column"]}
        if prev and (prev.get("column") or space) not in keep:
            dropped.append(prev.get("column") or space)
        m.setdefault("active", {})[space] = new
        m.setdefault("previous", {})[space] = old
        m["spaces"] = {k: v for k, v in m.get("spaces", {}).items() if k not in dropped}
        m["spaces"][new["column"]] = int(encoder.dim)
        m.setdefault("encoders", {})[new["column"]] = {**encoder.describe(),
                                                       "model": new["model"] or "base"}
        for c in dropped:
            m["encoders"].pop(c, None)

    update_manifest(index, change)
    _reset(index)
    for column in dropped:  # after the manifest stopped naming it
        _store_of(index).drop_spaces([column])
        if column.startswith(f"{space}_t"):
            shutil.rmtree(index.root / TUNED_DIR / f"{space}-{column[len(space) + 2:]}",
                          ignore_errors=True)


def rollback(index: Index, show: bool | None = None) -> dict[str, Any]:
    """Switch the text space back to the model it used before the last switch (and
    again to undo the rollback)."""
    manifest = index._read_manifest()
    prev = manifest.get("previous", {}).get(SPACE)
    if not prev:
        raise ConfigError(f"index {str(index.root)!r} has no previous text model to roll "
                          f"back to (it was never tuned)")
    _store_of(index)
    current = active_entry(manifest)
    target = {"column": prev.get("column") or SPACE, "model": prev.get("model") or ""}
    enc = _encoder(index, str(index.root / target["model"]) if target["model"] else "")
    enc.space = target["column"]
    with index.lock.hold():
        n = _fill_column(index, enc, current["column"], target["column"], show,
                         "embedding rows added since the switch")
        _switch(index, SPACE, target, current, enc)
    return {"space": SPACE, "switched": True, "column": target["column"],
            "model": target["model"] or "base", "previous": current["column"],
            "embedded": n}


def _generator_ask(index: Index) -> Callable[[str], str] | None:
    """A prompt → reply function over the configured generator; None for extractive
    (it only copies sentences, which the cloze pairs already do)."""
    g = index.settings.generate
    if g.generator in ("", "extractive"):
        return None
    from ..generate.base import Message, Part

    gen = index._generator(None)

    def ask(prompt: str) -> str:
        try:
            return "".join(gen.stream([Message("user", [Part.of_text(prompt)])],
                                      max_tokens=64, temperature=0.7))
        except Exception as exc:  # noqa: BLE001 - a failed question costs one pair
            log.info("generator question failed: %s", exc)
            return ""

    return ask
