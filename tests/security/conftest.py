"""A loopback HTTP server standing in for a provider (or an attacker's endpoint): it answers
OpenAI-style chat completions with a fixed reply and records every request it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Recorder:
    url: str
    reply: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def seen(self, text: str) -> bool:
        """Whether ``text`` appeared in any received request (headers or body)."""
        return any(text in json.dumps(r) for r in self.requests)


@pytest.fixture()
def endpoint() -> Iterator[Recorder]:
    recorder = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorder.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body.decode()}
            )
            payload = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": recorder.reply},
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
