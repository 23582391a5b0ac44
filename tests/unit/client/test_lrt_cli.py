"""The `lrt` command: output, exit codes and one-line errors, against the fake API."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from lrt.cli import ProgressReport, main, parse_inputs
from lrt.client import TaskSnapshot
from tests.unit.client.fakeapi import TASK_ID, FakeApi, Reply, problem_reply, task_reply

TASK_PATH = f"/multiply/{TASK_ID}"


def lrt(api: FakeApi, *argv: str) -> int:
    return main(["--url", api.base_url, *argv], sleep=lambda _: None)


@pytest.mark.parametrize(
    ("pair", "key", "value"),
    [
        ("x=2", "x", 2),
        ("name=abc", "name", "abc"),
        ("ratio=1.5", "ratio", 1.5),
        ("flag=true", "flag", True),
        ("nothing=null", "nothing", None),
        ("items=[1,2]", "items", [1, 2]),
        ('quoted="2"', "quoted", "2"),
        ("empty=", "empty", ""),
        ("nan=NaN", "nan", "NaN"),
        ("eq=a=b", "eq", "a=b"),
    ],
)
def test_parse_inputs_reads_json_else_strings(pair: str, key: str, value: Any) -> None:
    assert parse_inputs([pair]) == {key: value}


def test_submit_prints_only_the_task_id(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN
    api.script("POST", "/multiply", task_reply("queued"))

    # WHEN
    code = lrt(api, "submit", "multiply", "x=2", "y=3", "--idempotency-key", "order-42")

    # THEN
    assert code == 0
    assert capsys.readouterr().out == f"{TASK_ID}\n"
    assert api.requests[0].json() == {"x": 2, "y": 3}
    assert api.requests[0].headers["idempotency-key"] == "order-42"


def test_submit_bad_key_value_is_a_usage_error(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    code = lrt(api, "submit", "multiply", "x")

    err = capsys.readouterr().err
    assert code == 64
    assert err == "lrt: error: bad input 'x': expected key=value, e.g. x=2 or name=abc\n"
    assert api.requests == []


def test_submit_duplicate_key_is_a_usage_error(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert lrt(api, "submit", "multiply", "x=1", "x=2") == 64
    assert "given twice" in capsys.readouterr().err


def test_submit_invalid_input_lists_each_field(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    errors = [
        {"field": "x", "message": "Expected `int | float`, got `str`", "type": "invalid"},
        {"field": "y", "message": "Field required", "type": "missing"},
    ]
    api.script(
        "POST", "/multiply", problem_reply(422, "Invalid input", "invalid input for task 'multiply'", errors=errors)
    )

    code = lrt(api, "submit", "multiply", "x=abc")

    assert code == 4
    assert capsys.readouterr().err == (
        "lrt: invalid input for task 'multiply':\n  x: Expected `int | float`, got `str`\n  y: Field required\n"
    )


def test_unknown_task_shows_the_problem_detail(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    detail = "no task named 'divide'; known tasks: multiply"
    api.script("POST", "/divide", problem_reply(404, "Not found", detail, known_tasks=["multiply"]))

    assert lrt(api, "submit", "divide", "x=1") == 4
    assert capsys.readouterr().err == f"lrt: 404 Not found: {detail}\n"


def test_forbidden_without_auth_suggests_an_auth_option(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", TASK_PATH, Reply(403, {"message": "Missing Authentication Token"}))

    assert lrt(api, "status", "multiply", TASK_ID) == 4
    assert "try --auth sigv4 or --auth bearer" in capsys.readouterr().err


def test_connection_refused_is_one_line_with_a_hint(refused_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["submit", "multiply", "x=2", "--url", refused_url])

    err = capsys.readouterr().err
    assert code == 5
    assert err.count("\n") == 1
    assert f"cannot reach {refused_url}/multiply: connection refused" in err
    assert "make run" in err
    assert "Traceback" not in err


def test_url_comes_from_lrt_url(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LRT_URL", api.base_url)
    api.script("POST", "/multiply", task_reply("queued"))

    assert main(["submit", "multiply", "x=2", "y=3"]) == 0
    assert capsys.readouterr().out.strip() == TASK_ID


def test_status_prints_the_task_as_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", TASK_PATH, task_reply("running", progress=0.5, retry_after=1))

    assert lrt(api, "status", "multiply", TASK_ID) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "running"
    assert shown["progress"] == 0.5


def test_wait_prints_the_result_and_plain_progress_lines(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script(
        "GET",
        TASK_PATH,
        task_reply("queued", retry_after=1),
        task_reply("running", progress=0.5, retry_after=1),
        task_reply("running", progress=0.5, retry_after=1),
        task_reply("succeeded", result={"product": 6}),
    )

    code = lrt(api, "wait", "multiply", TASK_ID)

    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out) == {"product": 6}
    assert captured.err.splitlines() == [
        f"multiply {TASK_ID}: queued   0%",
        f"multiply {TASK_ID}: running  50%",
        f"multiply {TASK_ID}: succeeded 100%",
    ]


def test_wait_failed_task_exits_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", TASK_PATH, task_reply("failed", error={"type": "ValueError", "message": "too big"}))

    assert lrt(api, "wait", "multiply", TASK_ID) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith(f"lrt: multiply task {TASK_ID} failed: ValueError: too big\n")


def test_wait_cancelled_task_exits_2(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", TASK_PATH, task_reply("cancelled"))

    assert lrt(api, "wait", "multiply", TASK_ID) == 2
    assert capsys.readouterr().err.endswith("was cancelled\n")


def test_wait_timeout_exits_3_and_says_how_to_resume(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", TASK_PATH, task_reply("running", progress=0.1, retry_after=1))

    assert lrt(api, "wait", "multiply", TASK_ID, "--timeout", "0") == 3
    assert f"`lrt wait multiply {TASK_ID}` to resume" in capsys.readouterr().err


def test_cancel_prints_the_cancelled_task(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("DELETE", TASK_PATH, task_reply("cancelled"))

    assert lrt(api, "cancel", "multiply", TASK_ID) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"


def test_cancel_a_finished_task_exits_4(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    detail = f"task {TASK_ID} is succeeded and can no longer be cancelled"
    api.script("DELETE", TASK_PATH, problem_reply(409, "Conflict", detail))

    assert lrt(api, "cancel", "multiply", TASK_ID) == 4
    assert capsys.readouterr().err == f"lrt: 409 Conflict: {detail}\n"


def test_run_submits_waits_and_prints_the_result(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("POST", "/multiply", task_reply("queued", retry_after=1))
    api.script("GET", TASK_PATH, task_reply("running", progress=0.5, retry_after=1), task_reply("succeeded", result=6))

    assert lrt(api, "run", "multiply", "x=2", "y=3") == 0
    assert capsys.readouterr().out == "6\n"
    assert [request.method for request in api.requests] == ["POST", "GET", "GET"]


def test_options_before_or_after_the_command(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", TASK_PATH, task_reply("succeeded", result=6))

    assert main(["status", "multiply", TASK_ID, "--url", api.base_url, "--auth", "none"]) == 0
    assert main(["--url", api.base_url, "status", "multiply", TASK_ID]) == 0


def test_unknown_lrt_auth_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LRT_AUTH", "basic")

    assert main(["status", "multiply", TASK_ID]) == 64
    assert "LRT_AUTH='basic'" in capsys.readouterr().err


def test_bearer_without_a_token_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "multiply", TASK_ID, "--auth", "bearer"]) == 4
    assert capsys.readouterr().err == "lrt: no bearer token: set LRT_TOKEN\n"


def test_missing_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 64
    assert "the following arguments are required" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "usage: lrt" in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_report_draws_a_bar_on_a_terminal() -> None:
    terminal = _Terminal()
    report = ProgressReport(terminal, width=10)

    report(TaskSnapshot(task_id=TASK_ID, task="multiply", status="running", progress=0.5))
    report(TaskSnapshot(task_id=TASK_ID, task="multiply", status="succeeded", result=6))

    frames = terminal.getvalue().split("\r\033[K")
    assert frames[1] == "multiply 0f8e2b7a [#####-----]  50% running"
    assert frames[2] == "multiply 0f8e2b7a [##########] 100% succeeded\n"


def test_submit_webhook_is_sent_in_the_webhook_url_header(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN
    api.script("POST", "/multiply", task_reply("queued"))

    # WHEN
    code = lrt(api, "submit", "multiply", "x=2", "y=3", "--webhook", "https://hooks.example.com/t")

    # THEN
    assert code == 0
    assert api.requests[0].headers["webhook-url"] == "https://hooks.example.com/t"
    assert api.requests[0].json() == {"x": 2, "y": 3}
