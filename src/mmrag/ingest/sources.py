"""Turn whatever the user passed into Blobs: paths, folders, bytes, base64, URLs.

``resolve`` never raises for one bad source: each problem becomes a
:class:`~mmrag.types.Failure` yielded where the Blob would have been, so one unreadable file
in a folder of thousands costs one line in the report. Folders are read lazily, one file
per Blob, in sorted order.

Local files become file-backed Blobs (only their first bytes are read, to sniff the type),
and remote bodies over :data:`SPOOL_BYTES` are spooled to a temporary file, so a long
video never sits whole in memory. Audio and video stream when loaded and are capped by
``ingest.max_media_bytes``; everything else is read into memory and capped by
``ingest.max_bytes``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import itertools
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit
from urllib.request import url2pathname

from ..config import IngestSettings
from ..errors import IngestError
from ..types import Blob, Failure
from .containers import OLE2, ZIP, sniff_file
from .sniff import HEAD_BYTES, is_media, loader_for, sniff

__all__ = ["SPOOL_BYTES", "Source", "matches", "read_stream", "resolve", "size_limit"]

log = logging.getLogger(__name__)

Source = str | Path | bytes | bytearray | memoryview | tuple[str, bytes]
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_B64 = re.compile(r"^[A-Za-z0-9+/\-_\s]+={0,2}\s*$")
_MIN_B64 = 24  # shorter strings that are not paths are reported as missing files
SPOOL_BYTES = 32 * 2**20  # a remote body larger than this goes to a temporary file
_BLOCK = 1 << 20  # read size when copying a remote file


def resolve(sources: Source | Blob | Iterable[Source | Blob],
            settings: IngestSettings | None = None) -> Iterator[Blob | Failure]:
    """Yield a Blob (mime sniffed from content) or a Failure for every file in ``sources``.

    ``sources`` is one source or an iterable of them: a path to a file or folder, raw
    bytes, a ``(name, bytes)`` tuple, a ``data:`` URI, a base64 string, an http(s) URL or
    any fsspec URL (``s3://``, ``memory://``...).
    """
    settings = settings or IngestSettings()
    for source in _each(sources):
        try:
            for result in _resolve_one(source, settings):
                if isinstance(result, Failure):
                    result = Failure(_printable(result.source), _one_line(result.reason))
                yield result
        except IngestError as exc:
            yield Failure(_printable(exc.source), _one_line(exc.reason))
        except Exception as exc:  # one bad source never stops the rest
            log.debug("resolving %r failed", _label(source), exc_info=True)
            yield Failure(_label(source), _one_line(f"{type(exc).__name__}: {exc}"))


def _each(sources: Any) -> Iterator[Any]:
    if isinstance(sources, (str, Path, bytes, bytearray, memoryview)) or _is_named(sources):
        yield sources
    elif isinstance(sources, os.PathLike):
        yield Path(os.fspath(sources))
    else:
        try:
            items = iter(sources)
        except TypeError:
            yield sources  # reported as unsupported below
            return
        yield from items


def _is_named(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (bytes, bytearray, memoryview)))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500] or "unknown error"


def _printable(text: str) -> str:
    """Keep a report line one line even for a file name with a newline in it."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _label(source: Any) -> str:
    if isinstance(source, Blob):
        return source.uri
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _bytes_uri(bytes(source))
    if _is_named(source):
        return source[0]
    text = _printable(str(source))
    return text if len(text) <= 120 else text[:60] + "…" + f"({len(text)} chars)"


def _bytes_uri(data: bytes) -> str:
    return "bytes:" + hashlib.sha256(data).hexdigest()[:16]


def _blob(uri: str, data: bytes, name: str, settings: IngestSettings,
          metadata: dict[str, Any] | None = None, hint: str = "") -> Blob:
    """Size-check and sniff ``data``; raises IngestError for empty/huge/unsupported."""
    return _check(Blob(uri=uri, data=data, name=name, metadata=dict(metadata or {})),
                  settings, hint)


def _check(blob: Blob, settings: IngestSettings, hint: str = "") -> Blob:
    """Sniff ``blob`` from its first bytes and check its size against the cap of its type;
    raises IngestError for empty/huge/unsupported. Never loads a file-backed Blob."""
    size = blob.size
    if not size:
        raise IngestError(blob.uri, "empty file (0 bytes)")
    mime = sniff(blob.head(HEAD_BYTES), blob.name)
    if mime in (ZIP, OLE2):  # the leading members did not tell: read the directory
        with blob.open() as fh:
            mime = sniff_file(fh, mime)
    if mime == "text/plain" and hint in ("text/markdown", "text/html"):
        mime = hint
    if size > size_limit(mime, settings)[0]:
        raise IngestError(blob.uri, _too_large(size, mime, settings))
    if loader_for(mime) is None:
        raise IngestError(blob.uri, f"unsupported file type {mime}")
    blob.mime = mime
    blob.metadata = {"size": size, **blob.metadata}
    return blob


def size_limit(mime: str, settings: IngestSettings) -> tuple[int, str]:
    """The largest accepted source of type ``mime`` and the setting that says so: audio
    and video stream from their file, everything else is read into memory."""
    if is_media(mime):
        return settings.max_media_bytes, "ingest.max_media_bytes"
    return settings.max_bytes, "ingest.max_bytes"


def _too_large(size: int, mime: str, settings: IngestSettings) -> str:
    return _exceeds(size, *size_limit(mime, settings))


def _exceeds(size: int, limit: int, key: str) -> str:
    return f"too large: {size} bytes exceeds {key} ({limit})"


def _resolve_one(source: Any, settings: IngestSettings) -> Iterator[Blob | Failure]:
    if isinstance(source, Blob):  # made by the caller, e.g. an upload kept on disk
        yield _check(source, settings)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        yield _blob(_bytes_uri(data), data, "", settings)
    elif _is_named(source):
        name, data = source[0], bytes(source[1])
        yield _blob(_bytes_uri(data), data, name, settings, {"source_name": name})
    elif isinstance(source, Path):
        yield from _local(source, settings)
    elif isinstance(source, str):
        yield from _from_string(source, settings)
    else:
        raise IngestError(_label(source), f"unsupported source type {type(source).__name__}")


def _from_string(source: str, settings: IngestSettings) -> Iterator[Blob | Failure]:
    text = source.strip()
    if text[:5].lower() == "data:":
        yield _data_uri(text, settings)
        return
    scheme = _URL.match(text)
    if scheme:
        proto = scheme.group(1).lower()
        if proto in ("http", "https"):
            from .fetch import fetch_url

            blob = fetch_url(text, settings, spool=True)
            yield _check(blob, settings, hint=blob.mime)
        elif proto == "file":
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                raise IngestError(source, f"file:// URL with a remote host {parts.netloc!r}")
            yield from _local(Path(url2pathname(unquote(parts.path))), settings)
        else:
            yield from _fsspec(text, settings)
        return
    path = Path(source).expanduser()
    try:
        exists = path.exists() or path.is_symlink()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        exists = False
    if exists:
        yield from _local(path, settings)
        return
    if len(text) >= _MIN_B64 and _B64.match(text):
        data = _b64decode(text)
        if data is not None:
            mime = sniff(data)
            if loader_for(mime) is not None:
                yield _blob(_bytes_uri(data), data, "", settings, {"encoding": "base64"})
                return
            if len(text) > 256:  # surely meant as base64, not a mistyped path
                raise IngestError(_label(source), "not an existing path, and its base64 "
                                                  f"content is an unsupported type {mime}")
    raise IngestError(_label(source), "no such file or directory")


def _b64decode(text: str) -> bytes | None:
    compact = "".join(text.split())
    alt = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=alt,
                                validate=True)
    except (binascii.Error, ValueError):
        return None


