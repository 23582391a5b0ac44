"""`python -m devstack`: the task API on http://127.0.0.1:3000 with its queue, worker and table emulated.

--no-api runs only the emulated AWS services and the SQS poller, for `sam local start-api` (Docker) beside it;
--write-env-vars FILE writes that command's --env-vars file for the services this process runs.
`python -m devstack token --sub NAME` prints a token for the stack started with AUTH_TYPE=JWT from this checkout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Protocol, TextIO, cast

from devstack.output import WholeLines
from devstack.template import DEFAULT_TEMPLATE

# How often the stack is checked for a fault that ends it (its AWS emulator gone).
FAULT_CHECK_SECONDS = 0.5
# A signal to the whole process group (`kill -- -PGID`) ends the emulator too, and its end can be seen a moment before
# this process runs its own handler for the same signal (0.3 s later on a loaded machine); a fault seen this close to
# a stop request is part of the stop.
STOP_GRACE_SECONDS = 1.0


class Faulty(Protocol):
    def fault(self) -> str | None: ...


def wait_for_stop_or_fault(stack: Faulty, stopping: threading.Event) -> str | None:
    """Block until a stop is requested (None) or the stack can serve nothing any more (why)."""
    while not stopping.wait(FAULT_CHECK_SECONDS):
        fault = stack.fault()
        if fault is not None:
            # is_set() after the wait, not wait()'s answer: on a loaded machine the signal's handler was seen to run
            # only as a timed-out wait returned, after that wait had already answered False.
            stopping.wait(STOP_GRACE_SECONDS)
            return None if stopping.is_set() else fault
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")), help="0: any free port")
    parser.add_argument("--no-api", action="store_true", help="only the AWS services and the SQS poller")
    parser.add_argument("--no-worker", action="store_true", help="no SQS poller: messages stay queued")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=int(os.environ.get("WORKER_CONCURRENCY", "2")),
        metavar="N",
        help="worker invocations at once, each in a process of its own (default 2)",
    )
    parser.add_argument(
        "--visibility-timeout", type=int, metavar="SECONDS", help="local only: replaces the queues' VisibilityTimeout"
    )
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE", help="template parameter")
    parser.add_argument("--write-env-vars", type=Path, metavar="FILE", help="env.json for sam local start-api")
    parser.add_argument("--log-level", default=os.environ.get("DEVSTACK_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--auth-type",
        choices=["NONE", "JWT"],
        default=os.environ.get("AUTH_TYPE") or "NONE",
        help="the API's auth (AUTH_TYPE): NONE, or JWT with this stack as the token issuer",
    )
    parser.add_argument(
        "--task-module", action="append", default=[], metavar="MODULE", help="imported by every function first"
    )
    parser.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def parse_token_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack token", description="A token for the stack started with AUTH_TYPE=JWT."
    )
    parser.add_argument("--sub", required=True, help="the caller's subject")
    parser.add_argument("--expires-in", type=float, default=3600, metavar="SECONDS", help="default 3600")
    parser.add_argument(
        "--claim", action="append", default=[], metavar="NAME=VALUE", help="an extra claim (VALUE as JSON, else text)"
    )
    parser.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def token(argv: list[str]) -> int:
    from devstack.auth import STATE_DIR, LocalIssuer

    args = parse_token_args(argv)
    claims = {}
    for item in args.claim:
        name, _, text = item.partition("=")
        try:
            claims[name] = json.loads(text)
        except ValueError:
            claims[name] = text
    try:
        issuer = LocalIssuer.load(args.state_dir or STATE_DIR)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    print(issuer.token(args.sub, expires_in=args.expires_in, claims=claims))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        return token(argv[1:])
    args = parse_args(argv)
    # Before the functions' loggers capture sys.stdout: one whole JSON line per log line or metric document.
    sys.stdout = cast(TextIO, WholeLines(sys.stdout))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout
    )
    logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from devstack.envvars import write_env_vars
    from devstack.stack import LocalStack

    stopping = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    parameters = dict(item.split("=", 1) for item in args.parameter)
    stack = LocalStack(
        template=args.template,
        host=args.host,
        port=args.port,
        api=not args.no_api,
        worker=not args.no_worker,
        worker_concurrency=args.worker_concurrency,
        parameter_overrides=parameters,
        visibility_timeout=args.visibility_timeout,
        task_modules=args.task_module,
        auth_type=args.auth_type,
        state_dir=args.state_dir,
    )
    try:
        stack.start()
    except RuntimeError as error:
        logging.getLogger("devstack").error("the stack could not start: %s", error)
        return 1
    try:
        if args.write_env_vars:
            write_env_vars(args.write_env_vars, stack.sam_app, stack.environment)
            print(f"env vars for sam local start-api written to {args.write_env_vars}", flush=True)
        emulator = f" (the emulator's pid {stack.emulator_pid})" if stack.emulator_pid else ""
        print(f"AWS services at {stack.endpoint_url}{emulator}", flush=True)
        dex = f" (the durable execution emulator's pid {stack.dex_pid})" if stack.dex_pid else ""
        print(f"Lambda (Invoke of durable functions, durable executions) at {stack.lambda_url}{dex}", flush=True)
        for name, durable_pids in stack.durable_pids.items():
            print(
                f"{name} ({stack.sam_app.functions[name].function_name}): durable, each invocation in a process of its"
                f" own (pids {', '.join(map(str, durable_pids))}; more start as needed)",
                flush=True,
            )
        if stack.worker_pids:
            pids = ", ".join(map(str, stack.worker_pids))
            print(f"worker: one process per concurrent invocation (pids {pids})", flush=True)
        for name, consumer_pids in stack.consumer_pids.items():
            if set(consumer_pids) != set(stack.worker_pids):
                print(f"{name}: polls its event source in processes {', '.join(map(str, consumer_pids))}", flush=True)
        if stack.api_pids:
            pids = ", ".join(map(str, stack.api_pids))
            print(
                f"API functions: one process per execution environment (pids {pids}; more start as needed)", flush=True
            )
        if args.no_api:
            print("services ready (no API): run `sam local start-api --env-vars ...` beside them", flush=True)
        else:
            if stack.issuer is not None:
                print(
                    f"JWT auth: issuer {stack.issuer.issuer}, audience {stack.issuer.audience};"
                    " a token: .venv/bin/python -m devstack token --sub NAME",
                    flush=True,
                )
            print(f"API ready at {stack.api_url}", flush=True)
        if stack.webhook_secret is not None:
            # Printed so that a developer's receiver can verify the local stack's webhooks (it is a local key only).
            print(
                f"webhooks are signed with {stack.webhook_secret} (also in .devstack/webhook-secret);"
                f" Webhook-URL may name http://127.0.0.1:<port>/...",
                flush=True,
            )
        fault = wait_for_stop_or_fault(stack, stopping)
        if fault is not None:
            logging.getLogger("devstack").error("%s", fault)
        print("stopping", flush=True)
    finally:
        stack.stop()
    return 0 if fault is None else 1


if __name__ == "__main__":
    sys.exit(main())
