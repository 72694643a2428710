"""Ingest on a Ray cluster (``ingest.executor = "ray"``, ``mmrag add --executor ray``).

Why this split: loading (parsing, rendering, OCR) is CPU work that spreads over any number
of machines; embedding wants a model held in memory (and a GPU when there is one), so it
runs in a pool of long-lived actors; the commit stays in this process, so the catalog (the
commit log, see catalog.py) has one writer and is still written last::

    driver   resolve sources, plan each (skip / alias / replace, against the catalog)
    Ray Data from_items(documents) → map_batches(load_rows)  CPU tasks, retried if killed
                                   → map_batches(Embedder)   actor pool, restarted if killed
    driver   write media, store rows, catalog rows (``Ingestion._commit``, as the local path)

Items are made in the workers by the local path's own code (``Ingestion._load`` and
``_children`` in the tasks; ``_encode_images``, ``_encode_audio`` and ``_vectors`` in the
actors), so their ids, text and metadata are the same; text is embedded per document
instead of per commit group, so vectors are equal up to float rounding.

Sources that are files are read by the workers at the same path, so a cluster of several
machines needs them on a shared file system; URLs, bytes and base64 sources are resolved
here and shipped as bytes. Media (page renders, images) is encoded by the workers and
written here, so the index folder need not be shared with them.
"""

from __future__ import annotations

import logging
import pickle
import socket
import time
import warnings
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from ...catalog import Catalog
from ...config import Settings
from ...encode import build_encoders
from ...encode.base import Encoder
from ...encode.caption import ImageCaptioner, captioners
from ...errors import ConfigError, MmragError
from ...ingestion import (
    MAX_PENDING_ITEMS,
    Ingestion,
    _Doc,
    _done,
    _may_be_empty,
    _takes_audio,
    one_line,
    timed,
)
from ...progress import Progress
from ...store.base import Store
from ...store.multivec import MultiVectorStore
from ...timing import StageTimes, recording, stage
from ...types import AddReport, Blob, Failure, Item
from ..media import MediaStore
from ..sources import resolve

__all__ = ["ClusterError", "Embedder", "RayExecutor", "load_family", "load_rows"]

log = logging.getLogger(__name__)

_LOADERS: dict[bytes, _Loader] = {}  # per worker process: OCR engines and captioners load once


class RayExecutor:
    """Loads and embeds on Ray, commits here; see the module docstring."""

    def run(self, ingestion: Ingestion, sources: Any, metadata: dict[str, Any] | None,
            show_progress: bool | None) -> AddReport:
        ray = _ray()
        started = _connect(ray, ingestion.settings)
        try:
            return _Driver(ingestion, ray).run(sources, metadata or {}, show_progress)
        finally:
            if started:
                ray.shutdown()


class ClusterError(MmragError, RuntimeError):
    """The Ray cluster failed the run (a driver-side error, not one source's)."""


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError("ingest.executor 'ray' needs Ray: pip install 'mmrag[ray]'") from exc
    return ray


def _connect(ray: Any, settings: Settings) -> bool:
    """Join ``ingest.ray_address`` (or the cluster this process already joined, or the
    one ``RAY_ADDRESS`` names); else start a local one. True when this call started it."""
    quiet = logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR
    for name in ("ray", "ray.data"):  # our bar and report say what the user needs
        logging.getLogger(name).setLevel(quiet)
    if ray.is_initialized():
        return False
    address = settings.ingest.ray_address or None
    if address:
        _reachable(address)
    try:
        with warnings.catch_warnings():  # lancedb warns of every fork; Ray's are exec'd
            warnings.filterwarnings("ignore", "lancedb fork support")
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address or 'a new local one'!r}: "
                          f"{one_line(exc, '')}") from exc
    return True


def _reachable(address: str) -> None:
    """Fail at once on a cluster address nothing listens on: Ray itself retries for
    minutes, printing warnings, before it gives up."""
    where = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: "
                          f"{exc.strerror or exc}") from exc


