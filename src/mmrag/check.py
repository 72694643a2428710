"""`mmrag check`: does the catalog agree with the store, the media folder and the
token-matrix shards, and, with ``repair``, make them agree.

The catalog is the commit log (see catalog.py): a catalogued document must have every
item it lists in the store, each item's media file must exist, and nothing else may be
there. What can go wrong, and what repair does:

* ``missing`` / ``partial`` / ``duplicate`` / ``stray`` / ``missing-media``: a committed
  document is not whole (or has rows its catalog entry does not list). Repair forgets it
  (catalog rows, store rows, attachments), so adding its source again re-indexes it; the
  report names the sources to add again.
* ``orphan``: store rows (or token matrices) of no catalogued document. Repair deletes
  them.
* ``unreferenced-media``: files no item points at (a crashed or failed add, a delete
  made while an add ran). Repair deletes them.
* ``missing-shard``: token matrices whose shard file is gone: their documents are
  forgotten like a partial one.

Media is only judged unreferenced while no add is running (see locks.py): an add writes
media before it commits the rows that point at it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import DocRecord
    from .index import Index

__all__ = ["CheckReport", "Problem", "check_index", "store_rows"]

# Problems that make a committed document incomplete: repair forgets it for a re-add.
_BROKEN_DOC = frozenset({"missing", "partial", "duplicate", "stray", "missing-media",
                         "missing-shard"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One inconsistency: ``kind``, what it concerns (doc id, item id or media key) and
    a one-line explanation naming the source where there is one."""

    kind: str
    subject: str
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(slots=True)
class CheckReport:
    """What a check found and, with repair, what it did."""

    documents: int = 0
    items: int = 0
    media: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # one line per action taken
    readd: list[str] = field(default_factory=list)  # sources forgotten: add them again
    media_checked: bool = True  # False while an add was running (see module docstring)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "consistent" if self.ok else f"{len(self.problems)} problem(s)"
        if self.repaired:
            state = f"repaired {len(self.problems)} problem(s)"
        note = "" if self.media_checked else "; unreferenced media not checked (an add " \
                                             "is running)"
        return (f"{state}: {self.documents} document(s), {self.items} item(s), "
                f"{self.media} media file(s){note}")

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "documents": self.documents, "items": self.items,
                "media": self.media, "media_checked": self.media_checked,
                "problems": [{"kind": p.kind, "subject": p.subject, "detail": p.detail}
                             for p in self.problems],
                "repaired": self.repaired, "readd": self.readd}


def check_index(index: Index, repair: bool = False) -> CheckReport:
    """Compare catalog, store, media and shards of ``index``; repair if asked.

    Holds the index's write lock throughout, so no commit of another process is seen
    half-done (its rows in the store, its catalog row not yet written).
    """
    with index.lock.hold(), index.media_lock.try_exclusive() as media_free:
        report = _inspect(index, media_free)
        if repair and report.problems:
            _repair(index, report)
        return report


@dataclass(slots=True)
class _Snapshot:
    """Catalog and store contents, keyed for comparison."""

    records: list[DocRecord]
    wanted: dict[str, set[str]]  # doc id → item ids its catalog rows list
    sources: dict[str, list[str]]  # doc id → its sources
    rows: list[tuple[str, str, str]]  # (item id, doc id, media key) of every store row


def _snapshot(index: Index) -> _Snapshot:
    records = index.catalog.all()
    wanted: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, list[str]] = defaultdict(list)
    for r in records:
        wanted[r.doc_id].update(r.item_ids)
        sources[r.doc_id].append(r.source)
    return _Snapshot(records, dict(wanted), dict(sources), store_rows(index))


def store_rows(index: Index) -> list[tuple[str, str, str]]:
    """Every store row's (id, doc_id, media); stores without ``refs`` are read through
    ``get`` of the catalogued ids plus ``doc_ids`` (orphans then show per document)."""
    refs = getattr(index.store, "refs", None)
    if refs is not None:
        return list(refs())
    ids = [i for r in index.catalog.all() for i in r.item_ids]
    rows = [(it.id, it.doc_id, it.media or "") for it in index.store.get(ids)]
    known = {d for _, d, _ in rows}
    rows += [(f"{d}:?", d, "") for d in index.store.doc_ids() - known]
    return rows


def _inspect(index: Index, media_free: bool) -> CheckReport:
    snap = _snapshot(index)
    report = CheckReport(documents=len(snap.records), items=len(snap.rows),
                         media_checked=media_free)
    report.problems += _doc_problems(snap)
    report.problems += _media_problems(index, snap, report, media_free)
    report.problems += _multivec_problems(index, snap)
    return report


def _name(snap: _Snapshot, doc_id: str) -> str:
    found = snap.sources.get(doc_id) or ["?"]
    return found[0] + (f" (+{len(found) - 1} more)" if len(found) > 1 else "")


