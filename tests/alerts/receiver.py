"""A real local HTTP receiver for alert deliveries: verifies Standard Webhooks signatures with the library's own
Webhook.verify, records what arrived, and answers with a status the test chooses (or stalls, for timeouts)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int
    at: float = 0.0  # time.monotonic() when it was read (benchmarks)

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[], int] = lambda: 200
    stall: threading.Event | None = None  # when given, each request waits for it (up to 30 s) before answering
    arrivals: int = 0  # requests read so far, counted before any stall (`requests` lists them once answered)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.answered < 300]


@contextmanager
def receiving(secret: str = SECRET) -> Iterator[Receiver]:
    receiver = Receiver()
    hook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            at = time.monotonic()
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = False
            if "webhook-id" in headers:
                try:
                    hook.verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
            with receiver.lock:
                receiver.arrivals += 1
            if receiver.stall is not None:
                receiver.stall.wait(30)
            status = receiver.answer()
            with receiver.lock:
                receiver.requests.append(Received(self.path, headers, body, verified, status, at))
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.stall is not None:
            receiver.stall.set()
        server.shutdown()
        server.server_close()
