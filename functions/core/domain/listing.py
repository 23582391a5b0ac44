"""Listing a caller's tasks, newest first, a page at a time: the query a request asks for, where a page stops, and the
opaque cursor that resumes it.

A page is read from the table's owner index (core.adapters.dynamodb_store) and filtered here by status, on the status a reader
sees (core.domain.lifecycle.view: a last attempt whose lease has lapsed reads as failed), which no filter on the stored
attribute could give. A page examines at most MAX_EXAMINED records, so that a rare status costs a bounded read per
request: it may hold fewer than `limit` tasks, none even, and still have a next_cursor.

The cursor is the position of the last record examined, signed with a key of the stack's (HMAC-SHA256) together with
the caller and the filters it was issued for: a cursor that was altered, or comes from another caller or another
listing, is refused (400). The query always names the caller's own partition, whatever a cursor holds, so no cursor
could reach another caller's tasks in any case; the signature makes such a cursor an error rather than a silent
restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from core.domain.records import TaskRecord, TaskStatus
from core.errors import MalformedRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Records a page reads at most: a status filter that matches little stops there, with a cursor to go on from.
MAX_EXAMINED = 200
QUERY_PARAMETERS = ("status", "limit", "cursor")
_CURSOR_LABEL = b"long-running-tasks list cursor v1"
_TAG_BYTES = 16


class ListPosition(msgspec.Struct, frozen=True):
    """Where a listing stopped: the owner index's sort key and the table's key of the last record examined."""

    created_at: float
    task_id: str

    @classmethod
    def of(cls, record: TaskRecord) -> ListPosition:
        return cls(record.created_at, record.task_id)


class OwnedTasks(msgspec.Struct, frozen=True):
    """Records of one owner, newest first, as a store returns them: `next` is where to go on from (None: the end)."""

    records: tuple[TaskRecord, ...]
    next: ListPosition | None


class Listing(msgspec.Struct, frozen=True):
    """What one request lists: a caller's tasks (of one kind, or all), in some states (none given: any)."""

    owner: str
    task: str | None = None
    statuses: frozenset[TaskStatus] = frozenset()
    limit: int = DEFAULT_LIMIT
    after: ListPosition | None = None

    def shows(self, record: TaskRecord) -> bool:
        return not self.statuses or record.status in self.statuses


class TaskPage(msgspec.Struct, frozen=True):
    records: tuple[TaskRecord, ...]
    next: ListPosition | None


def parse_listing(
    parameters: Mapping[str, str], *, owner: str, task: str | None, cursor_key: Callable[[], bytes]
) -> Listing:
    """The listing a request's query parameters ask for; MalformedRequest (400) naming what is wrong.

    API Gateway hands a repeated parameter over joined with commas (payload 2.0), so `status=queued&status=running`
    and `status=queued,running` are the same request."""
    unknown = sorted(set(parameters) - set(QUERY_PARAMETERS))
    if unknown:
        raise MalformedRequest(
            f"unknown query parameter {', '.join(map(repr, unknown))}; known: {', '.join(QUERY_PARAMETERS)}"
        )
    listing = Listing(owner=owner, task=task, statuses=_statuses(parameters.get("status")))
    listing = msgspec.structs.replace(listing, limit=_limit(parameters.get("limit")))
    cursor = parameters.get("cursor")
    if cursor is not None:
        listing = msgspec.structs.replace(listing, after=read_cursor(cursor, listing, cursor_key()))
    return listing


def _statuses(raw: str | None) -> frozenset[TaskStatus]:
    if raw is None:
        return frozenset()
    names = [name.strip() for name in raw.split(",")]
    known = [status.value for status in TaskStatus]
    wrong = [name for name in names if name not in known]
    if wrong:
        raise MalformedRequest(f"status must be one of {', '.join(known)}; got {', '.join(map(repr, wrong))}")
    return frozenset(TaskStatus(name) for name in names)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise MalformedRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {raw!r}")
    return int(raw)


def _tag(key: bytes, listing: Listing, position: list[str]) -> bytes:
    """The cursor's signature: over the position, the caller and the filters, under a key of the listing's own."""
    cursor_key = hmac.new(key, _CURSOR_LABEL, hashlib.sha256).digest()
    bound = [listing.owner, listing.task or "", sorted(listing.statuses), *position]
    message = json.dumps(bound, separators=(",", ":")).encode()
    return hmac.new(cursor_key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # one spelling per cursor: a last character that differs in its unused bits is refused too
        raise ValueError("not canonical base64url")
    return data


def write_cursor(position: ListPosition, listing: Listing, key: bytes) -> str:
    """`<position>.<signature>`, both base64url: opaque to the caller, only valid for the same caller and filters."""
    fields = [repr(position.created_at), position.task_id]
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_tag(key, listing, fields))}"


def read_cursor(cursor: str, listing: Listing, key: bytes) -> ListPosition:
    """The position a cursor of this listing holds; MalformedRequest for any other cursor."""
    refused = MalformedRequest(
        "cursor is not valid here: pass the next_cursor of the previous page unchanged, "
        "with the same task and status filters"
    )
    payload, dot, tag = cursor.partition(".")
    try:
        fields: Any = json.loads(_unb64(payload)) if dot and cursor.isascii() else None
        given_tag = _unb64(tag) if fields is not None else b""
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise refused from exc
    if not (isinstance(fields, list) and len(fields) == 2 and all(isinstance(field, str) for field in fields)):
        raise refused
    if not hmac.compare_digest(given_tag, _tag(key, listing, fields)):
        raise refused
    created_at, task_id = fields
    try:
        position = ListPosition(float(created_at), str(uuid.UUID(task_id)))
    except ValueError as exc:
        raise refused from exc
    if not math.isfinite(position.created_at):
        raise refused
    return position


def listed(record: TaskRecord) -> dict[str, Any]:
    """A task as a listing shows it: as GET shows it, but that a result kept in the payload bucket (over 8 KiB) is given
    by its size alone, result_bytes, with no download link: a page would sign a link for each, to expire in minutes,
    where GET /<task>/<task_id>/result signs one when asked. A page of a hundred so stays under a megabyte."""
    body = record.to_public()
    if record.status is TaskStatus.SUCCEEDED and record.result_ref is not None:
        body["result_bytes"] = record.result_bytes
    return body
