"""Listing's rules (core.domain.listing, TaskService.list_tasks) over the in-memory store: query parameters, the signed cursor,
the status filter on what a reader sees, the page's bounds. tests/integration/test_listing_contract.py runs the
DynamoDB store through the same listings."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from msgspec.structs import replace

from core.adapters.memory_store import InMemoryTaskStore
from core.domain.listing import (
    DEFAULT_LIMIT,
    MAX_EXAMINED,
    Listing,
    ListPosition,
    listed,
    parse_listing,
    read_cursor,
    write_cursor,
)
from core.domain.records import TaskRecord, TaskStatus
from core.errors import MalformedRequest
from core.services.tasks import TaskService

NOW = 1_795_831_200.0
KEY = b"the stack's secret"
ALICE, BOB = "https://issuer.example.com#alice", "https://issuer.example.com#bob"


def record(n: int, *, owner: str = ALICE, task: str = "multiply", **changes: object) -> TaskRecord:
    """The n-th task, created n seconds after NOW - 1000."""
    base = TaskRecord(
        task_id=str(uuid.UUID(int=n)),
        task=task,
        status=TaskStatus.QUEUED,
        input_json='{"x":2,"y":3}',
        created_at=NOW - 1000 + n,
        expires_at=int(NOW) + 86_400,
        owner=owner,
    )
    return replace(base, **changes)


def service_over(*records: TaskRecord) -> TaskService:
    store = InMemoryTaskStore()
    for each in records:
        store.create(each, each.created_at)
    return TaskService(store, retention_days=7, id_secret=lambda: KEY, clock=lambda: NOW)


def parse(*pairs: tuple[str, str], owner: str = ALICE, task: str | None = None) -> Listing:
    joined: dict[str, list[str]] = {}
    for name, value in pairs:
        joined.setdefault(name, []).append(value)
    parameters = {name: ",".join(values) for name, values in joined.items()}
    return parse_listing(parameters, owner=owner, task=task, cursor_key=lambda: KEY)


# ---- query parameters


def test_parse_listing_defaults_to_any_status_and_twenty() -> None:
    assert parse() == Listing(owner=ALICE, limit=DEFAULT_LIMIT)


def test_parse_listing_takes_repeated_and_comma_separated_statuses_alike() -> None:
    repeated = parse(("status", "queued"), ("status", "running"))
    commas = parse(("status", "queued,running"))

    assert repeated.statuses == commas.statuses == {TaskStatus.QUEUED, TaskStatus.RUNNING}


@pytest.mark.parametrize(
    ("pairs", "names"),
    [
        ((("status", "done"),), "'done'"),
        ((("status", "queued,"),), "''"),
        ((("limit", "0"),), "limit"),
        ((("limit", "101"),), "limit"),
        ((("limit", "2.5"),), "limit"),
        ((("limit", "-1"),), "limit"),
        ((("limit", "\uff11"),), "limit"),  # a full-width 1: isdigit() says yes, and int() would read it
        ((("limit", "5"), ("limit", "6")), "'5,6'"),
        ((("page", "2"),), "'page'"),
    ],
)
def test_parse_listing_refuses_a_bad_parameter_naming_it(pairs: tuple[tuple[str, str], ...], names: str) -> None:
    with pytest.raises(MalformedRequest) as refused:
        parse(*pairs)

    assert names in refused.value.detail
    assert refused.value.status == 400


# ---- the cursor


def test_a_cursor_reads_back_as_the_position_it_was_written_for() -> None:
    listing = parse(("status", "failed"), task="fit")
    position = ListPosition(NOW - 0.123456, str(uuid.uuid4()))

    cursor = write_cursor(position, listing, KEY)

    assert read_cursor(cursor, listing, KEY) == position
    assert parse(("status", "failed"), ("cursor", cursor), task="fit").after == position


@pytest.mark.parametrize(
    "other",
    [
        Listing(owner=BOB, task="fit", statuses=frozenset({TaskStatus.FAILED})),
        Listing(owner=ALICE, task=None, statuses=frozenset({TaskStatus.FAILED})),
        Listing(owner=ALICE, task="multiply", statuses=frozenset({TaskStatus.FAILED})),
        Listing(owner=ALICE, task="fit", statuses=frozenset()),
        Listing(owner=ALICE, task="fit", statuses=frozenset({TaskStatus.FAILED, TaskStatus.QUEUED})),
    ],
    ids=["another caller", "all kinds", "another kind", "no status", "more statuses"],
)
def test_a_cursor_is_refused_by_any_other_caller_or_listing(other: Listing) -> None:
    issued_for = Listing(owner=ALICE, task="fit", statuses=frozenset({TaskStatus.FAILED}))
    cursor = write_cursor(ListPosition(NOW, str(uuid.uuid4())), issued_for, KEY)

    with pytest.raises(MalformedRequest, match="cursor is not valid"):
        read_cursor(cursor, other, KEY)


def _tampered_position(cursor: str) -> str:
    payload, _, tag = cursor.partition(".")
    created_at, task_id = json.loads(base64.urlsafe_b64decode(payload + "=="))
    moved = json.dumps([repr(float(created_at) + 1), task_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(moved).rstrip(b"=").decode() + "." + tag


@pytest.mark.parametrize(
    "spoil",
    [
        _tampered_position,
        lambda cursor: cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        lambda cursor: cursor.replace(".", ""),
        lambda cursor: "",
        lambda cursor: "e30.AAAA",  # "{}" with a short tag
        lambda cursor: "!!!." + cursor.partition(".")[2],
        lambda cursor: cursor + "é",
    ],
    ids=["position moved", "signature changed", "no separator", "empty", "not a position", "not base64", "not ascii"],
)
def test_a_tampered_or_malformed_cursor_is_refused(spoil: object) -> None:
    listing = parse()
    cursor = write_cursor(ListPosition(NOW, str(uuid.uuid4())), listing, KEY)
    assert callable(spoil)

    with pytest.raises(MalformedRequest, match="cursor is not valid"):
        read_cursor(spoil(cursor), listing, KEY)


def test_a_cursor_signed_with_another_stacks_secret_is_refused() -> None:
    listing = parse()
    cursor = write_cursor(ListPosition(NOW, str(uuid.uuid4())), listing, b"another stack's secret")

    with pytest.raises(MalformedRequest):
        read_cursor(cursor, listing, KEY)


# ---- pages


def test_list_tasks_shows_only_the_callers_tasks_newest_first() -> None:
    service = service_over(record(1), record(2, owner=BOB), record(3), record(4, task="fit"))

    page = service.list_tasks(Listing(owner=ALICE))

    assert [each.task_id for each in page.records] == [record(4).task_id, record(3).task_id, record(1).task_id]
    assert page.next is None


def test_list_tasks_of_one_kind_leaves_out_the_others() -> None:
    service = service_over(record(1), record(2, task="fit"), record(3))

    page = service.list_tasks(Listing(owner=ALICE, task="fit"))

    assert [each.task for each in page.records] == ["fit"]


def test_list_tasks_leaves_out_expired_tasks() -> None:
    service = service_over(record(1, expires_at=int(NOW) - 1), record(2))

    assert [each.task_id for each in service.list_tasks(Listing(owner=ALICE)).records] == [record(2).task_id]


def test_list_page_follows_its_cursor_through_every_task_once() -> None:
    records = [record(n) for n in range(1, 8)]
    service = service_over(*records)

    seen, cursor = [], None
    for _ in range(10):
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = service.list_page(query, owner=ALICE)
        seen += [item["task_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [each.task_id for each in reversed(records)]


def test_a_status_filter_sees_a_lapsed_last_attempt_as_failed() -> None:
    # GIVEN a last attempt whose worker stopped (its lease has lapsed), stored as running
    gave_up = record(1, status=TaskStatus.RUNNING, attempts=3, lease_until=NOW - 1, last_attempt=True)
    running = record(2, status=TaskStatus.RUNNING, attempts=1, lease_until=NOW + 60)
    service = service_over(gave_up, running)

    # WHEN the caller lists failed tasks, then running ones
    failed = service.list_tasks(Listing(owner=ALICE, statuses=frozenset({TaskStatus.FAILED})))
    still_running = service.list_tasks(Listing(owner=ALICE, statuses=frozenset({TaskStatus.RUNNING})))

    # THEN each is where a GET would put it
    assert [(each.task_id, each.status) for each in failed.records] == [(gave_up.task_id, TaskStatus.FAILED)]
    assert [each.task_id for each in still_running.records] == [running.task_id]


def test_a_rare_status_ends_a_page_after_max_examined_records_with_a_cursor() -> None:
    # GIVEN more finished tasks than a page examines, and one queued task older than all of them
    finished = [record(n, status=TaskStatus.SUCCEEDED, result_json="1") for n in range(2, MAX_EXAMINED + 12)]
    service = service_over(record(1), *finished)
    queued_only = {"status": "queued", "limit": "5"}

    # WHEN the caller lists queued tasks
    first = service.list_page(queued_only, owner=ALICE)
    second = service.list_page({**queued_only, "cursor": first["next_cursor"]}, owner=ALICE)

    # THEN the first page stops, empty, where it had to; the next one finds the task
    assert first["items"] == []
    assert first["next_cursor"] is not None
    assert [item["task_id"] for item in second["items"]] == [record(1).task_id]
    assert second["next_cursor"] is None


def test_a_listed_task_is_what_get_shows_but_a_result_kept_apart_has_no_link() -> None:
    small = record(1, status=TaskStatus.SUCCEEDED, result_json=json.dumps({"a": 1}), finished_at=NOW)
    large = replace(small, result_json=None, result_ref=f"results/{small.task_id}", result_bytes=9000)

    assert listed(small) == small.to_public()
    assert "result" in listed(small)
    assert listed(large) == {**large.to_public(), "result_bytes": 9000}
    assert "result_url" not in listed(large)
    assert "result" not in listed(large)
