"""GET /<task> and GET /tasks through the result function, against the table built from template.yaml: a caller sees
their own tasks only, newest first; cursors work for their listing and no other; bad parameters are 400s. And GET
/<task>/<task_id>/input, and the dashboard's static files."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.stub import Stubber
from msgspec.structs import replace

from core.adapters.aws import dynamodb_client
from core.adapters.dynamodb_store import OWNER_INDEX, DynamoTaskStore
from core.adapters.payloads import RESULT_URL_SECONDS
from core.domain.records import TaskFailure, TaskRecord, TaskStatus
from devstack.resources import LocalResources
from result.app import lambda_handler as result_handler
from result.dashboard import STATIC
from tests.support.driver import Driver, jwt_caller
from tests.support.events import http_event, lambda_context

ALICE, BOB = jwt_caller("alice"), jwt_caller("bob")
FAILURE = TaskFailure("ValueError", "no")


def submitted(driver: Driver, task: str, body: dict[str, Any], caller: dict[str, Any] | None) -> str:
    response = driver.submit(task, body, caller=caller)
    assert response.status == 202, response.body
    task_id: str = response.body["task_id"]
    return task_id


def test_a_caller_lists_their_own_tasks_newest_first_each_as_get_shows_it(driver: Driver) -> None:
    # GIVEN tasks of two callers, Alice's run, and one more of hers queued
    alices = [submitted(driver, "counting", {"n": n}, ALICE) for n in range(2)]
    submitted(driver, "counting", {"n": 9}, BOB)
    driver.deliver()
    alices.append(submitted(driver, "counting", {"n": 2}, ALICE))

    # WHEN Alice lists her counting tasks, and all her tasks
    kind = driver.list("counting", caller=ALICE)
    everything = driver.list(caller=ALICE)

    # THEN she sees hers alone, newest first, each as GET shows it
    assert kind.status == everything.status == 200
    assert kind.headers["Content-Type"] == "application/json"
    assert [item["task_id"] for item in kind.body["items"]] == alices[::-1]
    assert kind.body == everything.body
    assert kind.body["next_cursor"] is None
    assert [item["status"] for item in kind.body["items"]] == ["queued", "succeeded", "succeeded"]
    for item in kind.body["items"]:
        shown = driver.get("counting", item["task_id"], caller=ALICE).body
        # The task as GET shows it, less GET's hint to its poller of when to ask again (core.domain.polling): a listing is
        # polled as a whole.
        assert item == {key: value for key, value in shown.items() if key != "retry_after"}
        assert ("retry_after" in shown) == (shown["status"] == "queued")


def test_without_an_authorizer_everyone_is_the_public_caller_and_sees_every_task(driver: Driver) -> None:
    first = submitted(driver, "counting", {"n": 1}, None)
    second = submitted(driver, "counting", {"n": 2}, None)

    assert [item["task_id"] for item in driver.list(caller=None).body["items"]] == [second, first]
    assert driver.list(caller=ALICE).body["items"] == []


def test_pages_follow_their_cursor_and_filter_by_status(driver: Driver) -> None:
    # GIVEN five queued tasks, two of them cancelled
    ids = [submitted(driver, "counting", {"n": n}, ALICE) for n in range(5)]
    for task_id in ids[1:3]:
        assert driver.cancel("counting", task_id, caller=ALICE).status == 200

    # WHEN Alice pages through them two at a time, all of them, then the queued ones (both ways of naming statuses)
    every = driver.list_all_pages(None, ("limit", "2"), caller=ALICE)
    queued = driver.list_all_pages("counting", ("status", "queued"), ("limit", "2"), caller=ALICE)
    either = driver.list_all_pages("counting", ("status", "queued"), ("status", "cancelled"), caller=ALICE)
    commas = driver.list_all_pages("counting", ("status", "queued,cancelled"), caller=ALICE)

    # THEN every task comes once, in order, and the filters keep what they name
    assert [item["task_id"] for item in every] == ids[::-1]
    assert [item["task_id"] for item in queued] == [ids[4], ids[3], ids[0]]
    assert [item["status"] for item in either] == ["queued", "queued", "cancelled", "cancelled", "queued"]
    assert either == commas


def test_a_cursor_of_another_caller_or_listing_is_a_400_never_their_tasks(driver: Driver) -> None:
    # GIVEN a cursor Bob got for his own listing
    for n in range(3):
        submitted(driver, "counting", {"n": n}, BOB)
    submitted(driver, "counting", {"n": 7}, ALICE)
    bobs_cursor = driver.list(None, ("limit", "1"), caller=BOB).body["next_cursor"]
    assert bobs_cursor

    # WHEN Alice, or Bob with other filters, or anyone with an altered cursor, pass it on
    answers = [
        driver.list(None, ("limit", "1"), ("cursor", bobs_cursor), caller=ALICE),
        driver.list("counting", ("limit", "1"), ("cursor", bobs_cursor), caller=BOB),
        driver.list(None, ("status", "queued"), ("cursor", bobs_cursor), caller=BOB),
        driver.list(None, ("cursor", bobs_cursor[:-1] + ("A" if bobs_cursor[-1] != "A" else "B")), caller=BOB),
    ]

    # THEN each is refused, a problem naming the cursor
    for answer in answers:
        assert answer.status == 400
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert "cursor is not valid" in answer.body["detail"]
        assert "items" not in answer.body
    # AND the cursor goes on as it should for the listing it was given for
    assert driver.list(None, ("limit", "5"), ("cursor", bobs_cursor), caller=BOB).status == 200


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ([("status", "finished")], "'finished'"),
        ([("limit", "0")], "limit"),
        ([("limit", "500")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("sort", "asc")], "'sort'"),
        ([("cursor", "abc")], "cursor"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(driver: Driver, query: list[tuple[str, str]], named: str) -> None:
    answer = driver.list("counting", *query, caller=ALICE)

    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.body["title"] == "Malformed request"
    assert named in answer.body["detail"]


def test_listing_an_unknown_kind_of_task_is_a_404_naming_the_known_ones(driver: Driver) -> None:
    answer = driver.list("divide", caller=ALICE)

    assert answer.status == 404
    assert "counting" in answer.body["known_tasks"]


def test_a_page_whose_records_dynamodb_cannot_all_read_at_once_asks_again_for_the_rest(driver: Driver) -> None:
    # GIVEN two tasks, and DynamoDB answering the page's BatchGetItem with one key unprocessed, then the rest
    ids = [submitted(driver, "counting", {"n": n}, ALICE) for n in range(2)]
    client = dynamodb_client()
    real_batch_get = client.batch_get_item
    calls: list[dict[str, Any]] = []

    def partly(**request: Any) -> Any:
        calls.append(request)
        answer = real_batch_get(**request)
        if len(calls) == 1:
            table, read = next(iter(answer["Responses"].items()))
            answer["UnprocessedKeys"] = {table: {"Keys": [{"task_id": read[0]["task_id"]}], "ConsistentRead": True}}
            answer["Responses"][table] = read[1:]
        return answer

    # WHEN Alice lists them
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client, "batch_get_item", partly)
        page = driver.list(caller=ALICE)

    # THEN the page holds both, the second call asked only for the key left over
    assert [item["task_id"] for item in page.body["items"]] == ids[::-1]
    assert len(calls) == 2
    assert len(calls[1]["RequestItems"][driver.resources.table_name]["Keys"]) == 1


def test_a_throttled_listing_is_a_503_to_try_again(driver: Driver) -> None:
    client = dynamodb_client()
    with Stubber(client) as stubber:
        stubber.add_client_error("query", "ProvisionedThroughputExceededException", http_status_code=400)
        answer = driver.list(caller=ALICE)

    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"


def test_the_owner_index_is_the_one_the_template_declares(driver: Driver) -> None:
    indexes = driver.dynamodb.describe_table(TableName=driver.resources.table_name)["Table"]["GlobalSecondaryIndexes"]

    assert [index["IndexName"] for index in indexes] == [OWNER_INDEX]


def test_a_tasks_input_is_shown_to_its_owner_alone(driver: Driver) -> None:
    task_id = submitted(driver, "counting", {"n": 12}, ALICE)

    mine = driver.input("counting", task_id, caller=ALICE)
    theirs = driver.input("counting", task_id, caller=BOB)

    assert (mine.status, mine.body) == (200, {"n": 12})
    assert theirs.status == 404


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/dashboard", "text/html; charset=utf-8", "<title>"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8", "use strict"),
        ("/dashboard/app.css", "text/css; charset=utf-8", "progress"),
    ],
)
def test_the_dashboards_files_are_served_with_a_strict_content_security_policy(
    aws: object, path: str, content_type: str, marker: str
) -> None:
    # No authorizer: the page's routes take none.
    answer = result_handler(http_event("GET", path), lambda_context())

    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == content_type
    assert marker in answer["body"]
    policy = answer["headers"]["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff"


def _updated_attributes(request: dict[str, Any]) -> set[str]:
    """The attributes an UpdateItem's expression sets or removes, its #names resolved."""
    names = request.get("ExpressionAttributeNames", {})
    words = re.findall(r"#?\w+", re.sub(r":\w+", " ", request["UpdateExpression"]))
    keywords = {"SET", "REMOVE", "if_not_exists"}
    return {names.get(word, word) for word in words if word not in keywords}


