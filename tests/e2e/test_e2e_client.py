"""The Python client and the `lrt` CLI against the running stack, as a user runs them."""

from __future__ import annotations

import pytest

from devstack import LocalStack
from lrt import TaskClient
from lrt.cli import main
from lrt.errors import Conflict, InvalidInput, NotFound, TaskFailed
from tests.e2e.e2e_support import e2e_auth

pytestmark = pytest.mark.e2e


def cli_output(capsys: pytest.CaptureFixture[str]) -> str:
    """What the CLI printed: the in-process stack's functions log JSON lines to the same stdout."""
    return "\n".join(line for line in capsys.readouterr().out.splitlines() if not line.startswith("{"))


@pytest.fixture
def client(base_url: str) -> TaskClient:
    return TaskClient(base_url, auth=e2e_auth())


def test_client_run_returns_the_product(client: TaskClient) -> None:
    assert client.run("multiply", x=6, y=7) == 42


def test_client_submit_wait_reports_progress_then_the_result(client: TaskClient, stack: LocalStack) -> None:
    seen: list[float | None] = []
    task = client.submit("e2e-nap", seconds=1.5)

    done = client.wait("e2e-nap", task.task_id, timeout=30, on_progress=lambda status: seen.append(status.progress))

    assert done.status == "succeeded"
    assert done.result == "rested"
    assert seen


def test_client_raises_typed_errors(client: TaskClient, stack: LocalStack) -> None:
    with pytest.raises(InvalidInput) as invalid:
        client.submit("multiply", x=True, y=3)
    assert {error["field"] for error in invalid.value.errors} == {"x"}

    with pytest.raises(NotFound) as unknown:
        client.submit("divide", x=1, y=2)
    assert "multiply" in (unknown.value.known_tasks or [])

    with pytest.raises(TaskFailed) as failed:
        client.run("e2e-fail")
    assert failed.value.error_type == "ValueError"


def test_client_cancel_then_conflict_once_finished(client: TaskClient, stack: LocalStack) -> None:
    napping = client.submit("e2e-nap", seconds=30)
    assert client.cancel("e2e-nap", napping.task_id).status == "cancelled"

    finished = client.submit("multiply", x=1, y=1)
    client.wait("multiply", finished.task_id, timeout=30)
    with pytest.raises(Conflict):
        client.cancel("multiply", finished.task_id)


def test_cli_run_prints_the_result(base_url: str, stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", base_url, "run", "multiply", "x=2", "y=3"]) == 0
    assert cli_output(capsys) == "6"


def test_cli_submit_then_wait(base_url: str, stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", base_url, "submit", "multiply", "x=4", "y=5"]) == 0
    task_id = cli_output(capsys)

    assert main(["--url", base_url, "wait", "multiply", task_id, "--timeout", "30"]) == 0
    assert cli_output(capsys) == "20"


def test_cli_exit_codes_say_what_happened(base_url: str, stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", base_url, "run", "e2e-fail"]) == 1
    assert "this task always fails" in capsys.readouterr().err

    assert main(["--url", base_url, "submit", "multiply", "x=abc", "y=3"]) == 4
    error = capsys.readouterr().err
    assert "x: Expected `int | float`, got `str`" in error
    assert "Traceback" not in error
