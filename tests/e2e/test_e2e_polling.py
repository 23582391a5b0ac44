"""What waiting on a 10 s multiply costs a client in GETs, and how late it sees the result (issue 16 §3): a stack of
its own whose multiply takes 10 s, as deployed by default (or E2E_BASE_URL, a deployed API, whose multiply does)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from devstack import LocalStack
from lrt import TaskClient
from lrt.client import TaskSnapshot
from tests.e2e.e2e_support import e2e_auth

pytestmark = pytest.mark.e2e

DELAY_SECONDS = 10


@pytest.fixture(scope="module")
def slow_api() -> Iterator[str]:
    if os.environ.get("E2E_BASE_URL"):
        yield os.environ["E2E_BASE_URL"].rstrip("/")
        return
    with LocalStack(port=0, env={"MULTIPLY_DELAY_SECONDS": str(DELAY_SECONDS)}, worker_concurrency=2) as stack:
        yield stack.api_url


class GetCounter:
    """The GETs one client's session sends."""

    def __init__(self) -> None:
        self.gets = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "GET":
            self.gets += 1


def counted_client(base_url: str) -> tuple[TaskClient, GetCounter]:
    session = requests.Session()
    counter = GetCounter()
    session.hooks["response"].append(counter)
    return TaskClient(base_url, auth=e2e_auth(), session=session), counter


def notice_latency(finished: TaskSnapshot, seen_at: float) -> float:
    """Seconds between the task's end, as the API recorded it, and the moment the client had its outcome."""
    assert isinstance(finished.finished_at, datetime)
    return seen_at - finished.finished_at.timestamp()


def run_time(finished: TaskSnapshot) -> float:
    assert finished.started_at is not None
    assert finished.finished_at is not None
    return (finished.finished_at - finished.started_at).total_seconds()


def test_waiting_on_a_10s_multiply_takes_at_most_two_gets_and_sees_the_result_within_a_second(slow_api: str) -> None:
    # GIVEN two clients: one runs a task (submit, then wait from the submission's hint), one submits and then waits
    # on the task by its id alone, as `lrt wait` does
    outcomes: dict[str, tuple[TaskSnapshot, float, int]] = {}

    def run_it() -> None:
        client, counter = counted_client(slow_api)
        submitted = client.submit("multiply", x=6, y=7)
        finished = client.wait("multiply", submitted.task_id, timeout=60, seen=submitted)
        outcomes["run"] = (finished, time.time(), counter.gets)

    def wait_by_id() -> None:
        client, counter = counted_client(slow_api)
        task_id = client.submit("multiply", x=2, y=3).task_id
        finished = client.wait("multiply", task_id, timeout=60)
        outcomes["wait"] = (finished, time.time(), counter.gets)

    # WHEN both wait on their 10 s multiply at once
    threads = [threading.Thread(target=run_it), threading.Thread(target=wait_by_id)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    # THEN each saw its result with at most 2 GETs (the run: one), within max(1 s, 10 % of the run) of its end
    assert set(outcomes) == {"run", "wait"}
    for name, (finished, seen_at, gets) in outcomes.items():
        assert finished.status == "succeeded", name
        assert run_time(finished) >= DELAY_SECONDS - 0.5, f"{name}: the multiply did not take its 10 s"
        assert gets <= (1 if name == "run" else 2), f"{name}: {gets} GETs"
        allowed = max(1.0, 0.1 * run_time(finished))
        assert 0 <= notice_latency(finished, seen_at) <= allowed, f"{name}: seen {notice_latency(finished, seen_at)}"
    assert outcomes["run"][0].result == 42
