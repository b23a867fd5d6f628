"""One fake OpenAI-compatible chat server for the tests: a real HTTP server on 127.0.0.1 (a thread of
the test process) whose replies a test scripts with one function of the request body."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Respond = Callable[..., "dict[str, Any] | str"]
"""A request body (and, with ``with_client``, the client's ``(host, port)``) -> the response
payload, or a string: the assistant's content."""


def completion(
    content: str | None = "",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt: int = 11,
    completion_tokens: int = 7,
    model: str = "fake",
) -> dict[str, Any]:
    """A chat-completion payload as OpenAI's API returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "message": message,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
    }


def call(name: str, args: dict[str, Any], cid: str = "c1") -> dict[str, Any]:
    """One tool call of an assistant message."""
    return {
        "id": cid,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


@dataclass
class FakeOpenAI:
    """A running fake server: ``url`` is its ``/v1`` base, ``requests`` the bodies it received."""

    url: str
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def stop(self) -> None:
        """Stop answering (a test of what happens when the model goes away)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextmanager
def fake_openai(
    respond: Respond, models: tuple[str, ...] = ("fake",), *, with_client: bool = False
) -> Iterator[FakeOpenAI]:
    """Serve ``respond`` as ``POST /v1/chat/completions`` (and ``GET /v1/models``) until the block
    ends. A client that went away before its reply is no error."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._send({"object": "list", "data": [{"id": m, "object": "model"} for m in models]})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            payload = respond(body, self.client_address) if with_client else respond(body)
            self._send(completion(payload) if isinstance(payload, str) else payload)

        def _send(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client died waiting (a test that kills it)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    fake = FakeOpenAI(f"http://127.0.0.1:{port}/v1", port, received, server)
    try:
        yield fake
    finally:
        fake.stop()
