"""A tiny real HTTP server on loopback that speaks a provider's streaming wire format.

The official SDKs run unchanged against it (their ``base_url`` points here), so the tests
cover the real request encoding, SSE parsing, status-code handling and timeouts, with no
network and no mocks inside the SDK. Each request is recorded; replies are scripted.

    with FakeServer() as server:
        server.script(Reply.error(429, {...}), Reply.sse(openai_events(["Hel", "lo"])))
        ... client(base_url=server.url) ...
        server.requests[-1].json
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mmrag.generate.base import Message, Part

__all__ = ["SYSTEM", "FakeServer", "Recorded", "Reply", "anthropic_events", "closed_url",
           "gemini_events", "openai_events", "sample_chat"]

SYSTEM = "Answer from the numbered sources only."


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)  # written and flushed one by one
    delay: float = 0.0  # seconds before answering: longer than the client timeout = timeout

    @classmethod
    def sse(cls, events: list[bytes]) -> Reply:
        return cls(200, {"content-type": "text/event-stream"}, events)

    @classmethod
    def error(cls, status: int, body: dict[str, Any], **headers: str) -> Reply:
        return cls(status, {"content-type": "application/json",
                            **{k.replace("_", "-"): v for k, v in headers.items()}},
                   [json.dumps(body).encode()])

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        return cls(200, {"content-type": "text/event-stream"}, [], delay=seconds)


class FakeServer:
    """Threaded HTTP server on 127.0.0.1 with scripted replies (last one repeats)."""

    def __init__(self, default: Reply | None = None):
        self.requests: list[Recorded] = []
        self._replies: deque[Reply] = deque()
        self._default = default or Reply.error(500, {"error": "no reply scripted"})
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def next_reply(self) -> Reply:
        return self._replies.popleft() if self._replies else self._default

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # releases handlers still sleeping in a slow reply
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append(Recorded(self.command, self.path,
                                            {k.lower(): v for k, v in self.headers.items()},
                                            body))
            reply = server.next_reply()
            if reply.delay and server._stop.wait(reply.delay):
                return
            try:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("connection", "close")
                self.end_headers()
                for chunk in reply.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def openai_events(deltas: list[str], model: str = "fake-model") -> list[bytes]:
    """chat.completion.chunk events, one per delta, then ``[DONE]``."""
    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        return _sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                     "model": model, "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": finish}]})

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": d}, None) for d in deltas]
    return [*events, chunk({}, "stop"), b"data: [DONE]\n\n"]


def anthropic_events(deltas: list[str], model: str = "fake-model") -> list[bytes]:
    """The Messages API event sequence around one text block."""
    usage = {"input_tokens": 5, "output_tokens": 1}
    start = {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}
    events = [_sse(start, "message_start"),
              _sse({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}, "content_block_start")]
    events += [_sse({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": d}}, "content_block_delta")
               for d in deltas]
    return [*events,
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                     "stop_sequence": None},
                  "usage": {"output_tokens": len(deltas)}}, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop")]


def gemini_events(deltas: list[str]) -> list[bytes]:
    """streamGenerateContent?alt=sse chunks, the last one with a finish reason."""
    out = []
    for i, d in enumerate(deltas):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": d}]},
                                "index": 0}
        if i == len(deltas) - 1:
            cand["finishReason"] = "STOP"
        out.append(f"data: {json.dumps({'candidates': [cand]})}\r\n\r\n".encode())
    return out


def sample_chat(image: bytes, mime: str = "image/webp", url: str = "") -> list[Message]:
    """System prompt + one user turn: a source, its image, the question."""
    user = [Part.of_text("[1] chart.png, page 1:\nRevenue rose in Q3."),
            Part.of_image(image, mime, url=url), Part.of_text("Question: what rose?")]
    return [Message("system", [Part.of_text(SYSTEM)]), Message("user", user)]


def closed_url() -> str:
    """A loopback URL nothing listens on (the port was just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
