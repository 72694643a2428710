"""Download an http(s) URL into a Blob, guarding against SSRF.

Before any connection the host is resolved and every address checked: loopback, private,
link-local (cloud metadata at 169.254.169.254), reserved, multicast and unspecified
addresses are refused unless ``ingest.allow_private_urls``. The request then goes to the
address that was checked (not a second DNS answer), and redirects are followed by hand so
that every hop passes the same check.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from email.message import Message
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import httpx

from ..config import IngestSettings
from ..errors import BlockedURLError, IngestError
from ..types import Blob
from .sources import read_stream

__all__ = ["MAX_REDIRECTS", "blocked_reason", "check_url", "fetch_url"]

MAX_REDIRECTS = 5
_USER_AGENT = "mmrag/0.1 (+https://github.com/mmrag)"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _one_line(value: object) -> str:
    return (" ".join(str(value).split()) or type(value).__name__)[:300]


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag in ("is_loopback", "is_private", "is_link_local", "is_reserved", "is_multicast",
                 "is_unspecified"):
        if getattr(ip, flag):
            return flag[3:].replace("_", "-")
    if not ip.is_global:  # e.g. 100.64.0.0/10 carrier-grade NAT
        return "non-global"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise IngestError(host, f"cannot resolve host {host!r}: {_one_line(exc)}") from None
    out: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if addr not in out:
            out.append(addr)
    return out


def check_url(url: str, settings: IngestSettings) -> list[IPAddress]:
    """Validate scheme and host of ``url`` and return the addresses it may connect to.

    Raises :class:`BlockedURLError` when any resolved address is not public and private
    URLs are not allowed, :class:`IngestError` for malformed URLs or DNS failures.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise IngestError(url, f"malformed URL: {_one_line(exc)}") from None
    if parts.scheme not in ("http", "https"):
        raise IngestError(url, f"unsupported URL scheme {parts.scheme!r}")
    host = parts.hostname
    if not host:
        raise IngestError(url, "URL has no host")
    try:
        addrs = _resolve(host, port)
    except IngestError as exc:
        raise IngestError(url, exc.reason) from None
    if not addrs:
        raise IngestError(url, f"cannot resolve host {host!r}")
    if not settings.allow_private_urls:
        for addr in addrs:
            kind = blocked_reason(addr)
            if kind:
                raise BlockedURLError(
                    url, f"refusing private/loopback address {addr}; "
                         "set ingest.allow_private_urls to allow")
    return addrs


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~0.1 s; a folder of URLs should pay it once.
    return httpx.create_ssl_context(trust_env=True)


def _filename(resp: httpx.Response, url: str) -> str:
    disposition = resp.headers.get("content-disposition")
    if disposition:
        msg = Message()
        msg["content-disposition"] = disposition
        name = msg.get_filename()
        if name:
            return PurePosixPath(name.replace("\\", "/")).name
    path = unquote(urlsplit(url).path)
    name = PurePosixPath(path).name
    return name or (urlsplit(url).hostname or "download")


def _pinned(url: str, addr: IPAddress) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """Target the checked address while keeping Host header and TLS name of ``url``."""
    original = httpx.URL(url)
    host_header = original.netloc.decode("ascii")
    target = original.copy_with(host=str(addr))
    extensions = {}
    if original.scheme == "https":
        extensions["sni_hostname"] = original.raw_host.decode("ascii")
    return target, {"Host": host_header}, extensions


def fetch_url(url: str, settings: IngestSettings, spool: bool = False) -> Blob:
    """GET ``url`` (≤ ``MAX_REDIRECTS`` redirects, ≤ ``ingest.max_bytes``) into a Blob.

    ``Blob.uri`` is the URL as given; ``metadata["final_url"]`` where redirects led.
    ``spool=True`` (the ingest resolver) lets audio and video reach
    ``ingest.max_media_bytes`` and puts a large body in a temporary file that the Blob
    deletes with itself (see :func:`~mmrag.ingest.sources.read_stream`); without it the
    body is held in memory, for callers that want the bytes.
    """
    current = url
    timeout = httpx.Timeout(settings.url_timeout)
    headers = {"User-Agent": _USER_AGENT, "Accept": "*/*"}
    with httpx.Client(timeout=timeout, follow_redirects=False, verify=_ssl_context(),
                      trust_env=True) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            addrs = check_url(current, settings)
            extra: dict[str, str] = {}
            ext: dict[str, str] = {}
            if settings.allow_private_urls:
                target = httpx.URL(current)
            else:
                target, extra, ext = _pinned(current, addrs[0])
            try:
                request = client.build_request("GET", target, headers={**headers, **extra},
                                               extensions=ext)
                resp = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise IngestError(url, f"timed out after {settings.url_timeout:g}s "
                                       "(ingest.url_timeout)") from None
            except httpx.ConnectError as exc:
                raise IngestError(url, f"cannot connect: {_one_line(exc)}") from None
            except httpx.HTTPError as exc:
                raise IngestError(url, f"request failed: {_one_line(exc)}") from None
            try:
                if resp.is_redirect:
                    location = resp.headers.get("location")
                    if not location:
                        raise IngestError(url, f"HTTP {resp.status_code} redirect without "
                                               "a Location header")
                    current = str(httpx.URL(current).join(location))
                    continue
                if resp.status_code >= 400:
                    raise IngestError(url, f"HTTP {resp.status_code} "
                                           f"{_one_line(resp.reason_phrase or 'error')}")
                name = _filename(resp, current)
                ctype = resp.headers.get("content-type", "")
                blob = read_stream(resp.iter_bytes(), url, name, settings,
                                   declared=_declared(resp), spool=spool)
            except httpx.TimeoutException:
                raise IngestError(url, f"timed out after {settings.url_timeout:g}s "
                                       "(ingest.url_timeout)") from None
            except httpx.HTTPError as exc:
                raise IngestError(url, f"download failed: {_one_line(exc)}") from None
            finally:
                resp.close()
            if blob.mime == "text/plain" and "markdown" in ctype:
                blob.mime = "text/markdown"
            blob.metadata.update(final_url=current, content_type=ctype, size=blob.size)
            return blob
    raise IngestError(url, f"too many redirects (more than {MAX_REDIRECTS})")


def _declared(resp: httpx.Response) -> int | None:
    """The Content-Length a server announced, checked against the cap before reading."""
    value = resp.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
