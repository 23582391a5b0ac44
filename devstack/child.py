"""A function run in a spawned child process of the local stack: started once it says it is ready, stopped when
told, terminated when it does not stop. The AWS emulator, the worker's invocations and the API's execution
environments each run in one."""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devstack.output import line_buffered

logger = logging.getLogger(__name__)

# The child's target is called as target(*args, ready, stop): it sends one value on `ready` once it serves, and
# returns soon after `stop` (a StopSignal) is set.
Target = Callable[..., None]


class StopSignal:
    """The parent's request that its child stop, as the child sees it: the read end of a pipe whose other end the
    parent closes to ask (or closes by dying). Set once the parent has closed it.

    Not a multiprocessing Event: a child killed while it waited on one (SIGKILL, the OOM killer, a SIGTERM sent to
    the whole process group) stays counted among the Event's sleepers, and the parent's next set() then waits for
    it to wake, forever. Closing a pipe never waits for the other end."""

    def __init__(self, reader: multiprocessing.connection.Connection) -> None:
        self._reader = reader

    def is_set(self) -> bool:
        return self._reader.poll()

    def wait(self, timeout: float | None = None) -> bool:
        """True once stopping is asked (or the parent is gone), False when `timeout` seconds pass first."""
        return self._reader.poll(timeout)


def start_function_process(environment: Mapping[str, str], task_modules: Iterable[str], log_level: int) -> None:
    """What a child that runs the functions does first: the functions' variables in os.environ, logs on stdout in
    whole lines, the test-only task modules imported."""
    line_buffered(sys.stdout)
    os.environ.update(environment)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    for module in task_modules:
        importlib.import_module(module)


class StartFailed(RuntimeError):
    """A child that did not get ready: `killed` when a signal from outside ended it (SIGKILL: the OOM killer, a
    stray kill), else it failed on its own (an error in its start-up, named in the message)."""

    def __init__(self, message: str, *, killed: bool = False) -> None:
        super().__init__(message)
        self.killed = killed


@dataclass(frozen=True)
class ChildError:
    """What a child sends on `ready` instead of its value when it fails: its error, in one line."""

    error: str


_OUTSIDE_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _run_child(target: Target, *args: Any) -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent stops its children itself, in order (the
    # API before the functions behind it, the emulator last), so that no invocation is cut short and no call
    # finds the emulator gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready: multiprocessing.connection.Connection = args[-2]
    try:
        target(*args)
    except BaseException as error:
        # Read by the parent only while the child starts; later, nobody listens.
        with contextlib.suppress(OSError):
            ready.send(ChildError(traceback.format_exception_only(error)[-1].strip()))
        raise


class ChildProcess:
    def __init__(
        self,
        target: Target,
        args: tuple[Any, ...],
        *,
        name: str,
        description: str,
        startup_timeout: float,
        stop_timeout: float,
    ) -> None:
        # spawn, not fork: the parent runs threads, and a forked child would inherit their locks.
        self._context = multiprocessing.get_context("spawn")
        self._stop_writer: multiprocessing.connection.Connection | None = None
        self._stop_lock = threading.Lock()  # the supervisor and the stack's stop() may both ask
        self._target = target
        self._args = args
        self._name = name
        self._description = description
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._process: multiprocessing.process.BaseProcess | None = None
        self._receiver: multiprocessing.connection.Connection | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def sentinel(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self._description} was not launched")
        return self._process.sentinel

    @property
    def exitcode(self) -> int | None:
        """The child's exit code once it has ended (asked once its sentinel is ready), None while it runs."""
        # One read: stop(), on another thread, may let go of the process meanwhile.
        process = self._process
        if process is None:
            return None
        if process.exitcode is None:
            # Its sentinel is ready a moment before its end can be reaped.
            process.join(timeout=0.1)
        return process.exitcode

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> Any:
        """Start the child; what it sent on `ready`. StartFailed (the child stopped) when it does not get there."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the child without waiting for it: several children start side by side, then wait_ready().
        StartFailed when it ends before it has read what it needs (killed as it started)."""
        self._receiver, sender = self._context.Pipe(duplex=False)
        stop_reader, self._stop_writer = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_run_child,
            args=(self._target, *self._args, sender, StopSignal(stop_reader)),
            name=self._name,
            daemon=True,
        )
        try:
            self._process.start()
        except OSError as error:  # writing the child its arguments: it ended before it read them
            self._process = None
            raise StartFailed(f"{self._description} ended as it started ({error})", killed=True) from error
        finally:
            sender.close()  # the child holds its own copies of both ends it uses
            stop_reader.close()

    def wait_ready(self) -> Any:
        """What the child sent once ready; StartFailed (the child stopped) when it does not get there."""
        receiver = self._receiver
        if receiver is None:
            raise RuntimeError(f"{self._description} was not launched")
        try:
            if not receiver.poll(self._startup_timeout):
                raise StartFailed(f"{self._description} did not start in {self._startup_timeout:g} s")
            try:
                value = receiver.recv()
            except (EOFError, OSError, pickle.UnpicklingError) as error:  # it ended before or while it answered
                raise self._ended_while_starting() from error
            if isinstance(value, ChildError):
                raise StartFailed(f"{self._description} failed to start: {value.error}")
            return value
        except BaseException:
            self.stop()
            raise
        finally:
            receiver.close()
            self._receiver = None

    def _ended_while_starting(self) -> StartFailed:
        process = self._process  # one read, as in exitcode
        if process is not None:
            process.join(timeout=5)  # its pipe closes a moment before it can be reaped
        code = process.exitcode if process is not None else None
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return StartFailed(
                f"{self._description} was killed by {name} while starting", killed=-code in _OUTSIDE_SIGNALS
            )
        return StartFailed(f"{self._description} exited with code {code} while starting")

    def request_stop(self) -> None:
        """Tell the child to stop without waiting: several children stop side by side, then stop() each."""
        with self._stop_lock:
            writer, self._stop_writer = self._stop_writer, None
        if writer is not None:
            writer.close()

    def terminate(self) -> None:
        """Stop the child now (SIGTERM), without asking it first."""
        self.request_stop()
        process = self._process  # one read: another thread may stop the child too
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.terminate()
        process.join(timeout=5)
        self._process = None

    def stop(self) -> None:
        process = self._process  # one read, as in terminate
        if process is None:
            return
        self.request_stop()
        process.join(timeout=self._stop_timeout)
        if process.is_alive():
            logger.warning("%s did not stop in %g s; terminating it", self._description, self._stop_timeout)
        self.terminate()
