"""A tiny real HTTP server on 127.0.0.1 that plays the task API's contract, scripted per test."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TASK_ID = "0f8e2b7a-4c1d-4e5f-9a6b-7c8d9e0f1a2b"
CREATED_AT = "2025-01-02T03:04:05.678Z"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def task_reply(
    status: str,
    *,
    task: str = "multiply",
    task_id: str = TASK_ID,
    retry_after: int | None = None,
    hint: float | None = None,
    **fields: Any,
) -> Reply:
    """A task as the API shows it: 202 with Retry-After while pending (`hint`: the body's finer retry_after), 200
    once finished."""
    pending = status in ("queued", "running")
    body: dict[str, Any] = {
        "task_id": task_id,
        "task": task,
        "status": status,
        "created_at": CREATED_AT,
        "started_at": None if status == "queued" else "2025-01-02T03:04:06.000Z",
    }
    if pending:
        body["progress"] = 0.0
    else:
        body["finished_at"] = "2025-01-02T03:04:09.000Z"
    body.update(fields)
    if hint is not None:
        body["retry_after"] = hint
    headers = {"Retry-After": str(retry_after)} if pending and retry_after is not None else {}
    return Reply(202 if pending else 200, body, headers)


def problem_reply(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Reply(status, body, headers or {})


class FakeApi:
    """Replies to each (method, path) from its script in order, repeating the last reply; 500 when unscripted."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests: list[Seen] = []
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self._scripts[(method, path)] = list(replies)

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            replies = self._scripts.get((seen.method, seen.path))
            if not replies:
                return problem_reply(500, "Unscripted", f"no reply scripted for {seen.method} {seen.path}")
            return replies.pop(0) if len(replies) > 1 else replies[0]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
        reply = self.server.api.answer(seen)
        payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        data = payload.encode() if reply.body is not None else b""
        self.send_response(reply.status)
        content_type = "application/problem+json" if reply.status >= 400 else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class _Server(ThreadingHTTPServer):
    api: FakeApi


def serve() -> tuple[_Server, threading.Thread]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = FakeApi(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    return server, thread


class FakeTime:
    """Sleeps that only move a clock forward, and record themselves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now
