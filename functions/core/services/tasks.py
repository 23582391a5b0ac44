"""What the API does with a task: submit it, show it, cancel it. Plain Python over a store and a queue: the AWS
adapters behind them raise domain errors (core.errors, TransitionRefused), never botocore's."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from core.adapters.executions import ENDED_STATUSES, DurableExecutions
from core.adapters.payloads import (
    INLINE_INPUT_MAX_BYTES,
    UPLOAD_URL_SECONDS,
    InputLimit,
    PayloadStore,
    UploadForm,
    input_key,
    upload_key,
)
from core.adapters.queue import TaskMessage, TaskQueue
from core.domain.lifecycle import view
from core.domain.listing import (
    MAX_EXAMINED,
    MAX_LIMIT,
    Listing,
    ListPosition,
    TaskPage,
    listed,
    parse_listing,
    write_cursor,
)
from core.domain.records import TaskRecord, TaskStatus
from core.domain.store import TaskStore, TransitionRefused, UploadTaken
from core.errors import (
    Conflict,
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    QueueUnavailable,
    ServiceUnavailable,
    StoreUnavailable,
    TaskNotFound,
)
from core.services.dead_letters import execution_ended
from core.services.webhooks import UrlPolicy, check_url

# The registry (and the task modules under it) is imported by submit only: GET and DELETE read the record, so the
# result function starts without them.
if TYPE_CHECKING:
    from core.registry import TaskDefinition

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
SECONDS_PER_DAY = 86_400
# How long the message that an idempotent replay sends again for a still-queued task stays hidden: longer than the
# submit function's Timeout (10 s in template.yaml, and a template test keeps it below this), by when the first
# submission has sent its message or stopped, and its task has been claimed (after a second's run) or finished.
RESEND_DELAY_SECONDS = 15


# The header that names an upload as a submission's input (its body then stays empty).
UPLOAD_HEADER = "Input-Upload"


class Upload(msgspec.Struct, frozen=True):
    """Where the caller sends an input too large for a request: POST the form's fields and the file to its URL, then
    submit the task with the upload's id in the Input-Upload header."""

    upload_id: str
    form: UploadForm
    expires_at: float
    max_bytes: int


class Submission(msgspec.Struct, frozen=True):
    record: TaskRecord
    # True when an Idempotency-Key matched an earlier submission and nothing new was queued.
    replayed: bool = False


def parse_task_id(task_id: str) -> str:
    try:
        return str(uuid.UUID(task_id))
    except ValueError as exc:
        raise MalformedRequest(f"task id {task_id!r} is not a UUID") from exc


def idempotent_task_id(secret: bytes, task: str, owner: str, idempotency_key: str) -> str:
    """The id of the task that (task, owner, key) names: an HMAC under the stack's secret, so that the same key from
    the same caller finds its task again while nobody can compute another caller's id from public values. Shaped as a
    UUID (version 8: RFC 9562's form for ids of one's own making)."""
    digest = bytearray(hmac.new(secret, json.dumps([task, owner, idempotency_key]).encode(), hashlib.sha256).digest())
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest[:16])))


# How long past a durable task's last lease its runner may be silent before GET asks Lambda how its execution is: longer
# than any pause between invocations (the SDK's retry delays are at most 5 minutes).
QUIET_DURABLE_SECONDS = 600

# Reads of the store one page makes at most, whatever its filters find (each read is bounded too: core.adapters.dynamodb_store).
MAX_LIST_READS = 4


def _no_secret() -> bytes:
    raise RuntimeError("TaskService needs id_secret to accept an Idempotency-Key or to list tasks")


