"""`lrt`: submit tasks, watch them and collect their results from a shell.

Exit codes: 0 done, 1 the task failed, 2 it was cancelled, 3 wait timed out, 4 the API refused the request,
5 the API could not be reached, 64 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO, get_args

from lrt.auth import AuthName
from lrt.client import DEFAULT_URL, DEFAULT_WAIT_TIMEOUT, TaskClient, TaskStatus, default_url
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

    def __call__(self, status: TaskStatus) -> None:
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
        if name == "run":
            _timeout_option(sub)
    command("status", "print a task's status as JSON").add_argument("task_id", metavar="ID")
    sub = command("wait", "wait for a task to finish and print its result")
    sub.add_argument("task_id", metavar="ID")
    _timeout_option(sub)
    command("cancel", "cancel a queued or running task").add_argument("task_id", metavar="ID")
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


def _submit(client: TaskClient, args: argparse.Namespace) -> TaskStatus:
    if args.input_file is not None:
        if args.inputs:
            raise UsageError("give the inputs either as KEY=VALUE or with --input-file, not both")
        if not args.input_file.is_file():
            raise UsageError(f"--input-file {args.input_file}: no such file")
        return client.submit(args.task, idempotency_key=args.idempotency_key, input_file=args.input_file)
    return client.submit(args.task, parse_inputs(args.inputs), idempotency_key=args.idempotency_key)


def _dispatch(client: TaskClient, args: argparse.Namespace) -> int:
    if args.command == "submit":
        print(_submit(client, args).task_id)
        return EXIT_OK
    if args.command == "run":
        return _wait(client, args.task, _submit(client, args).task_id, args.timeout)
    if args.command == "wait":
        return _wait(client, args.task, args.task_id, args.timeout)
    shown = (
        client.status(args.task, args.task_id) if args.command == "status" else client.cancel(args.task, args.task_id)
    )
    print(json.dumps(shown.raw, indent=2))
    return EXIT_OK


def _wait(client: TaskClient, task: str, task_id: str, timeout: float) -> int:
    report = ProgressReport(sys.stderr)
    try:
        finished = client.wait(task, task_id, timeout=timeout, on_progress=report)
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
