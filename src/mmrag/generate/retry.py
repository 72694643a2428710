"""Shared provider plumbing: retries with backoff, API keys, and one-line errors.

Every hosted provider fails the same few ways (missing key, rate limit, timeout, server
hiccup, input too large) but each SDK spells them differently. Providers wrap the call
that opens a stream in :func:`with_retries` and turn whatever escapes into a
:class:`GenerationError` with :func:`generation_error`, so users see one clear line
whichever SDK failed. Retrying stops at the first streamed token: a half-streamed answer
is never restarted, because the user has already seen it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import GenerationError

__all__ = ["api_key", "generation_error", "is_transient", "retry_after", "status_of",
           "with_retries"]

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_TRANSIENT_NAMES = ("ratelimit", "timeout", "connection", "serviceunavailable",
                    "internalserver", "overloaded", "resourceexhausted", "deadlineexceeded")
_TOO_LARGE = re.compile(r"context.{0,20}(length|window)|too (long|large)|maximum.{0,20}"
                        r"(tokens|context)|request entity too large|prompt is too long", re.I)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (``status_code``, ``code`` or its
    ``response``), if any."""
    for obj in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(obj, attr, None)
            if isinstance(value, int) and 100 <= value < 600:
                return value
    return None


def is_transient(exc: BaseException) -> bool:
    """Rate limits, timeouts, dropped connections and 5xx are worth another try; bad keys,
    bad requests and oversized inputs are not."""
    if isinstance(exc, GenerationError):
        return False
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    names = "".join(c.__name__.lower() for c in type(exc).__mro__)
    return any(n in names for n in _TRANSIENT_NAMES)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` header), if it said."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def with_retries(call: Callable[[], T], *, retries: int, base_delay: float = 1.0,
                 max_delay: float = 30.0, retry_on: Callable[[BaseException], bool] = is_transient,
                 sleep: Callable[[float], None] = time.sleep, what: str = "request") -> T:
    """Run ``call``; on a transient error wait ``base_delay * 2**attempt`` (capped, with
    full jitter so many clients do not retry in step, or the server's Retry-After) and try
    again, at most ``retries`` more times. The last error is re-raised unchanged."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if attempt >= retries or not retry_on(exc):
                raise
            delay = retry_after(exc)
            if delay is None:
                delay = random.uniform(0, min(max_delay, base_delay * 2 ** attempt))
            delay = min(delay, max_delay)
            log.info("%s failed (%s); retry %d/%d in %.1fs", what, type(exc).__name__,
                     attempt + 1, retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


def api_key(env_name: str, default_env: str, provider: str) -> str:
    """The API key from the environment variable ``env_name`` (or the provider's usual
    one); a missing key is a one-line error naming the variable to set."""
    var = env_name or default_env
    key = os.environ.get(var, "").strip()
    if not key:
        raise GenerationError(f"{provider} needs an API key: set the environment variable "
                              f"{var} (or generate.api_key_env to name another)")
    return key


def generation_error(exc: BaseException, provider: str, *, timeout: float | None = None,
                     retries: int | None = None, key_env: str = "") -> GenerationError:
    """Turn any provider/SDK exception into a one-line :class:`GenerationError`."""
    if isinstance(exc, GenerationError):
        return exc
    status = status_of(exc)
    detail = _one_line(exc)
    names = "".join(c.__name__.lower() for c in type(exc).__mro__)
    if status in (401, 403) or "authentication" in names or "permissiondenied" in names:
        hint = f" (check {key_env})" if key_env else ""
        return GenerationError(f"{provider}: the API key was refused{hint}: {detail}")
    if status == 429 or "ratelimit" in names or "resourceexhausted" in names:
        tries = f" after {retries} retries" if retries is not None else ""
        return GenerationError(f"{provider}: rate limited{tries}; wait and try again, or "
                               f"raise generate.max_retries: {detail}")
    if isinstance(exc, TimeoutError) or "timeout" in names or status in (408, 504):
        after = f" after {timeout:g}s" if timeout else ""
        return GenerationError(f"{provider}: the request timed out{after}; raise "
                               f"generate.timeout or try again")
    if status == 413 or _TOO_LARGE.search(detail):
        return GenerationError(f"{provider}: the input is too large for the model; lower "
                               f"generate.k, max_context_chars or max_images: {detail}")
    if status == 404:
        return GenerationError(f"{provider}: model or endpoint not found: {detail}")
    if "connection" in names or isinstance(exc, ConnectionError):
        return GenerationError(f"{provider}: cannot reach the server: {detail}")
    return GenerationError(f"{provider}: {type(exc).__name__}: {detail}")


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