def _data_uri(text: str, settings: IngestSettings) -> Blob:
    header, sep, payload = text[5:].partition(",")
    label = _label(text)
    if not sep:
        raise IngestError(label, "malformed data: URI (no comma)")
    params = [p.strip() for p in header.split(";")]
    declared = params[0].lower() if params and "=" not in params[0] else ""
    if "base64" in (p.lower() for p in params[1:]) or header.lower().endswith(";base64"):
        data = _b64decode(unquote(payload))
        if data is None:
            raise IngestError(label, "data: URI has invalid base64")
    else:
        data = unquote_to_bytes(payload)
    return _blob(_bytes_uri(data), data, "", settings, {"declared_mime": declared} if declared
                 else {}, hint=declared)


# --- local files and folders -----------------------------------------------------------


def matches(rel: str, patterns: Iterable[str]) -> bool:
    """True when ``rel`` (a relative posix path) matches any glob.

    ``*`` crosses folders (``*.pdf`` matches ``a/b.pdf``), a pattern is also tried on the
    base name, and a leading ``**/`` may match zero folders.
    """
    base = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        if fnmatchcase(rel, pat) or fnmatchcase(base, pat):
            return True
        if pat.startswith("**/") and fnmatchcase(rel, pat[3:]):
            return True
    return False