class TaskService:
    def __init__(
        self,
        store: TaskStore,
        queue: TaskQueue | None = None,
        *,
        retention_days: int,
        payloads: PayloadStore | None = None,
        id_secret: Callable[[], bytes] = _no_secret,
        clock: Callable[[], float] = time.time,
        webhook_url_policy: UrlPolicy = UrlPolicy.PUBLIC,
        executions: DurableExecutions | None = None,
        durable_task_seconds: int = 0,
        input_limit: InputLimit | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._payloads = payloads
        self._retention_seconds = retention_days * SECONDS_PER_DAY
        # The stack's secret, which idempotent ids and list cursors derive their keys from. Called only for an idempotent
        # submission or a listing: plain submissions never pay for fetching it.
        self._id_secret = id_secret
        self._clock = clock
        self._webhook_url_policy = webhook_url_policy
        # A cancelled durable task's execution is stopped (core.adapters.executions).
        self._executions = executions
        # A durable task may run this long (DurableTaskTimeout): its record is kept for that and the retention.
        self._durable_task_seconds = durable_task_seconds
        # The largest input the worker can take (its memory); needed by submissions and uploads only.
        self._input_limit = input_limit

    def create_upload(self, owner: str, declared_bytes: int | None = None) -> Upload:
        """A form for uploading an input straight to the payload bucket, for `owner` alone to submit. `declared_bytes`:
        the file's size (upload_size), 413 when that is more than a task can take. The form allows that many bytes, or
        without a size what a task can take: S3 refuses a larger file."""
        limit = self._limit_or_fail()
        max_bytes = limit.max_bytes
        if declared_bytes is not None:
            if declared_bytes > max_bytes:
                raise PayloadTooLarge(limit.refusal(declared_bytes), max_bytes=max_bytes)
            max_bytes = declared_bytes
        upload_id = str(uuid.uuid4())
        form = self._payloads_or_fail().upload_form(upload_key(owner, upload_id), max_bytes, UPLOAD_URL_SECONDS)
        return Upload(upload_id, form, self._clock() + UPLOAD_URL_SECONDS, max_bytes)

    def _limit_or_fail(self) -> InputLimit:
        if self._input_limit is None:
            raise RuntimeError("TaskService needs the worker's input limit to accept inputs and uploads")
        return self._input_limit

    def _payloads_or_fail(self) -> PayloadStore:
        if self._payloads is None:
            raise RuntimeError("TaskService needs a payload store for large inputs and uploads")
        return self._payloads

    def submit(
        self,
        definition: TaskDefinition,
        inputs: Any,
        *,
        owner: str,
        idempotency_key: str | None = None,
        upload_id: str | None = None,
        webhook_url: str | None = None,
    ) -> Submission:
        """Validate, record as queued, then enqueue. Nothing is stored or sent for invalid input.

        `inputs`: the body's inputs; or, with `upload_id`, None: the input is the caller's upload, which the worker
        validates before the run (a task whose upload does not fit its model fails, with the 422's errors).
        `webhook_url`: the Webhook-URL header, checked against the stack's policy (core.services.webhooks) before anything is
        stored; the delivery checks the address it connects to again."""
        if webhook_url is not None:
            check_url(webhook_url, self._webhook_url_policy)
        task_name = definition.name
        now = self._clock()
        task_id = str(uuid.uuid4())
        if idempotency_key is not None:
            if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
                raise MalformedRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
            task_id = idempotent_task_id(self._id_secret(), task_name, owner, idempotency_key)
        input_version = None
        if upload_id is not None:
            input_json, (input_ref, input_version) = None, self._uploaded(owner, upload_id, inputs)
            fingerprint = f"upload {upload_id}"
        else:
            if not isinstance(inputs, dict):
                raise MalformedRequest(f"the body must be a JSON object with the inputs of {task_name!r}")
            input_json, input_ref = msgspec.json.encode(definition.validate(inputs)).decode(), None
            if len(input_json) > self._limit_or_fail().max_bytes:
                raise PayloadTooLarge(self._limit_or_fail().refusal(len(input_json)))
            fingerprint = input_json
            if len(input_json) > INLINE_INPUT_MAX_BYTES:
                # Too large for the record, where every write would pay for it: the bucket keeps it (claim check).
                data = input_json.encode()
                input_ref = input_key(task_id, data)
                self._payloads_or_fail().put(input_ref, data)
                input_json = None
        if webhook_url is not None:
            # A replay naming another webhook is another request (its first URL would silently win).
            fingerprint += f"\nwebhook {webhook_url}"
        # What an idempotent replay must match: the same inputs, or the same upload.
        request_hash = hashlib.sha256(fingerprint.encode()).hexdigest() if idempotency_key is not None else None
        record = TaskRecord(
            task_id=task_id,
            task=task_name,
            status=TaskStatus.QUEUED,
            input_json=input_json,
            created_at=now,
            expires_at=int(now) + self._retention_seconds + (self._durable_task_seconds if definition.durable else 0),
            owner=owner,
            request_hash=request_hash,
            retry_after_seconds=definition.retry_after_seconds,
            expected_seconds=definition.expected_seconds,
            input_ref=input_ref,
            input_version=input_version,
            webhook_url=webhook_url,
            durable=definition.durable,
        )
        try:
            self._store.create(record, now, upload=input_ref if upload_id is not None else None)
        except UploadTaken as taken:
            raise Conflict(
                f"{UPLOAD_HEADER} names an upload that is the input of task {taken.task_id} already: an upload serves "
                "one task (POST /uploads again for another)",
                errors=[{"field": UPLOAD_HEADER, "message": "the upload serves another task", "type": "conflict"}],
            ) from taken
        except TransitionRefused as refused:
            existing = refused.current
            if (
                existing is None
                or existing.request_hash != request_hash
                or existing.task != task_name
                or existing.owner != owner
            ):
                raise Conflict("this Idempotency-Key was used before with a different request") from refused
            if existing.status is TaskStatus.QUEUED:
                # The first submission may have stopped between recording the task and sending its message (its
                # function timed out in a slow send, or crashed), and then nothing would ever run the task: send it
                # again, delayed, so that the first message, if there is one, is worked on first (the worker then
                # drops the second as a duplicate, or holds the task under its lease) rather than run beside it.
                self._resend(existing)
            return Submission(view(existing, now) or existing, replayed=True)
        self._enqueue(record)
        return Submission(record)

    def _uploaded(self, owner: str, upload_id: str, body: Any) -> tuple[str, str | None]:
        """The key of the caller's own upload named by the Input-Upload header, and the version of it there now (the
        task runs on those bytes); 422 naming the header when there is none (another caller's upload id names
        nothing: the key holds the owner's digest)."""
        if body is not None:
            raise MalformedRequest(f"send the inputs either in the body or as an upload ({UPLOAD_HEADER}), not both")
        try:
            upload_id = str(uuid.UUID(upload_id))
        except ValueError:
            raise _upload_refused("is not an upload id") from None
        key = upload_key(owner, upload_id)
        stored = self._payloads_or_fail().head(key)
        if stored is None:
            raise _upload_refused("names no upload of yours: upload first (POST /uploads), and submit within a day")
        limit = self._limit_or_fail()
        if stored.size > limit.max_bytes:
            # Uploaded under a larger limit (WorkerMemorySize was lowered since): its every run would fail.
            raise PayloadTooLarge(
                f"{UPLOAD_HEADER}: {limit.refusal(stored.size)}",
                errors=[{"field": UPLOAD_HEADER, "message": limit.refusal(stored.size), "type": "too_large"}],
            )
        return key, stored.version

    def _send(self, record: TaskRecord, delay_seconds: int = 0) -> None:
        if self._queue is None:
            raise RuntimeError("TaskService.submit needs a queue")
        self._queue.send(TaskMessage(task_id=record.task_id, task=record.task), delay_seconds)

    def _resend(self, accepted: TaskRecord) -> None:
        """The message of a task accepted earlier, again. When it cannot be sent, the record stays: this task was
        answered 202 before, and its first message may well be in the queue (removing the record would make the
        worker drop that message, and lose the task)."""
        try:
            self._send(accepted, delay_seconds=RESEND_DELAY_SECONDS)
        except QueueUnavailable:
            logger.error("could not send a queued task again", extra={"task_id": accepted.task_id})
            raise

    def _enqueue(self, record: TaskRecord) -> None:
        """The message of a task just recorded. When it cannot be sent, the record goes: nothing would run it."""
        try:
            self._send(record)
        except QueueUnavailable as unsent:
            logger.error("could not enqueue task; removing its record", extra={"task_id": record.task_id})
            try:
                self._store.withdraw(record.task_id)
            except (StoreUnavailable, TransitionRefused):
                # The record stays queued with no message; its TTL removes it. Logged so an operator sees it.
                logger.exception("could not remove the record of an unqueued task", extra={"task_id": record.task_id})
            raise QueueUnavailable("the task queue is unavailable; nothing was queued, try again") from unsent

    def get(self, task_name: str, task_id: str, *, owner: str) -> TaskRecord:
        """The task as its owner sees it. Another caller's task is not found, exactly as one that never existed."""
        task_id = parse_task_id(task_id)
        record = view(self._store.get(task_id), self._clock())
        if record is None or record.task != task_name or record.owner != owner:
            raise TaskNotFound(f"no {task_name} task with id {task_id}")
        return self._durable_view(record)

    def _durable_view(self, record: TaskRecord) -> TaskRecord:
        """A durable task whose runner has been silent for QUIET_DURABLE_SECONDS past its last invocation's lease: its
        execution may have ended (its end's event, which fails the task, has not been handled yet); Lambda is asked,
        and an execution that ended reads as the failure the dead-letter consumer will write. Between invocations
        (a retry's delay, a suspension) the lease lapses for seconds to minutes, never that long."""
        now = self._clock()
        if (
            self._executions is None
            or record.status is not TaskStatus.RUNNING
            or record.execution_arn is None
            or record.lease_until is None
            or now - record.lease_until < QUIET_DURABLE_SECONDS
        ):
            return record
        try:
            status = self._executions.status(record.execution_arn)
        except ServiceUnavailable:
            return record  # asked again at the next GET
        if status not in ENDED_STATUSES or status == "SUCCEEDED":
            return record
        return msgspec.structs.replace(
            record, status=TaskStatus.FAILED, finished_at=record.lease_until, error=execution_ended(status)
        )

    def cancel(self, task_name: str, task_id: str, *, owner: str) -> TaskRecord:
        """A queued or running task becomes cancelled; the worker skips or stops it."""
        record = self.get(task_name, task_id, owner=owner)
        if record.status.is_terminal:
            return self._cancelled_already_or_conflict(record)
        try:
            cancelled = self._store.cancel(record.task_id, self._clock())
        except TransitionRefused as refused:
            current = view(refused.current, self._clock())
            if current is None:
                raise TaskNotFound(f"no {task_name} task with id {record.task_id}") from refused
            return self._cancelled_already_or_conflict(current)
        if cancelled.execution_arn is not None:
            self._stop_execution(cancelled)
        return cancelled

    def _stop_execution(self, cancelled: TaskRecord) -> None:
        """Stop a cancelled durable task's execution. Should Lambda not answer, the task is cancelled all the same:
        the runner's next write (a step's start, a progress report) is refused, and the execution ends there."""
        if self._executions is None:
            raise RuntimeError("TaskService needs durable executions to cancel a durable task")
        try:
            self._executions.stop(str(cancelled.execution_arn))
        except ServiceUnavailable as error:
            logger.warning(
                "could not stop the durable execution; its runner stops at its next write",
                extra={"task_id": cancelled.task_id, "error": str(error)},
            )

    @staticmethod
    def _cancelled_already_or_conflict(record: TaskRecord) -> TaskRecord:
        if record.status is TaskStatus.CANCELLED:
            return record  # cancelling twice is not an error: DELETE is idempotent
        raise Conflict(f"task {record.task_id} is {record.status.value} and can no longer be cancelled")

    def list_tasks(self, listing: Listing) -> TaskPage:
        """The caller's tasks a listing asks for, newest first, as GET shows each (core.domain.lifecycle.view), and where the
        next page starts. A status filter is applied here, to the status a reader sees: a page that has examined
        MAX_EXAMINED records, or read the store MAX_LIST_READS times, ends there, with fewer tasks than asked."""
        now = self._clock()
        found: list[TaskRecord] = []
        position = listing.after
        examined = 0
        for _ in range(MAX_LIST_READS):
            # Without a status filter every record read is shown: read no more than the page holds.
            wanted = listing.limit - len(found) if not listing.statuses else min(MAX_LIMIT, MAX_EXAMINED - examined)
            owned = self._store.list_owned(listing.owner, task=listing.task, after=position, limit=wanted, now=now)
            position = owned.next
            for index, record in enumerate(owned.records):
                examined += 1
                visible = view(record, now)
                if visible is not None and listing.shows(visible):
                    found.append(visible)
                if len(found) == listing.limit or examined >= MAX_EXAMINED:
                    last = index == len(owned.records) - 1
                    return TaskPage(tuple(found), owned.next if last else ListPosition.of(record))
            if position is None:
                break
        return TaskPage(tuple(found), position)

    def list_page(self, parameters: Mapping[str, str], *, owner: str, task: str | None = None) -> dict[str, Any]:
        """GET /<task> and GET /tasks: the page the query parameters ask for, as the API answers it."""
        listing = parse_listing(parameters, owner=owner, task=task, cursor_key=self._id_secret)
        page = self.list_tasks(listing)
        next_cursor = None if page.next is None else write_cursor(page.next, listing, self._id_secret())
        return {"items": [listed(record) for record in page.records], "next_cursor": next_cursor}


# POST /uploads's optional body: {"bytes": N}, the size of the file to come, which the form then allows and no more.
UPLOAD_SIZE_FIELD = "bytes"


def upload_size(body: Any) -> int:
    """The size a POST /uploads body declares: 400 when it is not a JSON object, 422 naming each wrong field."""
    if not isinstance(body, dict):
        raise MalformedRequest(f'the body must be a JSON object, {{"{UPLOAD_SIZE_FIELD}": <the file\'s size>}}')
    errors = [
        {"field": str(name), "message": "Object contains unknown field", "type": "unknown_field"}
        for name in body
        if name != UPLOAD_SIZE_FIELD
    ]
    size = body.get(UPLOAD_SIZE_FIELD)
    if isinstance(size, float) and size.is_integer():
        size = int(size)  # JSON has one kind of number: 1000.0 is the integer 1000
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        message = "Expected the file's size in bytes, a whole number of at least 1"
        errors.insert(0, {"field": UPLOAD_SIZE_FIELD, "message": message, "type": "invalid"})
    if errors:
        raise InvalidInput("invalid upload request", errors=errors)
    assert isinstance(size, int)
    return size


def _upload_refused(why: str) -> InvalidInput:
    return InvalidInput(
        f"{UPLOAD_HEADER} {why}", errors=[{"field": UPLOAD_HEADER, "message": f"the upload {why}", "type": "invalid"}]
    )
