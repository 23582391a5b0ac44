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


class _StoppedByAnotherThreadWhileJoined:
    """The child's process as another thread's stop() leaves it: that stop ends it and lets go of it while this
    thread joins it."""

    def __init__(self, child: ChildProcess, process: multiprocessing.process.BaseProcess) -> None:
        self._child, self._process = child, process

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    def join(self, timeout: float | None = None) -> None:
        self._process.terminate()  # the other thread's stop(), in the middle of this thread's join
        self._process.join(timeout=5)
        self._child._process = None


def test_the_exit_code_read_while_another_thread_stops_the_child_is_an_answer_not_a_crash() -> None:
    # GIVEN a running child whose stop() by another thread lands while this thread waits to reap it (the local stack
    # stopping on SIGTERM while its environment pool's watcher sees a replacement end as it starts)
    child = _child()
    child.start()
    process = child._process
    assert process is not None
    child._process = _StoppedByAnotherThreadWhileJoined(child, process)  # type: ignore[assignment]
    try:
        # WHEN this thread asks for its exit code
        code = child.exitcode

        # THEN it gets one (terminated: SIGTERM), rather than an AttributeError from the process let go meanwhile
        assert code == -signal.SIGTERM
    finally:
        process.terminate()
        process.join(timeout=5)
