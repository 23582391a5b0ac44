"""devstack.child: the local stack's child processes (the AWS emulator, the worker's and the API functions'
execution environments) stop when asked, and a child that dies on its own never hangs the stack that stops it."""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import threading

from devstack.child import ChildProcess
from tests.support.children import wait_for_stop


def _child() -> ChildProcess:
    return ChildProcess(
        wait_for_stop, (), name="test-child", description="a test child", startup_timeout=30, stop_timeout=10
    )


def _ended(child: ChildProcess, timeout: float = 10) -> bool:
    return bool(multiprocessing.connection.wait([child.sentinel], timeout=timeout))


def test_a_child_asked_to_stop_returns_on_its_own() -> None:
    # GIVEN a child waiting for its stop signal
    child = _child()
    child.start()
    try:
        # WHEN asked to stop
        child.request_stop()

        # THEN it ends by itself (exit code 0: not terminated)
        assert _ended(child)
        assert child.exitcode == 0
    finally:
        child.stop()


def test_stopping_a_child_killed_while_it_waited_does_not_wait_for_it() -> None:
    # GIVEN a child killed from outside while it waited for its stop signal (the OOM killer, a SIGTERM sent to the
    # whole process group); with a multiprocessing Event as the signal, its parent's set() then waited forever
    child = _child()
    pid = child.start()
    os.kill(pid, signal.SIGKILL)
    assert _ended(child)

    # WHEN the parent stops it
    stopping = threading.Thread(target=child.stop, daemon=True)
    stopping.start()

    # THEN stop() returns
    stopping.join(timeout=10)
    assert not stopping.is_alive()
