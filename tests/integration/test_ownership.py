"""A task belongs to the caller who submitted it: to anyone else it does not exist (issue: safe to deploy)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from core.services.tasks import idempotent_task_id
from tests.support.driver import Driver, iam_caller, jwt_caller

ALICE = iam_caller("arn:aws:sts::123456789012:assumed-role/analyst-alice/botocore-session-1733000001")
ALICE_AGAIN = iam_caller("arn:aws:sts::123456789012:assumed-role/analyst-alice/botocore-session-1733000999")
BOB = iam_caller("arn:aws:iam::123456789012:user/bob")


@pytest.mark.parametrize(
    ("owner", "other"), [(ALICE, BOB), (jwt_caller("alice"), jwt_caller("bob"))], ids=["IAM", "JWT"]
)
def test_another_callers_task_is_a_404_like_a_task_that_never_existed(
    driver: Driver, owner: dict[str, object], other: dict[str, object]
) -> None:
    # GIVEN a task of one caller, and an id nobody ever used
    task_id = driver.submit("counting", {"n": 7}, caller=owner).body["task_id"]
    unknown = str(uuid.uuid4())

    # WHEN another caller reads or cancels it
    read = driver.get("counting", task_id, caller=other)
    cancelled = driver.cancel("counting", task_id, caller=other)

    # THEN both answers are those for an unknown id, but for the id itself
    for answer, method in ((read, driver.get), (cancelled, driver.cancel)):
        never = method("counting", unknown, caller=other)
        assert answer.status == never.status == 404
        assert answer.headers == never.headers
        assert json.dumps(answer.body).replace(task_id, "ID") == json.dumps(never.body).replace(unknown, "ID")
    # AND the task is as its owner left it: still queued, and it runs
    assert driver.get("counting", task_id, caller=owner).body["status"] == "queued"
    driver.deliver()
    assert driver.get("counting", task_id, caller=owner).body["result"] == 7


def test_the_same_idempotency_key_from_two_callers_makes_two_tasks(driver: Driver) -> None:
    key = {"Idempotency-Key": "order-42"}

    alices = driver.submit("counting", {"n": 1}, key, caller=ALICE).body["task_id"]
    bobs = driver.submit("counting", {"n": 2}, key, caller=BOB).body["task_id"]

    assert alices != bobs
    assert driver.get("counting", alices, caller=ALICE).body["status"] == "queued"
    assert driver.get("counting", bobs, caller=BOB).body["status"] == "queued"
    assert driver.get("counting", bobs, caller=ALICE).status == 404


def test_a_new_session_of_the_same_role_replays_its_idempotent_task(driver: Driver) -> None:
    # GIVEN a task submitted with a key by a role, from one process (one session name)
    key = {"Idempotency-Key": "nightly-2026-12-02"}
    first = driver.submit("counting", {"n": 3}, key, caller=ALICE)

    # WHEN a re-run CLI (a new session of the same role) sends the same request
    again = driver.submit("counting", {"n": 3}, key, caller=ALICE_AGAIN)

    # THEN it gets the same task, which it may read
    assert again.status == 202
    assert again.body["task_id"] == first.body["task_id"]
    assert driver.get("counting", first.body["task_id"], caller=ALICE_AGAIN).body["status"] == "queued"


def test_an_idempotent_task_id_cannot_be_derived_from_public_values(driver: Driver) -> None:
    # GIVEN what anybody may know: the task, the caller's ARN, the key
    owner_arn = "arn:aws:iam::123456789012:user/bob"
    task_id = driver.submit("counting", {"n": 4}, {"Idempotency-Key": "order-42"}, caller=BOB).body["task_id"]

    # THEN the id is none of the ids public values give (the former uuid5 of them included), and the same values
    # under another key give another id
    public = json.dumps(["counting", owner_arn, "order-42"])
    assert task_id != str(uuid.uuid5(uuid.UUID("0b5c3f0e-8f2a-4c59-9d1e-6f1b8a3c2d47"), public))
    assert task_id != idempotent_task_id(b"", "counting", owner_arn, "order-42")
    assert task_id != idempotent_task_id(b"another secret", "counting", owner_arn, "order-42")
    assert uuid.UUID(task_id).version == 8


def test_without_an_authorizer_every_task_is_shared(driver: Driver) -> None:
    task_id = driver.submit("counting", {"n": 5}).body["task_id"]

    assert driver.get("counting", task_id).body["status"] == "queued"
    assert driver.cancel("counting", task_id).body["status"] == "cancelled"


@pytest.mark.parametrize(
    "caller",
    [
        {"jwt": {"claims": {"iss": "https://issuer.example.com", "aud": "tasks"}, "scopes": None}},
        jwt_caller(""),
    ],
    ids=["no sub", "empty sub"],
)
def test_a_valid_token_that_names_no_caller_is_a_403_on_every_route(driver: Driver, caller: dict[str, object]) -> None:
    task_id = str(uuid.uuid4())
    answers = [
        driver.submit("counting", {"n": 1}, caller=caller),
        driver.create_upload(caller=caller),
        driver.get("counting", task_id, caller=caller),
        driver.cancel("counting", task_id, caller=caller),
        driver.input("counting", task_id, caller=caller),
        driver.list("counting", caller=caller),
        driver.list(None, caller=caller),
    ]

    for answer in answers:
        assert answer.status == 403, answer.body
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.body["title"] == "Caller not identified"
        assert "sub claim" in answer.body["detail"]
    assert driver.dynamodb.scan(TableName=driver.resources.table_name)["Count"] == 0


def test_a_subject_too_long_for_a_key_owns_its_tasks_and_nobody_else_does(driver: Driver) -> None:
    # GIVEN two subjects over DynamoDB's 2,048-byte key limit, alike but for their last character
    long_one, long_two = jwt_caller("a" * 2022), jwt_caller("a" * 2021 + "b")

    # WHEN the first submits a task
    submitted = driver.submit("counting", {"n": 4}, caller=long_one)

    # THEN it is accepted, and shown, listed and run for its owner alone
    assert submitted.status == 202, submitted.body
    task_id = submitted.body["task_id"]
    assert driver.get("counting", task_id, caller=long_one).body["status"] == "queued"
    assert [item["task_id"] for item in driver.list("counting", caller=long_one).body["items"]] == [task_id]
    assert driver.get("counting", task_id, caller=long_two).status == 404
    assert driver.list("counting", caller=long_two).body["items"] == []
    driver.deliver()
    assert driver.get("counting", task_id, caller=long_one).body["result"] == 4


@pytest.fixture
def role_session_owners(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stack deployed with IamOwner RoleSession."""
    from core.settings import iam_owner

    monkeypatch.setenv("IAM_OWNER", "RoleSession")
    iam_owner.cache_clear()
    yield
    iam_owner.cache_clear()


@pytest.mark.usefixtures("role_session_owners")
def test_with_iam_owner_role_session_two_sessions_of_one_role_are_two_owners(driver: Driver) -> None:
    # GIVEN two users of one permission set, each in a session named after them
    alice = iam_caller("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Analyst_0123/alice@example.com")
    bob = iam_caller("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Analyst_0123/bob@example.com")

    # WHEN alice submits a task
    task_id = driver.submit("counting", {"n": 1}, caller=alice).body["task_id"]

    # THEN it is hers alone
    assert driver.get("counting", task_id, caller=alice).status == 202
    assert driver.get("counting", task_id, caller=bob).status == 404
    assert driver.list("counting", caller=bob).body["items"] == []


def test_by_default_two_sessions_of_one_role_are_one_owner(driver: Driver) -> None:
    task_id = driver.submit("counting", {"n": 1}, caller=ALICE).body["task_id"]

    assert driver.get("counting", task_id, caller=ALICE_AGAIN).status == 202
