"""Media files on object storage (``media.uri = "s3://bucket/index/media"``), through fsspec.

Same keys and layout as :class:`~mmrag.ingest.media.MediaStore` (``ab/cd/<sha256>.<ext>``),
so a folder of media can be copied to a bucket as it is. Why it works without locks or
temp files: a key names its content, an object PUT is atomic (readers see the whole file
or none), and writing a key twice writes the same bytes. Readers (search results, the
server's ``/media``) get a local path: :meth:`RemoteMediaStore.path` fetches the object
into a per-index cache folder on first use.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import MediaSettings
from ..errors import ConfigError
from .media import _KEY, MediaStore, _ext

__all__ = ["RemoteMediaStore"]


class RemoteMediaStore(MediaStore):
    """Media under an fsspec URL; ``cache`` is the local folder :meth:`path` fills."""

    def __init__(self, uri: str, cache: Path | str, settings: MediaSettings | None = None,
                 storage_options: Mapping[str, Any] | None = None):
        super().__init__(cache, settings)
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
        except (ImportError, ValueError) as exc:  # e.g. s3fs missing: mmrag[s3]
            raise ConfigError(f"cannot open media.uri {uri!r}: {exc}") from exc
        self.uri = uri
        self.remote_root = root.rstrip("/")

    def _remote(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"invalid media key {key!r}")
        return f"{self.remote_root}/{key[:2]}/{key[2:4]}/{key}"

    def path(self, key: str) -> Path:
        """The local copy of ``key``, fetched on first use (a missing object gives a path
        that does not exist, as a missing file does locally)."""
        local = super().path(key)
        if not local.is_file():
            try:
                data = self.fs.cat_file(self._remote(key))
            except FileNotFoundError:
                return local
            self._write_local(local, data)
        return local

    def exists(self, key: str) -> bool:
        try:
            return super().path(key).is_file() or self.fs.exists(self._remote(key))
        except ValueError:
            return False

    def put_bytes(self, data: bytes, ext: str) -> str:
        key = f"{hashlib.sha256(data).hexdigest()}.{_ext(ext)}"
        remote = self._remote(key)
        if not self.fs.exists(remote):
            self.fs.pipe_file(remote, data)
        self._write_local(super().path(key), data)
        return key

    @staticmethod
    def _write_local(dest: Path, data: bytes) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def keys(self) -> Iterator[str]:
        self.fs.invalidate_cache(self.remote_root)  # another process may have written
        try:
            found = self.fs.find(self.remote_root)
        except FileNotFoundError:
            return
        for name in sorted(p.rsplit("/", 1)[-1] for p in found):
            if _KEY.match(name):
                yield name

    def remove(self, keys: list[str] | set[str]) -> int:
        removed = 0
        for key in keys:
            try:
                remote = self._remote(key)
            except ValueError:
                continue
            if self.fs.exists(remote):
                self.fs.rm_file(remote)
                removed += 1
            super().path(key).unlink(missing_ok=True)
        self.fs.invalidate_cache()
        return removed

    def temp_files(self) -> list[Path]:
        return []  # object PUTs leave no partial files

    def remove_unreferenced(self, keys_in_use: set[str], tmp_age_s: float = 3600) -> int:
        return self.remove([k for k in self.keys() if k not in keys_in_use])
