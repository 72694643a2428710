"""Content-addressed media files (page renders, original images) next to the index.

A key is ``<sha256 of the stored bytes>.<ext>``, stored at ``root/ab/cd/<key>``: adding the
same image twice stores it once, and deleting a document only needs a garbage collection
over keys still referenced by the store.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ..config import MediaSettings
from .base import Piece

__all__ = ["MediaStore"]

_KEY = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{1,8}$")
_EXT = {"jpeg": "jpg", "tif": "tiff"}


def _ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    ext = _EXT.get(ext, ext)
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise ValueError(f"invalid media extension {ext!r}")
    return ext


class MediaStore:
    """Media files under ``root`` keyed by content hash."""

    def __init__(self, root: Path | str, settings: MediaSettings | None = None):
        self.root = Path(root)
        self.settings = settings or MediaSettings()

    def path(self, key: str) -> Path:
        """Where ``key`` lives (whether or not it exists); rejects malformed keys."""
        if not _KEY.match(key):
            raise ValueError(f"invalid media key {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except ValueError:
            return False

    def put_bytes(self, data: bytes, ext: str) -> str:
        """Store ``data`` as-is and return its key; storing existing content is a no-op."""
        key = f"{hashlib.sha256(data).hexdigest()}.{_ext(ext)}"
        dest = self.path(key)
        if dest.is_file():
            return key
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; media is served like any file
            os.replace(tmp, dest)  # atomic: readers never see a half-written file
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return key

    def _shrink(self, img: Image.Image) -> Image.Image:
        side = self.settings.max_side
        if self.settings.keep == "resized" and max(img.size) > side:
            img = img.copy()
            img.thumbnail((side, side), Image.Resampling.LANCZOS)
        return img

    def encode(self, img: Image.Image, fmt: str | None = None) -> tuple[bytes, str]:
        """Encoded bytes and extension of ``img`` in ``fmt`` (default ``page_format``),
        shrunk first when ``keep == "resized"``."""
        fmt = (fmt or self.settings.page_format).lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        img = self._shrink(img)
        buf = io.BytesIO()
        if fmt == "jpeg":
            # no optimize=True: its second Huffman pass made a 935x1210 page render 3.2x
            # slower to encode (20 vs 6 ms) for a file only 5.5 % smaller
            img.convert("RGB").save(buf, format="JPEG", quality=85)
        elif fmt == "webp":
            # method=0 encodes a page render ~6x faster than the default (27 vs 154 ms at
            # 935x1210) for a file that is still ~10 KB; JPEG (the default) is ~7x faster.
            img.save(buf, format="WEBP", quality=80, method=0)
        elif fmt == "png":
            img.save(buf, format="PNG")
        else:
            raise ValueError(f"unsupported media format {fmt!r}; choose png, jpeg or webp")
        return buf.getvalue(), _ext(fmt)

    def put_image(self, img: Image.Image, fmt: str | None = None) -> str:
        """Encode and store a PIL image (``fmt`` defaults to ``media.page_format``)."""
        data, ext = self.encode(img, fmt)
        return self.put_bytes(data, ext)

    def put_media(self, piece: Piece) -> str:
        """Store what ``piece`` should show: original bytes for an image file (re-encoded
        smaller when ``keep == "resized"`` and it is larger than ``max_side``), the render
        for a page; ``""`` for a pure text piece."""
        found = self.media_of(piece)
        return self.put_bytes(*found) if found is not None else ""

    def media_of(self, piece: Piece) -> tuple[bytes, str] | None:
        """The bytes and extension :meth:`put_media` stores for ``piece``, unwritten: a
        Ray worker makes them where the piece is loaded and the driver writes them, so
        the media folder need not be shared with the workers."""
        if piece.media is not None:
            img = piece.image
            if (self.settings.keep == "resized" and img is not None
                    and max(img.size) > self.settings.max_side):
                return self.encode(img)
            return piece.media, piece.media_ext or "bin"
        if piece.image is not None:
            return self.encode(piece.image)
        return None

    def keys(self) -> Iterator[str]:
        """Every stored key."""
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if not first.is_dir() or len(first.name) != 2:
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for f in sorted(second.iterdir()):
                    if _KEY.match(f.name):
                        yield f.name

    def remove(self, keys: list[str] | set[str]) -> int:
        """Delete the files of ``keys`` (callers decide nothing refers to them); returns
        how many existed."""
        removed = 0
        for key in keys:
            try:
                self.path(key).unlink()
                removed += 1
            except (FileNotFoundError, ValueError):
                pass
        return removed

    def temp_files(self) -> list[Path]:
        """Temp files of writes in progress or interrupted (a killed add leaves them)."""
        return sorted(self.root.glob("*/*/.tmp-*")) if self.root.is_dir() else []

    def remove_unreferenced(self, keys_in_use: set[str], tmp_age_s: float = 3600) -> int:
        """Delete stored media whose key is not in ``keys_in_use``; returns how many.

        Also clears temp files older than ``tmp_age_s`` (0 when the caller knows no write
        is in progress) and empty shard folders.
        """
        removed = 0
        for key in list(self.keys()):
            if key not in keys_in_use:
                try:
                    self.path(key).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        if self.root.is_dir():
            for shard in sorted(self.root.glob("*/*"), reverse=True):
                if not shard.is_dir():
                    continue
                for tmp in shard.glob(".tmp-*"):
                    # an hour-old temp file is a crashed write, not one in progress
                    try:
                        if time.time() - tmp.stat().st_mtime >= tmp_age_s:
                            tmp.unlink()
                    except OSError:
                        pass
                for folder in (shard, shard.parent):
                    try:
                        folder.rmdir()  # only succeeds when empty
                    except OSError:
                        pass
        return removed
