"""The local stack's stdout, one whole line at a time.

The functions log one JSON document per line (Powertools' Logger, EMF metrics), and CloudWatch receives each
execution environment's lines apart. Here the API's invocations share one process and every process shares one
stdout: `print()` writes a line's text and its newline separately, so two threads' lines could end up on one
line, and a block-buffered pipe (`make run | tee`) flushes at 8 KB whatever the line boundaries.
"""

from __future__ import annotations

import io
import threading
from typing import TextIO


class WholeLines(io.TextIOBase):
    """Writes reach `stream` as whole lines of one thread, flushed as they complete; a thread's unfinished line
    waits for its newline (or flush())."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        pending: str = getattr(self._pending, "text", "") + text
        lines, newline, rest = pending.rpartition("\n")
        self._pending.text = rest
        if newline:
            self._emit(lines + newline)
        return len(text)

    def flush(self) -> None:
        rest: str = getattr(self._pending, "text", "")
        self._pending.text = ""
        self._emit(rest)

    def _emit(self, text: str) -> None:
        with self._lock:
            if text:
                self._stream.write(text)
            self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def buffer(self) -> object:  # bytes written there go straight out, as to any text stream's buffer
        return self._stream.buffer

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding


def line_buffered(stream: TextIO) -> None:
    """A child process's own stdout: written a whole line at a time, so that its lines and the other processes'
    do not cut into each other. Not write-through, as PYTHONUNBUFFERED makes it: print() would then write a
    line's text and its newline in two system calls."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(line_buffering=True, write_through=False)
