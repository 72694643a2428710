"""Who is asking, and may they: API keys checked per request.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. With no key in
the server's ``keys.json`` the server is open (and :func:`mmrag.server.serve` then only
listens on loopback); once one exists every route but ``/health``, the docs and the web
page needs one. A missing or unknown key is a 401 ``unauthorized``; a key without the
scope or the collection a request needs is a 403 ``forbidden``. Each authenticated request
also takes a token from its caller's request rate (:mod:`.quotas`; 429 when out).

Routes declare what they need with :func:`require` (``Depends(require("write"))``), which
also checks the ``{collection}`` path parameter; routes whose collection comes from
elsewhere (a media id, a job) call :meth:`Principal.require` themselves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from ..errors import ConfigError
from .errors import ApiError
from .ids import check_collection
from .keys import ApiKey, Scope
from .state import server_state

__all__ = ["Principal", "authenticate", "caller", "is_loopback", "require"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mmrag"'}


@dataclass(slots=True, frozen=True)
class Principal:
    """The caller: a key, or ``None`` on an open server (no keys: everything allowed)."""

    key: ApiKey | None

    def allows(self, scope: Scope, collection: str | None = None) -> bool:
        return self.key is None or self.key.allows(scope, collection)

    def require(self, scope: Scope, collection: str | None = None) -> None:
        if not self.allows(scope, collection):
            where = f" on collection {collection!r}" if collection else ""
            raise ApiError(f"this API key lacks {scope!r} access{where}", status=403,
                           code="forbidden")


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


def authenticate(request: Request) -> Principal:
    """The caller of ``request``; 401 when keys exist and none (or a wrong one) is sent,
    429 when the caller is over its request rate (:mod:`.quotas`). Decided once per
    request (a route and its dependency may both ask), so a request costs one token."""
    cached = getattr(request.state, "mmrag_principal", None)
    if cached is not None:
        return cached
    principal = _identify(request)
    server_state(request).quotas.request(caller(request, principal))
    request.state.mmrag_principal = principal
    return principal


def caller(request: Request, principal: Principal) -> str:
    """Whom quotas count against: the key, or the client address on a keyless server."""
    if principal.key is not None:
        return f"key:{principal.key.id}"
    return f"addr:{request.client.host if request.client else '?'}"


def _identify(request: Request) -> Principal:
    state = server_state(request)
    try:
        keys_exist = bool(state.keys)
    except ConfigError as exc:  # a corrupt keys.json closes the server rather than opens it
        raise ApiError(str(exc), status=500, code="key_store_error") from None
    if not keys_exist:
        return Principal(None)
    token = _token(request)
    key = state.keys.find(token) if token is not None else None
    if key is None:
        # Failed attempts count against the address, so guessing keys is throttled too.
        state.quotas.request(caller(request, Principal(None)))
    if token is None:
        raise ApiError("an API key is required: send 'Authorization: Bearer <key>' or "
                       "'X-API-Key: <key>'", status=401, code="unauthorized",
                       headers=_CHALLENGE)
    if key is None:
        raise ApiError("invalid API key", status=401, code="unauthorized", headers=_CHALLENGE)
    return Principal(key)


def require(scope: Scope, collection: str | None = None
            ) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting callers with ``scope`` on the request's ``{collection}`` (or
    on ``collection`` when given, for routes that always serve one)."""

    async def dependency(request: Request) -> Principal:  # async: no thread hop per request
        principal = authenticate(request)
        name = collection or request.path_params.get("collection")
        if name is not None:
            check_collection(name)
        principal.require(scope, name)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.x``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
