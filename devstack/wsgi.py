"""A small WSGI server with persistent HTTP/1.1 connections, for the API emulation and moto's server app.

werkzeug's development server (what `app.run()`, samcli's `LocalApigwService.run()` and moto's
`ThreadedMotoServer` use) answers every request with `Connection: close`: each request of a client costs a
new TCP connection and a new thread on the server, and botocore's and the load's clients reconnect for every
call. Here a connection is served by one thread for as long as its client keeps it, the request body is always
read whole before the application runs (so the next request on the connection starts where it should), and
the response goes out in one write with its Content-Length.

The environ holds what werkzeug's server puts there (Flask, samcli and moto read it through werkzeug).
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

logger = logging.getLogger(__name__)

Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]
EnvironHook = Callable[[Environ, list[tuple[str, str]]], None]

MAX_LINE = 65536
MAX_HEADERS = 200
IDLE_TIMEOUT_SECONDS = 300.0
_NO_BODY_STATUSES = {204, 304}


class _Date:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._value = formatdate(now, usegmt=True)
            self._second = now
        return self._value


class BadRequest(Exception):
    pass


def _read_chunked(rfile: io.BufferedReader) -> bytes:
    body = bytearray()
    while True:
        size_line = rfile.readline(MAX_LINE)
        if not size_line:
            raise BadRequest("truncated chunked body")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers, up to the blank line.
            while rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += rfile.read(size)
        rfile.readline(MAX_LINE)


class WSGIServer:
    """`server = WSGIServer(host, port, app)`; `server.serve_forever()` in a thread; `server.shutdown()`.

    max_concurrency: at most this many requests in the application at once (None: one per connection).
    environ_hook: called with each environ and the raw header list, to add keys of its own.
    """

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApp,
        *,
        max_concurrency: int | None = None,
        environ_hook: EnvironHook | None = None,
        name: str = "http",
    ) -> None:
        self.app = app
        self._socket = socket.create_server((host, port), backlog=512)
        self.host, self.server_port = self._socket.getsockname()[:2]
        self.server_address = (self.host, self.server_port)
        self._environ_hook = environ_hook
        # Tokens in a SimpleQueue: a semaphore in C (threading.Semaphore's Condition costs a lock dance per request).
        self._slots: queue.SimpleQueue[None] | None = None
        if max_concurrency:
            self._slots = queue.SimpleQueue()
            for _ in range(max_concurrency):
                self._slots.put(None)
        self._name = name
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._date = _Date()
        self._base_environ: Environ = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": "devstack",
            "SCRIPT_NAME": "",
            "SERVER_NAME": self.host,
            "SERVER_PORT": str(self.server_port),
        }

    # -- lifecycle

    def serve_forever(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._socket, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not selector.select(0.5):
                    continue
                try:
                    connection, address = self._socket.accept()
                except OSError:
                    continue
                with self._lock:
                    self._connections.add(connection)
                threading.Thread(
                    target=self._serve_connection, args=(connection, address), name=f"{self._name}-conn", daemon=True
                ).start()
        self._stopped.set()

    def shutdown(self) -> None:
        self._stopping.set()
        self._stopped.wait(5)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        self._socket.close()

    # -- one connection

    def _serve_connection(self, connection: socket.socket, address: Any) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.settimeout(IDLE_TIMEOUT_SECONDS)
        rfile: Any = connection.makefile("rb", buffering=65536)
        try:
            while not self._stopping.is_set():
                if not self._serve_request(connection, rfile, address):
                    break
        except (OSError, ValueError):
            pass  # the client went away, or the connection timed out idle
        finally:
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                rfile.close()
                connection.close()

    def _serve_request(self, connection: socket.socket, rfile: io.BufferedReader, address: Any) -> bool:
        """One request and its response; False when the connection is to be closed."""
        line = rfile.readline(MAX_LINE)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(MAX_LINE)
        if not line:
            return False
        try:
            method, target, version = line.decode("latin-1").split()
            headers = self._read_headers(rfile)
        except (ValueError, BadRequest):
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        environ = self._environ(method, target, version, headers, address)
        token = environ.get("HTTP_CONNECTION", "").lower()
        keep_alive = ("close" not in token) if version == "HTTP/1.1" else ("keep-alive" in token)
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
                body = _read_chunked(rfile)
                environ["CONTENT_LENGTH"] = str(len(body))
            else:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = rfile.read(length) if length > 0 else b""
                if len(body) != length:
                    return False
        except (ValueError, BadRequest):
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        environ["wsgi.input"] = io.BytesIO(body)
        connection.sendall(self._respond(environ, method, keep_alive))
        return keep_alive

    @staticmethod
    def _read_headers(rfile: io.BufferedReader) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            raw = rfile.readline(MAX_LINE)
            if raw in (b"\r\n", b"\n"):
                return headers
            if not raw:
                raise BadRequest("connection closed in the headers")
            if len(headers) >= MAX_HEADERS:
                raise BadRequest("too many headers")
            text = raw.decode("latin-1")
            if text[0] in " \t" and headers:  # an obsolete folded line continues the previous header
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}")
                continue
            name, _, value = text.partition(":")
            headers.append((name.strip(), value.strip()))

    def _environ(self, method: str, target: str, version: str, headers: list[tuple[str, str]], address: Any) -> Environ:
        path, _, query = target.partition("?")
        host = None
        if "://" in path:  # absolute form: the URL names the host
            _, _, rest = path.partition("://")
            host, slash, path = rest.partition("/")
            path = slash + path
        elif path.startswith("//"):
            path = "/" + path.lstrip("/")
        environ = dict(self._base_environ)
        environ.update(
            {
                "REQUEST_METHOD": method,
                # WSGI's "bytes in a str": the URL's bytes, percent-decoded, as latin-1 (werkzeug's encoding dance).
                "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
                "QUERY_STRING": query.encode("latin-1").decode("latin-1"),
                "REQUEST_URI": target,
                "RAW_URI": target,
                "REMOTE_ADDR": address[0] if isinstance(address, tuple) else "<local>",
                "REMOTE_PORT": address[1] if isinstance(address, tuple) else 0,
                "SERVER_PROTOCOL": version,
            }
        )
        for name, value in headers:
            if "_" in name:
                continue  # as werkzeug: X_Foo must not pass for X-Foo
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
        if host:
            environ["HTTP_HOST"] = host
        if self._environ_hook is not None:
            self._environ_hook(environ, headers)
        return environ

    def _respond(self, environ: Environ, method: str, keep_alive: bool) -> bytes:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, response_headers]
            return written.append

        try:
            if self._slots is None:
                body = self._call_app(environ, start_response)
            else:
                self._slots.get()
                try:
                    body = self._call_app(environ, start_response)
                finally:
                    self._slots.put(None)
        except Exception:
            logger.exception("error on %s %s", method, environ.get("REQUEST_URI"))
            started[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            body = b"Internal Server Error"
        if written:
            body = b"".join(written) + body
        if not started:
            logger.error("%s %s: the application did not start a response", method, environ.get("REQUEST_URI"))
            started[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            body = b"Internal Server Error"
        status, response_headers = started
        code = int(status[:3])
        lines = [f"HTTP/1.1 {status}"]
        has_length = False
        for name, value in response_headers:
            lower = name.lower()
            if lower == "content-length":
                has_length = True
            elif lower in ("connection", "transfer-encoding"):
                continue
            lines.append(f"{name}: {value}")
        if code in _NO_BODY_STATUSES or code < 200:
            body = b""
        elif not has_length:
            lines.append(f"Content-Length: {len(body)}")
        if method == "HEAD":
            body = b""
        lines.append(f"Date: {self._date()}")
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _call_app(self, environ: Environ, start_response: Callable[..., Any]) -> bytes:
        result = self.app(environ, start_response)
        try:
            return b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
