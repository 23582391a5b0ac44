"""The local stack's stdout keeps each JSON log line whole when invocations print side by side."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from devstack.output import WholeLines
from tests.support.threads import side_by_side

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    """A stream whose writes can be interrupted, as a real stdout's are while it flushes to its file."""

    def write(self, text: str) -> int:
        return super().write(text)


def test_lines_printed_side_by_side_stay_whole() -> None:
    sink = Terminal()
    stream = WholeLines(sink)

    def invocation(n: int) -> None:
        for i in range(300):
            print(json.dumps({"invocation": n, "line": i, "padding": "x" * (i % 50)}), file=stream)

    side_by_side(invocation, 6)  # a switch between print's two writes, as often as the interpreter allows

    documents = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert len(documents) == 6 * 300
    for n in range(6):
        assert [d["line"] for d in documents if d["invocation"] == n] == list(range(300))


def test_an_unfinished_line_waits_for_its_newline_or_a_flush() -> None:
    sink = io.StringIO()
    stream = WholeLines(sink)

    stream.write("started ")
    assert sink.getvalue() == ""
    stream.write("and done\nnext")
    assert sink.getvalue() == "started and done\n"
    stream.flush()
    assert sink.getvalue() == "started and done\nnext"


_PROCESSES_SIDE_BY_SIDE = textwrap.dedent(
    """
    import json, multiprocessing, sys
    from devstack.output import line_buffered

    def child(n, barrier):
        line_buffered(sys.stdout)
        barrier.wait()
        for i in range(3000):
            print(json.dumps({"process": n, "line": i, "padding": "x" * 200}))

    if __name__ == "__main__":
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(2)
        children = [context.Process(target=child, args=(n, barrier)) for n in range(2)]
        for process in children:
            process.start()
        for process in children:
            process.join()
    """
)


def test_processes_printing_at_once_keep_their_lines_whole(tmp_path: Path) -> None:
    """As the worker processes print beside each other into one stdout, even with PYTHONUNBUFFERED set."""
    script = tmp_path / "side_by_side.py"
    script.write_text(_PROCESSES_SIDE_BY_SIDE)
    output = tmp_path / "stdout.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    with output.open("w") as stdout:
        subprocess.run([sys.executable, str(script)], stdout=stdout, env=env, check=True, timeout=60)

    documents = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(documents) == 2 * 3000