def _doc_problems(snap: _Snapshot) -> list[Problem]:
    counts = Counter(item_id for item_id, _, _ in snap.rows)
    by_doc: dict[str, set[str]] = defaultdict(set)
    for item_id, doc_id, _ in snap.rows:
        by_doc[doc_id].add(item_id)
    out: list[Problem] = []
    for doc_id, ids in snap.wanted.items():
        have = by_doc.get(doc_id, set())
        lacking = ids - have
        if ids and lacking == ids:
            out.append(Problem("missing", doc_id, f"{_name(snap, doc_id)}: none of its "
                                                  f"{len(ids)} item(s) is in the store"))
        elif lacking:
            out.append(Problem("partial", doc_id, f"{_name(snap, doc_id)}: {len(lacking)} "
                                                  f"of {len(ids)} item(s) missing from "
                                                  f"the store"))
        twice = sorted(i for i in ids if counts[i] > 1)
        if twice:
            out.append(Problem("duplicate", doc_id, f"{_name(snap, doc_id)}: {len(twice)} "
                                                    f"item(s) stored more than once"))
        extra = sorted(have - ids)
        if extra:
            out.append(Problem("stray", doc_id, f"{_name(snap, doc_id)}: {len(extra)} "
                                                f"store row(s) its catalog entry does not "
                                                f"list"))
    for doc_id in sorted(set(by_doc) - set(snap.wanted)):
        out.append(Problem("orphan", doc_id, f"{len(by_doc[doc_id])} store row(s) of a "
                                             f"document not in the catalog"))
    return out


def _media_problems(index: Index, snap: _Snapshot, report: CheckReport,
                    media_free: bool) -> list[Problem]:
    stored = set(index.media.keys())
    report.media = len(stored)
    referenced: dict[str, str] = {}  # media key → a doc id using it
    for _, doc_id, key in snap.rows:
        if key:
            referenced.setdefault(key, doc_id)
    out: list[Problem] = []
    broken: dict[str, int] = Counter()
    for _, doc_id, key in snap.rows:
        if key and key not in stored and doc_id in snap.wanted:
            broken[doc_id] += 1
    for doc_id, n in sorted(broken.items()):
        out.append(Problem("missing-media", doc_id, f"{_name(snap, doc_id)}: {n} item(s) "
                                                    f"point at media files that are gone"))
    if media_free:
        for key in sorted(stored - set(referenced)):
            out.append(Problem("unreferenced-media", key, "no item points at this file"))
        temp = index.media.temp_files()
        if temp:
            out.append(Problem("unreferenced-media", "media/**/.tmp-*", f"{len(temp)} temp "
                                                                        f"file(s) of "
                                                                        f"interrupted writes"))
    return out


def _multivec_problems(index: Index, snap: _Snapshot) -> list[Problem]:
    out: list[Problem] = []
    for space, mv in index.multivec.items():
        stray = [i for i in mv.ids() if i.split(":", 1)[0] not in snap.wanted]
        if stray:
            out.append(Problem("orphan", f"multivec/{space}", f"{len(stray)} token "
                                                              f"matrices of no catalogued "
                                                              f"document"))
        lost = Counter(i.split(":", 1)[0] for i in mv.missing_shards())
        for doc_id, n in sorted(lost.items()):
            if doc_id in snap.wanted:
                out.append(Problem("missing-shard", doc_id, f"{_name(snap, doc_id)}: {n} "
                                                            f"token matri(ces) in a {space} "
                                                            f"shard file that is gone"))
    return out


def _repair(index: Index, report: CheckReport) -> None:
    broken = {p.subject for p in report.problems if p.kind in _BROKEN_DOC}
    _forget(index, broken, report)
    orphans = {p.subject for p in report.problems
               if p.kind == "orphan" and not p.subject.startswith("multivec/")}
    _drop_rows(index, orphans, report)
    _drop_multivec(index, report)
    if report.media_checked:  # no add is running: every temp file is a dead write's
        used = {key for _, _, key in store_rows(index) if key}
        gone = index.media.remove_unreferenced(used, tmp_age_s=0)
        if gone:
            report.repaired.append(f"deleted {gone} unreferenced media file(s)")


def _forget(index: Index, doc_ids: set[str], report: CheckReport) -> None:
    """Remove incomplete documents (and their attachments) from catalog and store."""
    if not doc_ids:
        return
    family = index.catalog.descendants(doc_ids)
    records = [r for d in sorted(doc_ids) for r in index.catalog.by_doc_id(d)] + family
    index.catalog.remove_sources([r.source for r in records])
    everything = sorted({r.doc_id for r in records} | doc_ids)
    index.store.delete(everything)
    ids = [i for r in records for i in r.item_ids]
    for mv in index.multivec.values():
        mv.delete(ids)
    report.readd += sorted({r.source for r in records if not r.parent})
    report.repaired.append(f"forgot {len(everything)} incomplete document(s); add their "
                           f"sources again to re-index them")


def _drop_rows(index: Index, doc_ids: set[str], report: CheckReport) -> None:
    """Delete the store rows of documents the catalog does not hold."""
    orphan = sorted(doc_ids - index.catalog.doc_ids())
    if orphan:
        index.store.delete(orphan)
        report.repaired.append(f"deleted the store rows of {len(orphan)} orphan document(s)")


def _drop_multivec(index: Index, report: CheckReport) -> None:
    known = index.catalog.doc_ids()
    for space, mv in index.multivec.items():
        stray = [i for i in mv.ids() if i.split(":", 1)[0] not in known]
        if stray:
            mv.delete(stray)
            report.repaired.append(f"deleted {len(stray)} orphan {space} token matrices")
