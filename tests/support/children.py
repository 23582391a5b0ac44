"""Targets of devstack.child.ChildProcess for its tests (a spawned child imports its target by module name)."""

from __future__ import annotations

import multiprocessing.connection
import os

from devstack.child import StopSignal


def wait_for_stop(ready: multiprocessing.connection.Connection, stop: StopSignal) -> None:
    """Ready at once; then waits, as the AWS emulator does, until asked to stop."""
    ready.send(os.getpid())
    stop.wait()
