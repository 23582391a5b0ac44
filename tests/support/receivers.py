"""A webhook receiver for tests: an HTTP(S) server on 127.0.0.1 (never another address) that records each POST and
answers it with the next status it was given (then 200)."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Sequence
from typing import Any

# A redirect points here: the sender must not follow it (and the tests' connection guard would fail it if it did).
REDIRECT_TARGET = "http://10.0.0.1/elsewhere"


class Receiver:
    def __init__(self, statuses: Sequence[int] = (), tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        statuses_left = list(statuses)
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = statuses_left.pop(0) if statuses_left else 200
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", REDIRECT_TARGET)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.errors: list[Any] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A refused TLS handshake is what some tests expect: noted here rather than printed by socketserver.
        self.server.handle_error = lambda request, address: self.errors.append(address)  # type: ignore[method-assign]
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hooks/tasks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
