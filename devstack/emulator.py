"""The AWS emulator: moto's server in a process of its own, on 127.0.0.1 and a free port.

A process of its own, not a thread: moto, the handlers and the API emulation are all CPU-bound Python, and in
one process they would queue for one interpreter lock while the machine's other cores idle.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
from typing import Any

STARTUP_TIMEOUT_SECONDS = 30


def _speed_up_moto() -> None:
    # moto's server lists its own package directory on every request to recognise service names in the
    # host (moto.backends.list_of_moto_modules): a third of its time per request. The list never changes.
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def _serve(host: str, ready: multiprocessing.connection.Connection, stop: Any) -> None:
    # werkzeug otherwise logs every request at INFO: time spent, and noise in the stack's output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _speed_up_moto()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    ready.send(server.get_host_and_port())
    stop.wait()
    server.stop()


class MotoProcess:
    """`with MotoProcess() as moto: moto.endpoint_url` — stopped, and its port freed, on exit."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        # spawn, not fork: the parent runs threads, and a forked child would inherit their locks.
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._process: multiprocessing.process.BaseProcess | None = None
        self.endpoint_url = ""

    def start(self) -> MotoProcess:
        receiver, sender = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_serve, args=(self._host, sender, self._stop), name="aws-emulator", daemon=True
        )
        self._process.start()
        if not receiver.poll(STARTUP_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("the AWS emulator (moto) did not start")
        host, port = receiver.recv()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._stop.set()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._process = None

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
