"""The two stores list alike: the in-memory store of the domain tests and the DynamoDB store (its owner index, the
table built from template.yaml in moto) give the same pages for the same records and listings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest
from msgspec.structs import replace

from core.adapters.dynamodb_store import DynamoTaskStore
from core.adapters.memory_store import InMemoryTaskStore
from core.domain.listing import Listing, ListPosition
from core.domain.records import TaskRecord, TaskStatus
from core.domain.store import TaskStore
from core.services.tasks import TaskService
from devstack.resources import LocalResources

NOW = 1_795_831_200.0
ALICE, BOB = "arn:aws:iam::123456789012:role/alice", "arn:aws:iam::123456789012:role/bob"
KINDS = ("multiply", "fit", "describe")
STATUSES = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


def records() -> list[TaskRecord]:
    """Forty tasks of two callers, three kinds and every status, created a second apart; two of them expired."""
    made = []
    for n in range(40):
        status = STATUSES[n % len(STATUSES)]
        made.append(
            TaskRecord(
                task_id=str(uuid.UUID(int=1000 + n)),
                task=KINDS[n % 3],
                status=status,
                input_json=f'{{"n":{n}}}',
                created_at=NOW - 100 + n + 0.25,
                expires_at=int(NOW) + (-5 if n in (7, 30) else 86_400),
                owner=BOB if n % 4 == 0 else ALICE,
                attempts=0 if status is TaskStatus.QUEUED else 1,
                started_at=None if status is TaskStatus.QUEUED else NOW - 50,
                lease_until=NOW + 60 if status is TaskStatus.RUNNING else None,
                finished_at=NOW - 10 if status.is_terminal else None,
                result_json=f'{{"n":{n}}}' if status is TaskStatus.SUCCEEDED else None,
            )
        )
    return made


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[TaskStore]:
    if request.param == "memory":
        yield InMemoryTaskStore()
        return
    resources: LocalResources = request.getfixturevalue("aws")
    yield DynamoTaskStore(resources.table_name, boto3.client("dynamodb"))


@pytest.fixture
def service(store: TaskStore) -> TaskService:
    for record in records():
        store.create(record, record.created_at)
    return TaskService(store, retention_days=7, id_secret=lambda: b"secret", clock=lambda: NOW)


def every_page(service: TaskService, listing: Listing) -> list[list[str]]:
    pages, after = [], None
    for _ in range(50):
        page = service.list_tasks(replace(listing, after=after))
        pages.append([record.task_id for record in page.records])
        after = page.next
        if after is None:
            return pages
    raise AssertionError("the listing never ended")


def expected(keep: Callable[[TaskRecord], bool]) -> list[str]:
    live = [record for record in records() if record.expires_at > NOW and keep(record)]
    return [record.task_id for record in sorted(live, key=lambda record: record.created_at, reverse=True)]


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
def test_store_lists_a_callers_live_tasks_newest_first_across_pages(service: TaskService, limit: int) -> None:
    pages = every_page(service, Listing(owner=ALICE, limit=limit))

    assert [task_id for page in pages for task_id in page] == expected(lambda record: record.owner == ALICE)
    assert all(len(page) == limit for page in pages[:-1])


@pytest.mark.parametrize("kind", KINDS)
def test_store_lists_one_kind_of_task(service: TaskService, kind: str) -> None:
    pages = every_page(service, Listing(owner=ALICE, task=kind, limit=4))

    assert [task_id for page in pages for task_id in page] == expected(
        lambda record: record.owner == ALICE and record.task == kind
    )


@pytest.mark.parametrize(
    ("task", "statuses"),
    [
        (None, {TaskStatus.RUNNING}),
        (None, {TaskStatus.QUEUED, TaskStatus.FAILED}),
        ("fit", {TaskStatus.SUCCEEDED, TaskStatus.CANCELLED}),
    ],
)
def test_store_lists_by_status(service: TaskService, task: str | None, statuses: set[TaskStatus]) -> None:
    listing = Listing(owner=BOB, task=task, statuses=frozenset(statuses), limit=2)

    pages = every_page(service, listing)

    assert [task_id for page in pages for task_id in page] == expected(
        lambda record: record.owner == BOB and record.status in statuses and (task is None or record.task == task)
    )


def test_store_pages_resume_after_any_position_given(store: TaskStore, service: TaskService) -> None:
    # GIVEN the position of a record in the middle of a caller's listing
    mine = expected(lambda record: record.owner == ALICE)
    middle = next(record for record in records() if record.task_id == mine[10])

    # WHEN a page starts after it
    owned = store.list_owned(ALICE, task=None, after=ListPosition.of(middle), limit=5, now=NOW)

    # THEN it holds the five records after it, and says where to go on
    assert [record.task_id for record in owned.records] == mine[11:16]
    assert owned.next == ListPosition.of(owned.records[-1])


def test_store_says_a_listing_has_ended(store: TaskStore, service: TaskService) -> None:
    mine = expected(lambda record: record.owner == ALICE)

    owned = store.list_owned(ALICE, task=None, after=None, limit=len(mine) + 1, now=NOW)

    assert [record.task_id for record in owned.records] == mine
    assert owned.next is None
    assert owned.records[0] == next(record for record in records() if record.task_id == mine[0])
