"""API keys: created once, shown once, stored only as hashes (``<data>/keys.json``).

A key is ``mmrag_`` + 32 random bytes (URL-safe base64). The file keeps its SHA-256, never
the key: a leaked ``keys.json`` lets nobody in, and since the token is random a plain hash
needs no salt or slow KDF (those defend guessable passwords). Lookups hash the presented
key and compare it with every stored hash in constant time.

Scopes nest: ``read`` (search, ask, media, jobs, lists) < ``write`` (+ add and delete
items) < ``admin`` (+ create and delete collections). A key may be limited to some
collections; without a list it holds for all.

The file is written atomically (temp file + rename, mode 0600) and re-read by a running
server whenever it changes on disk, so ``mmrag keys create`` / ``revoke`` take effect
without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, cast

from ..errors import ConfigError
from .ids import COLLECTION

__all__ = ["SCOPES", "ApiKey", "KeyStore", "Scope"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")  # each includes those before it
KEYS_FILE = "keys.json"
_PREFIX = "mmrag_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True, frozen=True)
class ApiKey:
    """What the server knows about a key: never the key itself."""

    id: str
    hash: str
    scope: Scope
    collections: tuple[str, ...] | None = None  # None: every collection
    created: float = 0.0
    name: str = ""

    def allows(self, scope: Scope, collection: str | None = None) -> bool:
        """True when this key has ``scope`` (or a wider one) on ``collection`` (``None``:
        a request not about one collection, such as listing them)."""
        if SCOPES.index(self.scope) < SCOPES.index(scope):
            return False
        return collection is None or self.collections is None or collection in self.collections

    def public(self) -> dict[str, object]:
        data = asdict(self)
        del data["hash"]
        data["collections"] = list(self.collections) if self.collections is not None else None
        return data


class KeyStore:
    """The keys of one server folder (``--data`` or ``--index``), or of a ``*.json`` file
    given as such."""

    def __init__(self, folder: str | Path):
        path = Path(folder).expanduser()
        self.path = path if path.suffix == ".json" else path / KEYS_FILE
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[ApiKey] = []

    # -- reading ---------------------------------------------------------------------
    def keys(self) -> list[ApiKey]:
        """The current keys, re-read when the file changed since the last call (a stat per
        call: cheap next to any request that needs a key)."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._keys = self._read() if stamp is not None else []
                self._stamp = stamp
            return list(self._keys)

    def _read(self) -> list[ApiKey]:
        try:
            rows = json.loads(self.path.read_text())["keys"]
            return [ApiKey(id=r["id"], hash=r["hash"], scope=cast(Scope, r["scope"]),
                           collections=tuple(r["collections"]) if r.get("collections")
                           is not None else None, created=float(r.get("created", 0)),
                           name=r.get("name", "")) for r in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A corrupt key file must not open the server: refuse every key instead.
            raise ConfigError(f"cannot read API keys from {str(self.path)!r}: {exc}") from exc

    def __bool__(self) -> bool:
        return bool(self.keys())

    def find(self, token: str) -> ApiKey | None:
        """The key ``token`` is, if any. Every stored hash is compared (in constant time),
        so timing tells nothing about which or how many keys nearly matched."""
        digest = _digest(token)
        found = None
        for key in self.keys():
            if hmac.compare_digest(digest, key.hash):
                found = key
        return found

    # -- changing --------------------------------------------------------------------
    def create(self, scope: str, collections: list[str] | None = None,
               name: str = "") -> tuple[str, ApiKey]:
        """Make a key; returns ``(the key, its record)``. The key is not stored anywhere:
        whoever creates it must keep it."""
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
        for c in collections or []:
            if not COLLECTION.fullmatch(c):
                raise ConfigError(f"invalid collection name {c!r}")
        token = _PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id=secrets.token_hex(4), hash=_digest(token), scope=scope,
                     collections=tuple(collections) if collections else None,
                     created=round(time.time(), 3), name=name)
        self._write([*self.keys(), key])
        return token, key

    def revoke(self, key_id: str) -> bool:
        keys = self.keys()
        kept = [k for k in keys if k.id != key_id]
        if len(kept) == len(keys):
            return False
        self._write(kept)
        return True

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{**asdict(k), "collections": list(k.collections)
                 if k.collections is not None else None} for k in keys]
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": 1, "keys": rows}, fh, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)  # readers see the old file or the new, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
