"""Which documents an index holds, from which sources, and which item ids each has.

The catalog is the commit log of ingestion. A document counts as present only once its
catalog row exists, and that row is written *after* the store has its items. So after a
crash the store may hold items of an uncatalogued document (an orphan, deleted on the
next open) but never a catalogued document with missing items. SQLite gives the atomic,
durable writes this needs without a server.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class DocRecord:
    doc_id: str
    source: str
    name: str
    mime: str
    size: int
    item_ids: list[str]
    added: float
    parent: str = ""  # doc id of the document this one was attached to (an e-mail's)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    source TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    item_ids TEXT NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_doc_id ON docs(doc_id);
"""
# Catalogs made before attachments were documents of their own lack the parent column.
_PARENT = "ALTER TABLE docs ADD COLUMN parent TEXT NOT NULL DEFAULT ''"
_PARENT_INDEX = "CREATE INDEX IF NOT EXISTS docs_parent ON docs(parent)"
_COLUMNS = "source, doc_id, name, mime, size, item_ids, added, parent"


class Catalog:
    """One row per source; several sources may share a doc_id (identical content)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed doc survives power loss
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(docs)")}
        if "parent" not in columns:
            self._db.execute(_PARENT)
        self._db.execute(_PARENT_INDEX)

    @staticmethod
    def _record(row: Sequence) -> DocRecord:
        source, doc_id, name, mime, size, item_ids, added, parent = row
        return DocRecord(doc_id, source, name, mime, size, json.loads(item_ids), added,
                         parent)

    def by_source(self, source: str) -> DocRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM docs WHERE source = ?",
                               (source,)).fetchone()
        return self._record(row) if row else None

    def by_doc_id(self, doc_id: str) -> list[DocRecord]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM docs WHERE doc_id = ?",
                                (doc_id,)).fetchall()
        return [self._record(r) for r in rows]

    def under(self, prefix: str) -> list[DocRecord]:
        """Sources inside a folder (or equal to a path), for delete-by-folder."""
        folder = prefix.rstrip("/") + "/"
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM docs WHERE source = ? OR substr(source, 1, ?) = ?",
            (prefix, len(folder), folder)).fetchall()
        return [self._record(r) for r in rows]

    def all(self) -> list[DocRecord]:
        return [self._record(r) for r in
                self._db.execute(f"SELECT {_COLUMNS} FROM docs ORDER BY added")]

    def children(self, doc_ids: Iterable[str]) -> list[DocRecord]:
        """Documents attached to any of ``doc_ids`` (one level; callers recurse)."""
        ids = list(dict.fromkeys(doc_ids))
        out: list[DocRecord] = []
        for i in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
            chunk = ids[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            out += [self._record(r) for r in self._db.execute(
                f"SELECT {_COLUMNS} FROM docs WHERE parent IN ({marks})", chunk)]
        return out

    def descendants(self, doc_ids: Iterable[str]) -> list[DocRecord]:
        """Everything attached to ``doc_ids``, at any depth (attachments of attached
        e-mails too): what goes when they go."""
        out: dict[str, DocRecord] = {}
        seen = set(doc_ids)
        level = list(seen)
        while level:  # ``seen`` ends a cycle, should a damaged catalog hold one
            found = [r for r in self.children(level) if r.source not in out]
            out.update((r.source, r) for r in found)
            level = list({r.doc_id for r in found} - seen)
            seen.update(level)
        return list(out.values())

    def doc_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT DISTINCT doc_id FROM docs")}

    def commit(self, records: Iterable[DocRecord]) -> None:
        """Register documents whose items are already in the store, in one transaction."""
        with self._tx():
            for r in records:
                self._db.execute(
                    f"INSERT OR REPLACE INTO docs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.source, r.doc_id, r.name, r.mime, r.size, json.dumps(r.item_ids),
                     r.added or time.time(), r.parent))

    def remove_sources(self, sources: Iterable[str]) -> None:
        with self._tx():
            self._db.executemany("DELETE FROM docs WHERE source = ?", [(s,) for s in sources])

    def remove_doc_ids(self, doc_ids: Iterable[str]) -> None:
        with self._tx():
            self._db.executemany("DELETE FROM docs WHERE doc_id = ?", [(d,) for d in doc_ids])

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
