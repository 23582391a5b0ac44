"""The client library against a fake API on 127.0.0.1: parsing, polling, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from lrt import (
    ApiError,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    NotFound,
    PollPolicy,
    TaskCancelled,
    TaskClient,
    TaskFailed,
    TaskFailure,
    TaskSnapshot,
    WaitTimeout,
)
from lrt.client import parse_retry_after
from tests.unit.client.fakeapi import TASK_ID, FakeApi, FakeTime, Reply, problem_reply, task_reply

TASK_PATH = f"/multiply/{TASK_ID}"


def client_for(api: FakeApi, fake_time: FakeTime, **options: object) -> TaskClient:
    # rand 0: no jitter, so the sleeps are exact
    return TaskClient(api.base_url, sleep=fake_time.sleep, clock=fake_time.clock, rand=lambda: 0.0, **options)  # type: ignore[arg-type]


def test_submit_posts_inputs_and_parses_the_queued_task(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN
    api.script("POST", "/multiply", task_reply("queued", retry_after=2))

    # WHEN
    task = client_for(api, fake_time).submit("multiply", {"x": 2}, y=3)

    # THEN
    (request,) = api.requests
    assert request.json() == {"x": 2, "y": 3}
    assert request.headers["content-type"] == "application/json"
    assert "idempotency-key" not in request.headers
    assert task.task_id == TASK_ID
    assert task.status == "queued"
    assert task.is_pending
    assert task.progress == 0.0
    assert task.retry_after == 2.0
    assert task.created_at == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert task.raw["task"] == "multiply"


def test_submit_sends_the_idempotency_key(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/multiply", task_reply("queued"))

    client_for(api, fake_time).submit("multiply", x=2, y=3, idempotency_key="order-42")

    assert api.requests[0].headers["idempotency-key"] == "order-42"


def test_submit_reused_idempotency_key_raises_conflict(api: FakeApi, fake_time: FakeTime) -> None:
    detail = "this Idempotency-Key was used before with a different request"
    api.script("POST", "/multiply", problem_reply(409, "Conflict", detail))

    with pytest.raises(Conflict) as raised:
        client_for(api, fake_time).submit("multiply", x=1, y=1, idempotency_key="order-42")

    assert raised.value.status == 409
    assert raised.value.detail == detail


def test_submit_invalid_input_raises_with_field_errors(api: FakeApi, fake_time: FakeTime) -> None:
    errors = [{"field": "x", "message": "Expected `int | float`, got `str`", "type": "invalid"}]
    api.script(
        "POST", "/multiply", problem_reply(422, "Invalid input", "invalid input for task 'multiply'", errors=errors)
    )

    with pytest.raises(InvalidInput) as raised:
        client_for(api, fake_time).submit("multiply", x="two", y=3)

    assert raised.value.errors == errors
    assert raised.value.title == "Invalid input"
    assert raised.value.problem["status"] == 422


def test_submit_unknown_task_raises_not_found_with_known_tasks(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/divide", problem_reply(404, "Not found", "no task named 'divide'", known_tasks=["multiply"]))

    with pytest.raises(NotFound) as raised:
        client_for(api, fake_time).submit("divide", x=1)

    assert raised.value.known_tasks == ["multiply"]


def test_server_error_keeps_the_request_id(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, problem_reply(500, "Internal error", "could not complete", request_id="req-1"))

    with pytest.raises(ApiError) as raised:
        client_for(api, fake_time).status("multiply", TASK_ID)

    assert type(raised.value) is ApiError
    assert raised.value.problem["request_id"] == "req-1"
    assert not raised.value.retryable


def test_api_gateway_message_becomes_the_detail(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, Reply(403, {"message": "Missing Authentication Token"}))

    with pytest.raises(ApiError) as raised:
        client_for(api, fake_time).status("multiply", TASK_ID)

    assert raised.value.status == 403
    assert raised.value.detail == "Missing Authentication Token"


def test_status_parses_a_succeeded_task(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, task_reply("succeeded", result={"product": 6}))

    task = client_for(api, fake_time).status("multiply", TASK_ID)

    assert task.is_finished
    assert task.result == {"product": 6}
    assert task.progress is None
    assert task.finished_at == datetime(2025, 1, 2, 3, 4, 9, tzinfo=UTC)
    assert task.retry_after is None


def test_status_parses_a_failed_task(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, task_reply("failed", error={"type": "ValueError", "message": "too big"}))

    task = client_for(api, fake_time).status("multiply", TASK_ID)

    assert task.error == TaskFailure("ValueError", "too big")
    with pytest.raises(TaskFailed, match="ValueError: too big"):
        task.raise_for_outcome()


def test_status_quotes_the_task_id_into_one_path_segment(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", "/multiply/..%2Fsubmit", problem_reply(400, "Malformed request", "task id is not a UUID"))

    with pytest.raises(ApiError, match="400 Malformed request"):
        client_for(api, fake_time).status("multiply", "../submit")

    assert api.requests[0].path == "/multiply/..%2Fsubmit"


def test_status_of_a_non_task_body_is_an_unexpected_response(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, Reply(200, ["not", "a", "task"]))

    with pytest.raises(ApiError, match="Unexpected response"):
        client_for(api, fake_time).status("multiply", TASK_ID)


def test_cancel_deletes_and_returns_the_cancelled_task(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("DELETE", TASK_PATH, task_reply("cancelled"))

    task = client_for(api, fake_time).cancel("multiply", TASK_ID)

    assert api.requests[0].method == "DELETE"
    assert task.status == "cancelled"


def test_cancel_a_finished_task_raises_conflict(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("DELETE", TASK_PATH, problem_reply(409, "Conflict", "task is succeeded and can no longer be cancelled"))

    with pytest.raises(Conflict, match="can no longer be cancelled"):
        client_for(api, fake_time).cancel("multiply", TASK_ID)


def test_wait_honours_retry_after_and_reports_progress(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN a task that runs for two polls, the server asking for 3 s between them
    api.script(
        "GET",
        TASK_PATH,
        task_reply("running", progress=0.25, retry_after=3),
        task_reply("running", progress=0.75, retry_after=3),
        task_reply("succeeded", result=6),
    )
    seen: list[TaskSnapshot] = []

    # WHEN
    task = client_for(api, fake_time).wait("multiply", TASK_ID, on_progress=seen.append)

    # THEN
    assert task.result == 6
    assert fake_time.sleeps == [3.0, 3.0]
    assert [(status.status, status.progress) for status in seen] == [
        ("running", 0.25),
        ("running", 0.75),
        ("succeeded", None),
    ]


def test_wait_prefers_the_bodys_finer_retry_after_to_the_rounded_header(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN a running task whose end is 7.4 s away: the header says 8 (whole seconds), the body 7.4
    api.script(
        "GET",
        TASK_PATH,
        task_reply("running", retry_after=8, hint=7.4),
        task_reply("succeeded", result=6),
    )

    # WHEN the client waits, without jitter
    client_for(api, fake_time, poll=PollPolicy(jitter=0.0)).wait("multiply", TASK_ID)

    # THEN it sleeps the body's 7.4 s
    assert fake_time.sleeps == [7.4]


def test_run_sleeps_the_submissions_retry_after_before_its_first_poll(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN a 10 s task whose submission says to come back in 10.5 s, and which has ended by then
    api.script("POST", "/multiply", task_reply("queued", retry_after=11, hint=10.5))
    api.script("GET", TASK_PATH, task_reply("succeeded", result=6))

    # WHEN it is run
    result = client_for(api, fake_time, poll=PollPolicy(jitter=0.0)).run("multiply", x=2, y=3)

    # THEN one GET found the result, after the pause the submission asked for: none at once
    assert result == 6
    assert [(seen.method, seen.path) for seen in api.requests] == [("POST", "/multiply"), ("GET", TASK_PATH)]
    assert fake_time.sleeps == [10.5]


def test_wait_backs_off_exponentially_up_to_the_cap(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, *[task_reply("running")] * 5, task_reply("succeeded", result=6))
    policy = PollPolicy(initial=1.0, multiplier=2.0, max_interval=5.0)

    client_for(api, fake_time, poll=policy).wait("multiply", TASK_ID)

    assert fake_time.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_wait_believes_retry_after_only_up_to_its_cap(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, task_reply("running", retry_after=86_400), task_reply("succeeded", result=6))

    client_for(api, fake_time, poll=PollPolicy(max_retry_after=60.0)).wait("multiply", TASK_ID)

    assert fake_time.sleeps == [60.0]


def test_poll_jitter_lengthens_but_never_undercuts_retry_after() -> None:
    policy = PollPolicy(initial=0.5, jitter=0.1)

    assert policy.delay(0, retry_after=3.0, rand=0.0) == 3.0
    assert policy.delay(0, retry_after=3.0, rand=1.0) == pytest.approx(3.1)  # a tenth, at most 0.1 s
    assert policy.delay(0, retry_after=0.5, rand=1.0) == pytest.approx(0.55)
    assert policy.delay(10_000, retry_after=None, rand=0.0) == policy.max_interval


def test_wait_gives_up_at_the_timeout(api: FakeApi, fake_time: FakeTime) -> None:
    # GIVEN a task that never finishes, polled every 2 s
    api.script("GET", TASK_PATH, task_reply("running", retry_after=2))

    # WHEN / THEN: polls at 0, 2, 4 and a last one at 5
    with pytest.raises(WaitTimeout) as raised:
        client_for(api, fake_time).wait("multiply", TASK_ID, timeout=5)

    assert fake_time.sleeps == [2.0, 2.0, 1.0]
    assert len(api.requests) == 4
    assert raised.value.last_status == "running"
    assert raised.value.task_id == TASK_ID


def test_wait_retries_service_unavailable(api: FakeApi, fake_time: FakeTime) -> None:
    api.script(
        "GET",
        TASK_PATH,
        problem_reply(503, "Service unavailable", "try again", headers={"Retry-After": "4"}),
        task_reply("succeeded", result=6),
    )

    task = client_for(api, fake_time).wait("multiply", TASK_ID)

    assert task.result == 6
    assert fake_time.sleeps == [4.0]


def test_wait_stops_after_too_many_errors_in_a_row(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, problem_reply(503, "Service unavailable", "try again"))

    with pytest.raises(ApiError) as raised:
        client_for(api, fake_time, poll=PollPolicy(max_errors=3)).wait("multiply", TASK_ID)

    assert raised.value.status == 503
    assert len(api.requests) == 3


def test_wait_does_not_retry_not_found(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("GET", TASK_PATH, problem_reply(404, "Not found", f"no multiply task with id {TASK_ID}"))

    with pytest.raises(NotFound):
        client_for(api, fake_time).wait("multiply", TASK_ID)

    assert fake_time.sleeps == []


def test_wait_retries_a_refused_connection_then_raises_it(refused_url: str, fake_time: FakeTime) -> None:
    client = TaskClient(refused_url, sleep=fake_time.sleep, clock=fake_time.clock, poll=PollPolicy(max_errors=3))

    with pytest.raises(ConnectionFailed):
        client.wait("multiply", TASK_ID)

    assert len(fake_time.sleeps) == 2


def test_connection_refused_names_the_url_and_the_local_stack(refused_url: str) -> None:
    with pytest.raises(ConnectionFailed) as raised:
        TaskClient(refused_url).submit("multiply", x=2, y=3)

    message = str(raised.value)
    assert f"{refused_url}/multiply" in message
    assert "connection refused" in message
    assert "make run" in message


def test_run_returns_the_result(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/multiply", task_reply("queued", retry_after=1))
    api.script("GET", TASK_PATH, task_reply("running", progress=0.5, retry_after=1), task_reply("succeeded", result=6))

    assert client_for(api, fake_time).run("multiply", x=2, y=3) == 6
    assert [request.method for request in api.requests] == ["POST", "GET", "GET"]


def test_run_raises_task_failed(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/multiply", task_reply("queued"))
    api.script("GET", TASK_PATH, task_reply("failed", error={"type": "OverflowError", "message": "too large"}))

    with pytest.raises(TaskFailed) as raised:
        client_for(api, fake_time).run("multiply", x=2, y=3)

    assert (raised.value.error_type, raised.value.message) == ("OverflowError", "too large")


def test_run_raises_task_cancelled(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/multiply", task_reply("queued"))
    api.script("GET", TASK_PATH, task_reply("cancelled"))

    with pytest.raises(TaskCancelled):
        client_for(api, fake_time).run("multiply", x=2, y=3)


def test_base_url_defaults_to_lrt_url_then_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TaskClient().base_url == "http://127.0.0.1:3000"

    monkeypatch.setenv("LRT_URL", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/")

    assert TaskClient().base_url == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


def test_base_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="must look like"):
        TaskClient("127.0.0.1:3000")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("5", 5.0), (" 2 ", 2.0), ("1.5", 1.5), ("soon", None), ("-1", None)],
)
def test_parse_retry_after_reads_delta_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_reads_an_http_date() -> None:
    in_a_minute = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 60, UTC)

    assert parse_retry_after(format_datetime(in_a_minute, usegmt=True)) == pytest.approx(60, abs=2)


def test_submit_sends_the_webhook_url_as_a_header_not_an_input(api: FakeApi, fake_time: FakeTime) -> None:
    api.script("POST", "/multiply", task_reply("queued"))

    client_for(api, fake_time).submit("multiply", x=2, y=3, webhook_url="https://hooks.example.com/t")

    assert api.requests[0].headers["webhook-url"] == "https://hooks.example.com/t"
    assert api.requests[0].json() == {"x": 2, "y": 3}


def test_submit_refused_webhook_url_raises_invalid_input_naming_the_header(api: FakeApi, fake_time: FakeTime) -> None:
    errors = [{"field": "Webhook-URL", "message": "the webhook URL must be an https URL", "type": "invalid"}]
    api.script(
        "POST", "/multiply", problem_reply(422, "Invalid input", "Webhook-URL: must be an https URL", errors=errors)
    )

    with pytest.raises(InvalidInput) as raised:
        client_for(api, fake_time).submit("multiply", x=2, y=3, webhook_url="http://hooks.example.com/t")

    assert raised.value.errors[0]["field"] == "Webhook-URL"
