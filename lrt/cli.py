"""`lrt`: submit tasks, watch them and collect their results from a shell.

Exit codes: 0 done, 1 the task failed, 2 it was cancelled, 3 wait timed out, 4 the API refused the request,
5 the API could not be reached, 64 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO, get_args

from lrt.auth import AuthName
from lrt.client import DEFAULT_URL, DEFAULT_WAIT_TIMEOUT, TaskClient, TaskSnapshot, default_url
from lrt.errors import (
    ApiError,
    AuthNotConfigured,
    ConnectionFailed,
    InvalidInput,
    TaskCancelled,
    TaskFailed,
    WaitTimeout,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_TIMEOUT = 3
EXIT_REFUSED = 4
EXIT_UNREACHABLE = 5
EXIT_USAGE = 64  # sysexits' EX_USAGE: argparse's usual 2 means "cancelled" here
EXIT_INTERRUPTED = 130
AUTH_CHOICES: tuple[AuthName, ...] = get_args(AuthName)


class UsageError(Exception):
    """A mistake in the command line itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_value(text: str) -> Any:
    """JSON when the text is JSON (2, 1.5, true, null, [1,2], {"a":1}, "\\"2\\""), else the text as a string."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # json.loads takes NaN and Infinity; the API would not


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` arguments as the task's input object."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"bad input {pair!r}: expected key=value, e.g. x=2 or name=abc")
        if key in inputs:
            raise UsageError(f"input {key!r} is given twice")
        inputs[key] = parse_value(text)
    return inputs


class ProgressReport:
    """Shows a task's progress on a stream: a redrawn bar on a terminal, a line per change otherwise."""

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last: str | None = None
        self._open_line = False

    def __call__(self, status: TaskSnapshot) -> None:
        progress = 1.0 if status.status == "succeeded" else status.progress
        percent = f" {progress:4.0%}" if progress is not None else ""
        if self.tty:
            filled = round((progress or 0.0) * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r\033[K{status.task} {status.task_id[:8]} [{bar}]{percent} {status.status}")
            self._open_line = True
            if status.is_finished:
                self.close()
        else:
            line = f"{status.task} {status.task_id}: {status.status}{percent}"
            if line != self._last:
                self.stream.write(line + "\n")
            self._last = line
        self.stream.flush()

    def close(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def build_parser() -> argparse.ArgumentParser:
    # Common options are accepted before or after the command; SUPPRESS keeps a subcommand from resetting them.
    common = _Parser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"the API's base URL (default: $LRT_URL, else {DEFAULT_URL})"
    )
    common.add_argument(
        "--auth",
        choices=AUTH_CHOICES,
        default=argparse.SUPPRESS,
        help="sigv4: AWS credentials (IAM auth); bearer: the token in $LRT_TOKEN (default: $LRT_AUTH, else none)",
    )
    parser = _Parser(
        prog="lrt",
        description="Submit long-running tasks to the task API, watch them, collect their results.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.add_argument("task", metavar="TASK", help="the task's name, e.g. multiply")
        return sub

    inputs_help = "the task's inputs; a value is JSON when it parses (x=2, flag=true), else a string (name=abc)"
    for name, help_text in (
        ("submit", "queue a task and print its id"),
        ("run", "submit a task, wait, print its result"),
    ):
        sub = command(name, help_text)
        sub.add_argument("inputs", nargs="*", metavar="KEY=VALUE", help=inputs_help)
        sub.add_argument(
            "--input-file",
            type=Path,
            metavar="FILE",
            help="the inputs as a JSON object in FILE, instead of KEY=VALUE (large ones are uploaded)",
        )
        sub.add_argument("--idempotency-key", help="submitting again with this key returns the same task")
        sub.add_argument(
            "--webhook", metavar="URL", help="POST the task's outcome to this https URL when it ends (signed)"
        )
        if name == "run":
            _timeout_option(sub)
    command("status", "print a task's status as JSON").add_argument("task_id", metavar="ID")
    sub = command("wait", "wait for a task to finish and print its result")
    sub.add_argument("task_id", metavar="ID")
    _timeout_option(sub)
    command("cancel", "cancel a queued or running task").add_argument("task_id", metavar="ID")
    listing = commands.add_parser(
        "ls", help="list your tasks, newest first", description="list your tasks, newest first", parents=[common]
    )
    listing.add_argument("task", metavar="TASK", nargs="?", help="only tasks of this kind, e.g. multiply")
    listing.add_argument(
        "--status",
        action="append",
        metavar="S",
        help="only tasks in this state: queued, running, succeeded, failed, cancelled (repeat it, or S1,S2)",
    )
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N tasks, 1-100 (%(default)s)")
    listing.add_argument("--cursor", help="go on from where a listing stopped (the cursor it printed)")
    listing.add_argument("--json", action="store_true", help="the page as JSON, for scripts")
    return parser


def _timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, metavar="S", help="give up after S seconds (%(default)g)"
    )


def main(argv: Sequence[str] | None = None, *, sleep: Callable[[float], None] = time.sleep) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        client = TaskClient(_url(args), auth=_auth(args), sleep=sleep)
    except (UsageError, ValueError) as error:  # an unusable --url or $LRT_AUTH
        return _fail(EXIT_USAGE, f"error: {error}")
    except AuthNotConfigured as error:
        return _fail(EXIT_REFUSED, str(error))
    try:
        with client:
            return _dispatch(client, args)
    except UsageError as error:
        return _fail(EXIT_USAGE, f"error: {error}")
    except AuthNotConfigured as error:
        return _fail(EXIT_REFUSED, str(error))
    except InvalidInput as error:
        lines = [f"{error.detail or error.title}:"]
        lines += [f"  {item.get('field', '?')}: {item.get('message', '')}" for item in error.errors]
        if omitted := error.problem.get("errors_omitted"):
            lines.append(f"  and {omitted} more")
        return _fail(EXIT_REFUSED, "\n".join(lines) if error.errors else str(error))
    except ApiError as error:
        hint = ""
        if error.status in (401, 403) and _auth(args) == "none":
            hint = " (the API wants credentials: try --auth sigv4 or --auth bearer)"
        return _fail(EXIT_REFUSED, f"{error}{hint}")
    except ConnectionFailed as error:
        return _fail(EXIT_UNREACHABLE, str(error))
    except WaitTimeout as error:
        return _fail(EXIT_TIMEOUT, f"{error}; it keeps running: `lrt wait {error.task} {error.task_id}` to resume")
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted")


def _submit(client: TaskClient, args: argparse.Namespace) -> TaskSnapshot:
    if args.input_file is not None:
        if args.inputs:
            raise UsageError("give the inputs either as KEY=VALUE or with --input-file, not both")
        if not args.input_file.is_file():
            raise UsageError(f"--input-file {args.input_file}: no such file")
        return client.submit(
            args.task, idempotency_key=args.idempotency_key, input_file=args.input_file, webhook_url=args.webhook
        )
    return client.submit(
        args.task, parse_inputs(args.inputs), idempotency_key=args.idempotency_key, webhook_url=args.webhook
    )


def _dispatch(client: TaskClient, args: argparse.Namespace) -> int:
    if args.command == "ls":
        return _list(client, args)
    if args.command == "submit":
        print(_submit(client, args).task_id)
        return EXIT_OK
    if args.command == "run":
        submitted = _submit(client, args)
        return _wait(client, args.task, submitted.task_id, args.timeout, seen=submitted)
    if args.command == "wait":
        return _wait(client, args.task, args.task_id, args.timeout)
    shown = (
        client.status(args.task, args.task_id) if args.command == "status" else client.cancel(args.task, args.task_id)
    )
    print(json.dumps(shown.raw, indent=2))
    return EXIT_OK


def _list(client: TaskClient, args: argparse.Namespace) -> int:
    statuses = [name for given in args.status or () for name in given.split(",")]
    page = client.list(args.task, status=statuses, limit=args.limit, cursor=args.cursor)
    if args.json:
        print(json.dumps({"items": [item.raw for item in page.items], "next_cursor": page.next_cursor}, indent=2))
        return EXIT_OK
    for line in task_table(page.items, width=shutil.get_terminal_size().columns, now=datetime.now(UTC)):
        print(line)
    if page.next_cursor is not None:
        print(f"lrt: more with --cursor {page.next_cursor}", file=sys.stderr)
    return EXIT_OK


def task_table(tasks: Sequence[TaskSnapshot], *, width: int, now: datetime) -> list[str]:
    """A table of tasks (id, task, status, progress, created, duration) no wider than `width`: ids shorten to their
    first 8 characters, then the date leaves the creation time, then task names are cut, as the width asks."""
    if not tasks:
        return ["no tasks"]
    for short_id, short_time in ((False, False), (True, False), (True, True)):
        rows = [_row(task, now, short_id=short_id, short_time=short_time) for task in tasks]
        header = ["ID", "TASK", "STATUS", "PROGRESS", "CREATED", "DURATION"]
        widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
        if sum(widths) + 2 * (len(widths) - 1) <= width:
            break
    spare = width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:  # still too wide: the task names give way, down to a few characters
        widths[1] = max(4, widths[1] + spare)
    lines = []
    for row in [header, *rows]:
        cells = [_fit(cell, size) for cell, size in zip(row, widths, strict=True)]
        lines.append("  ".join(cell.ljust(size) for cell, size in zip(cells, widths, strict=True)).rstrip()[:width])
    return lines


def _fit(text: str, size: int) -> str:
    return text if len(text) <= size else text[: max(size - 1, 0)] + "…"


def _row(task: TaskSnapshot, now: datetime, *, short_id: bool, short_time: bool) -> list[str]:
    progress = 1.0 if task.status == "succeeded" else task.progress
    created = task.created_at.astimezone() if task.created_at else None
    return [
        task.task_id[:8] if short_id else task.task_id,
        task.task,
        task.status,
        f"{progress:.0%}" if progress is not None else "-",
        created.strftime("%H:%M:%S" if short_time else "%Y-%m-%d %H:%M:%S") if created else "-",
        _duration(task, now),
    ]


def _duration(task: TaskSnapshot, now: datetime) -> str:
    if task.started_at is None:
        return "-"
    seconds = ((task.finished_at or now) - task.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _wait(client: TaskClient, task: str, task_id: str, timeout: float, *, seen: TaskSnapshot | None = None) -> int:
    report = ProgressReport(sys.stderr)
    try:
        finished = client.wait(task, task_id, timeout=timeout, on_progress=report, seen=seen)
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, f"interrupted; the task keeps running (`lrt cancel {task} {task_id}` stops it)")
    finally:
        report.close()
    try:
        finished.raise_for_outcome()
    except TaskFailed as error:
        return _fail(EXIT_FAILED, str(error))
    except TaskCancelled as error:
        return _fail(EXIT_CANCELLED, str(error))
    print(json.dumps(finished.result, indent=2))
    return EXIT_OK


def _url(args: argparse.Namespace) -> str:
    url: str = getattr(args, "url", None) or default_url()
    return url


def _auth(args: argparse.Namespace) -> AuthName:
    auth: str = getattr(args, "auth", None) or os.environ.get("LRT_AUTH") or "none"
    for choice in AUTH_CHOICES:
        if auth == choice:
            return choice
    raise UsageError(f"LRT_AUTH={auth!r} is not one of {', '.join(AUTH_CHOICES)}")


def _fail(code: int, message: str) -> int:
    print(f"lrt: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