class _Driver:
    """One run: plan, stream the cluster's results, commit in groups."""

    def __init__(self, ingestion: Ingestion, ray: Any):
        self.ing = ingestion
        self.ray = ray
        self.settings = ingestion.settings

    def run(self, sources: Any, metadata: dict[str, Any], show: bool | None) -> AddReport:
        report = AddReport()
        t0 = time.perf_counter()
        times = StageTimes()
        shown = self.settings.show_progress if show is None else show
        with recording(times), self.ing._media_in_use():
            planned, aliases = self._plan(sources, report)
            with Progress("indexing on ray", shown, total=len(planned)) as bar:
                self._ingest(planned, metadata, report, times, bar)
            with self.ing._writing():
                self.ing._commit_aliases(aliases)
            if report.added or report.replaced:  # a bulk add: always folded in at once
                self.ing._optimize()
        report.seconds = time.perf_counter() - t0
        report.timings = times.as_dict()
        report.privacy = dict(sorted(report.privacy.items()))
        return report

    def _plan(self, sources: Any, report: AddReport
              ) -> tuple[dict[int, _Doc], list[tuple[Blob, str]]]:
        """Skip, alias or plan each source here, against the catalog: only new or
        changed documents travel to the cluster."""
        planned: dict[int, _Doc] = {}
        seen: set[str] = set()
        aliases: list[tuple[Blob, str]] = []
        for entry in timed(resolve(sources, self.settings.ingest), "read"):
            if isinstance(entry, Failure):
                report.failed.append(entry)
                continue
            try:
                doc = self.ing._plan(entry, report, seen, aliases)
            except Exception as exc:  # a file that vanished after it was listed
                report.failed.append(Failure(entry.uri, one_line(exc, entry.uri)))
                entry.cleanup()
                continue
            if doc is None:
                entry.cleanup()
                continue
            seen.add(doc.doc_id)
            planned[len(planned)] = doc
        return planned, aliases

    def _ingest(self, planned: dict[int, _Doc], metadata: dict[str, Any],
                report: AddReport, times: StageTimes, bar: Progress) -> None:
        if not planned:
            return
        pending: list[_Doc] = []
        docs = pages = 0
        t0 = time.perf_counter()
        committer = _Committer.of(self.ing)
        results = self._results(planned, metadata)
        while True:
            try:
                key, family = next(results)
            except StopIteration:
                break
            except MmragError:
                raise
            except Exception as exc:  # the cluster failed (lost, out of retries): keep what
                committer._commit(pending, report)  # is complete, say how to go on
                raise ClusterError(
                    f"the Ray run stopped ({type(exc).__name__}: {one_line(exc, '')}); "
                    f"{len(report.added) + len(report.replaced)} source(s) were added; "
                    f"run the add again to add the rest") from exc
            root = planned.pop(key)
            for name, sec in family.get("timings", {}).items():
                times.add(name, sec)
            for name, n in family.get("privacy", {}).items():
                report.privacy[name] = report.privacy.get(name, 0) + n
            report.failed.extend(Failure(s, r) for s, r in family.get("failed", []))
            if "error" in family:
                report.failed.append(Failure(root.blob.uri, family["error"]))
                root.blob.cleanup()
                bar.advance(root.blob.name, failed=True)
                continue
            made = [self._unpack(root, d) for d in family["docs"]]
            pending.extend(made)
            docs += 1
            pages += len({(it.doc_id, it.page) for d in made for it in d.items})
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.advance(f"{docs / elapsed:.2f} docs/s, {pages / elapsed:.2f} pages/s")
            if (len(pending) >= self.settings.ingest.batch_size
                    or sum(len(d.items) for d in pending) >= MAX_PENDING_ITEMS):
                committer._commit(pending, report)
                pending = []
        committer._commit(pending, report)
        for doc in planned.values():  # none should be left; never drop one silently
            report.failed.append(Failure(doc.blob.uri, "the Ray cluster returned no result"))

    def _results(self, planned: dict[int, _Doc], metadata: dict[str, Any]
                 ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(key, loaded and embedded family) as the cluster finishes them, any order."""
        ray = self.ray
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours shows documents and pages per second
        encoders = self.ing.encoders
        image_spaces = [n for n, e in encoders.items() if e.supports_images]
        audio_spaces = [n for n, e in encoders.items() if _takes_audio(e)]
        workers = self.settings.ingest.ray_workers or max(
            1, int(ray.cluster_resources().get("CPU", 2)) // 2)
        gpus = self.settings.ingest.ray_gpus
        if gpus < 0:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        rows = [{"key": k, "doc_id": d.doc_id, "blob": pickle.dumps(_pack_blob(d.blob))}
                for k, d in planned.items()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Ray's deprecation notices are not the user's
            ds = ray.data.from_items(rows, override_num_blocks=len(rows))
            ds = ds.map_batches(
                load_rows, batch_size=1, num_cpus=1,
                compute=ray.data.TaskPoolStrategy(size=workers),
                fn_kwargs={"settings": self.settings, "image_spaces": image_spaces,
                           "audio_spaces": audio_spaces, "metadata": metadata},
                ray_remote_args_fn=_task_retries)
            ds = ds.map_batches(
                Embedder, batch_size=1, num_cpus=0 if gpus else 1, num_gpus=gpus or None,
                compute=ray.data.ActorPoolStrategy(size=workers),
                fn_constructor_kwargs={"settings": self.settings, "spaces": list(encoders),
                                       "multivec": list(self.ing.multivec),
                                       "device": "cuda" if gpus else ""})
            for row in ds.iter_rows():
                yield int(row["key"]), pickle.loads(row["family"])

    def _unpack(self, root: _Doc, packed: dict[str, Any]) -> _Doc:
        """A loaded document as the commit expects it; its media written here."""
        if packed["blob"] is None:
            doc = root
        else:
            doc = _Doc(blob=_unpack_blob(packed["blob"]), doc_id=packed["doc_id"],
                       parent=packed["parent"], depth=packed["depth"])
        doc.items = packed["items"]
        doc.vectors = packed["vectors"]
        doc.multi = packed["multi"]
        for idx, (data, ext) in packed["media"].items():
            with stage("media"):
                doc.media[idx] = _done(self.ing.media.put_bytes(data, ext))
        return doc


class _Committer(Ingestion):
    """The local commit path with vectors that came with the documents (made by the
    actors) instead of text vectors computed at commit."""

    @classmethod
    def of(cls, ing: Ingestion) -> _Committer:
        return cls(ing.settings, ing.catalog, ing.media, ing.store, ing.encoders,
                   ing.multivec, None, write_lock=ing._write_lock, media_lock=ing._media_lock)

    def _vectors(self, docs: list[_Doc], items: list[Item]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for space, enc in self.encoders.items():
            mat = np.full((len(items), enc.dim), np.nan, dtype=np.float32)
            row = 0
            for d in docs:
                for idx, vec in d.vectors.get(space, {}).items():
                    mat[row + idx] = vec
                row += len(d.items)
            out[space] = mat
        return out


def _task_retries() -> dict[str, Any]:
    """A load task whose worker died (killed, out of memory) runs again elsewhere."""
    return {"max_retries": 3}


# -- on the workers ---------------------------------------------------------------------

def load_rows(batch: dict[str, np.ndarray], *, settings: Settings, image_spaces: list[str],
              audio_spaces: list[str], metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    """Ray Data task: each row's document (and its attachments) loaded into items."""
    out = []
    for packed, doc_id in zip(batch["blob"], batch["doc_id"], strict=True):
        blob = _unpack_blob(pickle.loads(bytes(packed)))
        out.append(pickle.dumps(load_family(blob, str(doc_id), settings, image_spaces,
                                            audio_spaces, metadata)))
    return {"key": batch["key"], "family": np.array(out, dtype=object)}


def load_family(blob: Blob, doc_id: str, settings: Settings, image_spaces: list[str],
                audio_spaces: list[str], metadata: dict[str, Any]) -> dict[str, Any]:
    """One source's document and attachments as plain data; errors as the local path
    words them (a failed source, never a failed run)."""
    key = pickle.dumps((settings, image_spaces, audio_spaces))
    loader = _LOADERS.get(key)
    if loader is None:
        loader = _LOADERS[key] = _Loader(settings, image_spaces, audio_spaces)
    return loader.family(blob, doc_id, metadata)


class _Loader(Ingestion):
    """The local path's loading with embedding and media writing deferred: images and
    clips to embed are kept for the actors, media is encoded for the driver to write."""

    def __init__(self, settings: Settings, image_spaces: list[str], audio_spaces: list[str]):
        if getattr(settings.ingest, "auto_tags", None):  # scored on image vectors: the
            settings = settings.model_copy(update={  # actors label (Embedder)
                "ingest": settings.ingest.model_copy(update={"auto_tags": []})})
        super().__init__(settings, cast(Catalog, None), MediaStore("/nonexistent",
                                                                   settings.media),
                         cast(Store, None), {}, captioner=_captioner(settings))
        # only their names and truthiness are read by _load; the actors hold the models
        self._image_encoders = cast(dict[str, Encoder], dict.fromkeys(image_spaces))
        self._audio_encoders = cast(dict[str, Encoder], dict.fromkeys(audio_spaces))
        self._ingest = (settings.ingest.model_copy(update={"audio_clips": True})
                        if audio_spaces else settings.ingest)
        self._images: dict[str, list[tuple[int, Any]]] = {}
        self._sounds: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._media: dict[str, dict[int, tuple[bytes, str]]] = {}

    def family(self, blob: Blob, doc_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        times = StageTimes()
        report = AddReport()
        self.privacy = {}
        doc = _Doc(blob=blob, doc_id=doc_id)
        with recording(times):
            try:
                self._load(doc, metadata)
                if not doc.items and not _may_be_empty(blob):
                    return {"error": "no content found", "timings": times.as_dict()}
                family = [doc, *self._children(doc, metadata, report)]
            except MmragError as exc:
                return {"error": one_line(exc, blob.uri), "timings": times.as_dict()}
            except Exception as exc:  # a loader bug: this source fails, not the run
                log.debug("loader crashed on %s", blob.uri, exc_info=True)
                return {"error": f"{type(exc).__name__}: {one_line(exc, blob.uri)}",
                        "timings": times.as_dict()}
        docs = [self._pack(d, root=d is doc) for d in family]
        self._images, self._sounds, self._media = {}, {}, {}
        return {"docs": docs, "failed": [(f.source, f.reason) for f in report.failed],
                "privacy": self.privacy, "timings": times.as_dict()}

    def _pack(self, d: _Doc, root: bool) -> dict[str, Any]:
        return {"doc_id": d.doc_id, "parent": d.parent, "depth": d.depth, "items": d.items,
                "blob": None if root else _pack_blob(d.blob),
                "media": self._media.get(d.doc_id, {}),
                "images": self._images.get(d.doc_id, []),
                "sounds": self._sounds.get(d.doc_id, []), "vectors": {}, "multi": {}}

    def _encode_images(self, doc: _Doc, batch: list[tuple[int, Any]],
                       encoders: dict[str, Encoder]) -> None:
        self._images.setdefault(doc.doc_id, []).extend(batch)

    def _encode_audio(self, doc: _Doc, batch: list[tuple[int, np.ndarray]],
                      encoders: dict[str, Encoder]) -> None:
        self._sounds.setdefault(doc.doc_id, []).extend(batch)

    def _write_media(self, doc: _Doc, idx: int, piece: Any) -> None:
        if not self.settings.privacy.store_media:
            return
        with stage("media"):
            found = self.media.media_of(piece)
        if found is not None:
            self._media.setdefault(doc.doc_id, {})[idx] = found


def _captioner(settings: Settings) -> ImageCaptioner | None:
    """The captioner Index.captioner builds, built once per worker process."""
    enc = settings.encode
    if not enc.caption_model:
        return None
    return captioners.create("transformers", enc.caption_model, device=enc.device,
                             threads=enc.threads, prompt=enc.caption_prompt,
                             max_new_tokens=enc.caption_max_new_tokens)


class Embedder:
    """Ray Data actor: holds the index's encoders and embeds whole documents through the
    local path's own methods (``_encode_images``, ``_encode_audio`` and ``_vectors``), so
    batching, late-interaction matrices, labels and which items get text vectors in which
    space stay what a local add does."""

    def __init__(self, settings: Settings, spaces: list[str], multivec: list[str],
                 device: str = ""):
        if device:
            settings = settings.model_copy(update={"encode": settings.encode.model_copy(
                update={"device": device})})
        encoders = {n: e for n, e in build_encoders(settings).items() if n in spaces}
        # only membership is read: the token matrices travel back in _Doc.multi
        late = cast(dict[str, MultiVectorStore], dict.fromkeys(multivec))
        self.ing = Ingestion(settings, cast(Catalog, None), MediaStore("/nonexistent",
                                                                       settings.media),
                             cast(Store, None), encoders, late)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for packed in batch["family"]:
            family = pickle.loads(bytes(packed))
            times = StageTimes()
            with recording(times):
                try:
                    for d in family.get("docs", []):
                        self._embed(d)
                except Exception as exc:  # noqa: BLE001 - one source fails, not the run
                    log.debug("embedding failed", exc_info=True)
                    family = {**family, "error": f"could not embed: {one_line(exc, '')}"}
            for name, sec in times.as_dict().items():
                family.setdefault("timings", {})
                family["timings"][name] = family["timings"].get(name, 0.0) + sec
            out.append(pickle.dumps(family))
        return {"key": batch["key"], "family": np.array(out, dtype=object)}

    def _embed(self, d: dict[str, Any]) -> None:
        ing, size = self.ing, self.ing.settings.encode.batch_size
        doc = _Doc(blob=_NO_BYTES, doc_id=d["doc_id"], items=d["items"])
        images, sounds = d.pop("images"), d.pop("sounds")
        if ing._image_encoders:
            for part in _parts(images, size):  # the batches _load would have made
                ing._encode_images(doc, part, ing._image_encoders)
        if ing._audio_encoders:
            for part in _parts(sounds, size):
                ing._encode_audio(doc, part, ing._audio_encoders)
        mats = ing._vectors([doc], doc.items)
        d["items"], d["multi"] = doc.items, doc.multi  # labels may have joined the items
        d["vectors"] = {space: {i: row for i, row in enumerate(mat)
                                if not np.isnan(row).all()} for space, mat in mats.items()}


_NO_BYTES = Blob("ray:embedding", b"")  # _Doc needs a blob; embedding never reads it


def _parts(seq: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


# -- shipping sources --------------------------------------------------------------------

def _pack_blob(blob: Blob) -> dict[str, Any]:
    """A Blob as plain data: a file by its path (workers read it there), anything held in
    memory (a download, bytes, base64, an attachment) by its bytes."""
    state: dict[str, Any] = {"uri": blob.uri, "name": blob.name, "mime": blob.mime,
                             "metadata": blob.metadata, "size": blob.size}
    if blob.path is not None:
        state["path"] = blob.path
    else:
        state["data"] = blob.data
    return state


def _unpack_blob(state: dict[str, Any]) -> Blob:
    return Blob(state["uri"], state.get("data"), state["name"], state["mime"],
                state["metadata"], state.get("path"))