def test_no_write_of_a_tasks_run_touches_what_the_owner_index_holds(aws: LocalResources) -> None:
    # GIVEN the DynamoDB store, every UpdateItem it sends recorded
    client = boto3.client("dynamodb")
    store = DynamoTaskStore(aws.table_name, client)
    sent: list[dict[str, Any]] = []
    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", lambda params, **_: sent.append(params))
    now = time.time()
    first = TaskRecord(str(uuid.uuid4()), "counting", TaskStatus.QUEUED, "{}", now, int(now) + 60, "alice")
    second = replace(first, task_id=str(uuid.uuid4()))
    third = replace(first, task_id=str(uuid.uuid4()))
    fourth = replace(first, task_id=str(uuid.uuid4()))
    for record in (first, second, third, fourth):
        store.create(record, now)

    # WHEN each update of the lifecycle is made
    claimed = store.claim(first.task_id, now, 30, started_at=now)
    store.report_progress(claimed, 0.5, time.time())
    store.mark_last_attempt(claimed)
    store.release(claimed, claimed=True)
    store.release(second, claimed=False)
    store.finish(replace(second, attempts=1), now, claimed=False, started_at=now, result_json="1")
    store.finish(store.claim(first.task_id, now, 30, started_at=now), now, claimed=True, started_at=now, error=FAILURE)
    store.cancel(third.task_id, now)
    store.give_up(fourth.task_id, now, FAILURE)

    # THEN none of them sets or removes an attribute of the index: the index is written at creation alone
    indexed = {"owner", "created_at", "task", "expires_at", "task_id"}
    assert len(sent) == 10
    for request in sent:
        assert not _updated_attributes(request) & indexed, request["UpdateExpression"]


