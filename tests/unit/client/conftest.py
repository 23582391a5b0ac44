"""Fixtures for the client tests: the fake API server, a refused port, a fake clock, a clean environment."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.unit.client.fakeapi import FakeApi, FakeTime, serve


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server, thread = serve()
    yield server.api
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL on a port that is bound but not listening: connecting is refused at once, and no one can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LRT_URL", "LRT_AUTH", "LRT_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