def _local(path: Path, settings: IngestSettings) -> Iterator[Blob | Failure]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IngestError(str(path), "no such file or directory"
                          + (" (broken symlink)" if path.is_symlink() else "")) from None
    except OSError as exc:
        raise IngestError(str(path), _one_line(exc.strerror or str(exc))) from None
    if stat.S_ISDIR(st.st_mode):
        yield from _walk(path, settings)
    else:
        yield _read_file(path, st, settings)


def _read_file(path: Path, st: os.stat_result, settings: IngestSettings) -> Blob:
    """A Blob backed by the file: only its first bytes are read here, to sniff the type
    (an unreadable file fails here, not in the middle of the ingest)."""
    uri = str(path.resolve())
    if not stat.S_ISREG(st.st_mode):
        raise IngestError(uri, "not a regular file")
    blob = Blob(uri=uri, name=path.name, path=uri, metadata={"mtime": st.st_mtime})
    try:
        return _check(blob, settings)
    except OSError as exc:
        raise IngestError(uri, _one_line(exc.strerror or str(exc))) from None


def _walk(root: Path, settings: IngestSettings) -> Iterator[Blob | Failure]:
    found = False
    seen: set[tuple[int, int]] = set()
    for path, _rel in _walk_dir(root, "", seen, settings):
        found = True
        try:
            st = path.stat()
            yield _read_file(path, st, settings)
        except FileNotFoundError:
            yield Failure(str(path.absolute()), "no such file or directory (broken symlink)"
                          if path.is_symlink() else "no such file or directory")
        except IngestError as exc:
            yield Failure(exc.source, _one_line(exc.reason))
        except OSError as exc:
            yield Failure(str(path.absolute()), _one_line(exc.strerror or str(exc)))
    if not found:
        yield Failure(str(root.resolve()), "no matching files in folder")


def _walk_dir(folder: Path, prefix: str, seen: set[tuple[int, int]],
              settings: IngestSettings) -> Iterator[tuple[Path, str]]:
    try:
        st = folder.stat()
    except OSError:
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:  # a symlink loop or a folder reached twice
        return
    seen.add(key)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            if matches(rel, settings.exclude) or matches(rel + "/", settings.exclude):
                continue
            yield from _walk_dir(Path(entry.path), rel + "/", seen, settings)
            continue
        if matches(rel, settings.exclude):
            continue
        if settings.include and not matches(rel, settings.include):
            continue
        yield Path(entry.path), rel


# --- fsspec ----------------------------------------------------------------------------