def test_an_input_kept_in_the_payload_bucket_is_a_303_to_its_link(driver: Driver) -> None:
    # GIVEN a task whose input is too large for its record
    values = list(range(2000))
    task_id = submitted(driver, "describe", {"values": values}, ALICE)
    item = driver.item(task_id) or {}
    key = item["input_ref"]["S"]

    # WHEN its owner, then another caller, ask for its input
    mine = result_handler(http_event("GET", f"/describe/{task_id}/input", authorizer=ALICE), lambda_context())
    theirs = driver.input("describe", task_id, caller=BOB)

    # THEN the owner gets a link to the object that holds it; the other caller, nothing
    assert mine["statusCode"] == 303
    assert key in unquote(mine["headers"]["Location"])
    stored = driver.s3.get_object(Bucket=driver.resources.payload_bucket, Key=key)["Body"].read()
    assert json.loads(stored) == {"values": values}
    assert theirs.status == 404


def test_an_input_asked_for_without_redirect_is_a_200_with_the_input_or_its_link(driver: Driver) -> None:
    # GIVEN a task whose input the record holds, and one whose input is kept in the payload bucket
    small = submitted(driver, "describe", {"values": [1, 2]}, ALICE)
    values = list(range(2000))
    large = submitted(driver, "describe", {"values": values}, ALICE)
    key = (driver.item(large) or {})["input_ref"]["S"]

    def ask(task_id: str, *query: tuple[str, str]) -> dict[str, Any]:
        event = http_event("GET", f"/describe/{task_id}/input", authorizer=ALICE, query=list(query))
        answer: dict[str, Any] = result_handler(event, lambda_context())
        return answer

    # WHEN a browser page asks for each with redirect=false (its fetch cannot follow a 303 to S3)
    inline, linked = ask(small, ("redirect", "false")), ask(large, ("redirect", "false"))

    # THEN the first is the input itself, the second where to download it, its size and for how long
    assert (inline["statusCode"], json.loads(inline["body"])) == (200, {"input": {"values": [1, 2]}})
    link = json.loads(linked["body"])
    assert linked["statusCode"] == 200
    assert key in unquote(link["input_url"])
    stored = driver.s3.get_object(Bucket=driver.resources.payload_bucket, Key=key)["Body"].read()
    assert link["input_bytes"] == len(stored)
    assert link["expires_in"] == RESULT_URL_SECONDS
    # AND without it, or with redirect=true, the answers are as before; anything else is a 400
    assert ask(large)["statusCode"] == ask(large, ("redirect", "true"))["statusCode"] == 303
    assert json.loads(ask(small)["body"]) == {"values": [1, 2]}
    assert ask(large, ("redirect", "no"))["statusCode"] == 400


def test_the_dashboards_script_never_writes_markup_and_keeps_the_token_in_the_tab() -> None:
    # API data reaches the page as text nodes only; the token never outlives the tab, nor goes into a URL's query.
    script = (STATIC / "app.js").read_text()

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "localStorage" not in script
    assert "sessionStorage.setItem(TOKEN_KEY" in script
    assert "Authorization = `Bearer ${token()}`" in script
