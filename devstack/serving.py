"""A WSGI application served from a thread on werkzeug's stock threaded server, as moto's own ThreadedMotoServer and
samcli's `start-api` serve theirs."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class HTTP11RequestHandler(WSGIRequestHandler):
    # werkzeug 3.1 answers `Connection: close` whatever this says (a connection and a thread per request); waitress,
    # which keeps connections, measured within noise of it here (16 clients, alternating: 24.6/28.3 against 20.9/35.7).
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request from both servers would drown the functions' logs."""


class ThreadedServer:
    """`ThreadedServer(app, host, port).start()`; `url`; `stop()`. Port 0: any free port."""

    def __init__(self, app: Any, host: str, port: int, handler: type[WSGIRequestHandler] = HTTP11RequestHandler):
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self.host = host
        self.port = self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever(): forever, had it never started
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