def _fsspec(url: str, settings: IngestSettings) -> Iterator[Blob | Failure]:
    from fsspec.core import url_to_fs
    from fsspec.registry import known_implementations

    proto = url.split("://", 1)[0].lower()
    try:
        fs, path = url_to_fs(url)
    except ImportError:
        cls = known_implementations.get(proto, {}).get("class", "")
        package = cls.split(".", 1)[0] if cls else f"an fsspec backend for {proto}://"
        raise IngestError(url, f"{proto}:// URLs need the {package} package: "
                               f"pip install {package}") from None
    except ValueError as exc:
        raise IngestError(url, f"unsupported URL protocol {proto!r}: {_one_line(str(exc))}"
                          ) from None
    try:
        is_dir = fs.isdir(path)
    except Exception as exc:  # remote back ends raise their own errors
        raise IngestError(url, _one_line(f"{type(exc).__name__}: {exc}")) from None
    if not is_dir:
        yield _fs_file(fs, path, fs.unstrip_protocol(path), settings)
        return
    base = path.rstrip("/")
    try:
        files = sorted(fs.find(base, withdirs=False))
    except Exception as exc:  # ditto
        raise IngestError(url, _one_line(f"{type(exc).__name__}: {exc}")) from None
    found = False
    for item in files:
        rel = item[len(base):].lstrip("/") if item.startswith(base) else item
        parts = rel.split("/")
        if any(matches("/".join(parts[: i + 1]) + "/", settings.exclude)
               for i in range(len(parts) - 1)):
            continue
        if matches(rel, settings.exclude):
            continue
        if settings.include and not matches(rel, settings.include):
            continue
        found = True
        try:
            yield _fs_file(fs, item, fs.unstrip_protocol(item), settings)
        except IngestError as exc:
            yield Failure(exc.source, _one_line(exc.reason))
    if not found:
        yield Failure(url, "no matching files in folder")


def _fs_file(fs: Any, path: str, uri: str, settings: IngestSettings) -> Blob:
    name = PurePosixPath(path).name
    try:
        size = fs.size(path)
        with fs.open(path, "rb") as fh:
            blob = read_stream(iter(functools.partial(fh.read, _BLOCK), b""), uri, name,
                               settings, declared=size)
    except FileNotFoundError:
        raise IngestError(uri, "no such file or directory") from None
    except IngestError:
        raise
    except Exception as exc:  # ditto
        raise IngestError(uri, _one_line(f"{type(exc).__name__}: {exc}")) from None
    return _check(blob, settings)


# --- remote bodies ---------------------------------------------------------------------


def read_stream(chunks: Iterable[bytes], uri: str, name: str, settings: IngestSettings, *,
                declared: int | None = None, spool: bool = True) -> Blob:
    """A remote body as a Blob, in memory up to :data:`SPOOL_BYTES` and beyond that in a
    temporary file the Blob owns (deleted with it), so a long video never fills memory.

    The cap comes from the type sniffed from the first bytes (:func:`size_limit`) and is
    checked against ``declared`` (a Content-Length) before the rest is read. With
    ``spool=False`` everything stays in memory under ``ingest.max_bytes``, for callers
    that want the bytes themselves.
    """
    it = iter(chunks)
    lead = _lead(it, HEAD_BYTES)
    mime = sniff(b"".join(lead)[:HEAD_BYTES], name)
    limit, key = size_limit(mime, settings) if spool else (settings.max_bytes,
                                                           "ingest.max_bytes")
    if declared is not None and declared > limit:
        raise IngestError(uri, _exceeds(declared, limit, key))
    too_large = IngestError(uri, f"too large: more than {key} ({limit}) bytes")
    body = _drain(itertools.chain(lead, it), limit, too_large, spool)
    if isinstance(body, bytes):
        return Blob(uri=uri, data=body, name=name, mime=mime)
    return Blob(uri=uri, name=name, mime=mime, path=body, temporary=True)


def _drain(chunks: Iterator[bytes], limit: int, too_large: IngestError,
           spool: bool) -> bytes | str:
    """All of ``chunks``: their bytes, or the path of the temporary file they went to
    once past :data:`SPOOL_BYTES` (removed again when reading fails)."""
    held: list[bytes] = []
    total = 0
    tmp: Any = None
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise too_large
            if tmp is None and spool and total > SPOOL_BYTES:
                tmp = tempfile.NamedTemporaryFile(prefix="mmrag-", delete=False)
                tmp.writelines(held)
                held = []
            if tmp is not None:
                tmp.write(chunk)
            else:
                held.append(chunk)
        if tmp is not None:
            tmp.close()
    except BaseException:
        if tmp is not None:
            tmp.close()
            _discard(tmp.name)
        raise
    return b"".join(held) if tmp is None else tmp.name


def _lead(it: Iterator[bytes], n: int) -> list[bytes]:
    """The first chunks of ``it``, at least ``n`` bytes of them unless it ends sooner."""
    lead: list[bytes] = []
    got = 0
    while got < n:
        chunk = next(it, None)
        if chunk is None:
            break
        lead.append(chunk)
        got += len(chunk)
    return lead


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
