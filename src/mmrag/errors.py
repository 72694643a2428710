"""Exceptions raised by mmrag.

    MmragError
    ├── ConfigError(ValueError)        bad settings, profile mismatch with an existing index
    │   └── UnknownBackendError         a registry name that is not registered/importable
    ├── MissingDependencyError(ImportError)  an optional extra is not installed
    ├── IngestError(ValueError)        one source could not be read; message names it
    │   └── BlockedURLError             URL points at loopback/private/link-local space
    ├── QueryError(ValueError)         a query this index cannot answer (e.g. image in offline)
    └── StoreError(RuntimeError)       the vector store failed
        └── DiskFullError               the index's device is full; the run stopped

Leaves subclass builtins so callers' existing ``except ValueError`` keep working, and
every message is one line that quotes the offending value with ``!r``.
"""

from __future__ import annotations


class MmragError(Exception):
    """Base of every error mmrag raises on purpose."""


class ConfigError(MmragError, ValueError):
    pass


class UnknownBackendError(ConfigError):
    def __init__(self, kind: str, name: str, choices: list[str]):
        super().__init__(f"unknown {kind} {name!r}; choose one of {', '.join(sorted(choices))} "
                         f"or give a dotted path 'package.module.Class'")
        self.kind, self.name, self.choices = kind, name, choices


class MissingDependencyError(MmragError, ImportError):
    def __init__(self, what: str, extra: str):
        super().__init__(f"{what} needs the optional extra: pip install 'mmrag[{extra}]'")


class IngestError(MmragError, ValueError):
    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


class BlockedURLError(IngestError):
    pass


class QueryError(MmragError, ValueError):
    pass


class StoreError(MmragError, RuntimeError):
    pass


class DiskFullError(StoreError):
    """No space left where the index lives. Raised once, stopping the run: every later
    write would fail alike. What was committed before stays whole."""


_DISK_FULL = ("no space left on device", "os error 28", "database or disk is full",
              "disk quota exceeded")


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) says the device is full. LanceDB and
    SQLite report it in their message text, not as an ``OSError`` with ``ENOSPC``."""
    import errno

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(marker in str(cur).lower() for marker in _DISK_FULL):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


class GenerationError(MmragError, RuntimeError):
    """A generator failed: missing API key, timeout, rate limit after retries, input too
    large, or a model that cannot be loaded. The message is one line for the user."""
