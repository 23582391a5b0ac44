"""A client for the task API: submit a task, poll it until it finishes, collect its result.

client = TaskClient()                      # LRT_URL, else the local stack on http://127.0.0.1:3000
client.run("multiply", x=2, y=3)           # 6: submit, wait, result (raises TaskFailed, TaskCancelled)
task = client.submit("multiply", x=2, y=3) # TaskSnapshot, status "queued"
client.wait("multiply", task.task_id, timeout=60, on_progress=print)
client.run("describe", input_file="data.json")  # inputs from a file; large ones are uploaded, never inline

Inputs larger than `upload_above` bytes of JSON go straight to the API's payload bucket (POST /uploads, then the task
names the upload); results too large for the API's record come as a download link, which wait() and run() follow.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote, urlencode, urlsplit

import requests

from lrt.auth import AuthOption, resolve_auth
from lrt.errors import ERRORS_BY_STATUS, ApiError, ConnectionFailed, TaskCancelled, TaskFailed, WaitTimeout

DEFAULT_URL = "http://127.0.0.1:3000"  # the local stack, `make run`
DEFAULT_WAIT_TIMEOUT = 600.0
# Inputs above this many bytes of JSON are uploaded rather than sent in the request: API Gateway bills a request by
# 512 KB of payload, and above a few MB a request could not carry them at all (the API takes up to 4 MiB inline).
DEFAULT_UPLOAD_ABOVE = 1024 * 1024
UPLOAD_HEADER = "Input-Upload"
# Where the API POSTs the task's outcome when it ends, signed (Standard Webhooks); never one of the task's inputs.
WEBHOOK_HEADER = "Webhook-URL"
PENDING = frozenset({"queued", "running"})
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
DELTA_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def default_url() -> str:
    """`LRT_URL` when set, else the local stack."""
    return os.environ.get("LRT_URL") or DEFAULT_URL


@dataclass(frozen=True)
class TaskFailure:
    type: str
    message: str


@dataclass(frozen=True)
class TaskSnapshot:
    """A task as the API last showed it. `raw` is the whole JSON body, fields this client does not know included."""

    task_id: str
    task: str
    status: str
    progress: float | None = None
    result: Any = None
    error: TaskFailure | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Seconds the server asked to wait before the next poll: the body's `retry_after` (to a tenth of a second), else
    # the Retry-After header (whole seconds, rounded up by the server).
    retry_after: float | None = None
    # Where a result too large for the API's record can be downloaded (short-lived); `result` is then None until
    # fetched (wait() and run() fetch it).
    result_url: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_pending(self) -> bool:
        return not self.is_finished

    def raise_for_outcome(self) -> None:
        """Raise TaskFailed or TaskCancelled when the task ended that way; nothing for any other status."""
        if self.status == "failed":
            error = self.error or TaskFailure("UnknownError", "the task failed without an error")
            raise TaskFailed(self.task, self.task_id, error.type, error.message)
        if self.status == "cancelled":
            raise TaskCancelled(self.task, self.task_id)

    @classmethod
    def from_json(cls, body: dict[str, Any], *, retry_after: float | None = None) -> TaskSnapshot:
        task_id, task, status = body.get("task_id"), body.get("task"), body.get("status")
        if not (isinstance(task_id, str) and isinstance(task, str) and isinstance(status, str)):
            raise ValueError("a task needs string task_id, task and status")
        progress = body.get("progress")
        error = body.get("error")
        return cls(
            task_id=task_id,
            task=task,
            status=status,
            progress=float(progress) if isinstance(progress, int | float) and not isinstance(progress, bool) else None,
            result=body.get("result"),
            error=TaskFailure(str(error.get("type", "")), str(error.get("message", "")))
            if isinstance(error, dict)
            else None,
            created_at=_timestamp(body.get("created_at")),
            started_at=_timestamp(body.get("started_at")),
            finished_at=_timestamp(body.get("finished_at")),
            raw=body,
            retry_after=_positive(body.get("retry_after")) or retry_after,
            result_url=body["result_url"] if isinstance(body.get("result_url"), str) else None,
        )


@dataclass(frozen=True)
class TaskPage:
    """A page of a listing: its tasks, newest first, and the cursor of the next page (None: the last page)."""

    items: list[TaskSnapshot]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> TaskPage:
        items, cursor = body.get("items"), body.get("next_cursor")
        if not isinstance(items, list) or not (cursor is None or isinstance(cursor, str)):
            raise ApiError(200, "Unexpected response", "not a page of tasks", body)
        return cls([TaskSnapshot.from_json(item) for item in items if isinstance(item, dict)], cursor)


@dataclass(frozen=True)
class PollPolicy:
    """How wait() spaces its polls.

    Each pause is the larger of our own backoff (`initial`, times `multiplier` per poll, at most `max_interval`) and
    the server's Retry-After (believed up to `max_retry_after`), stretched by up to `jitter` (at most `max_jitter`
    seconds) so that many clients drift apart; it never undercuts Retry-After. The server's hint is when the task
    should end (the API's core.domain.polling): the jitter is capped so that a long wait does not add a tenth to the time
    the outcome is seen. `max_errors` consecutive failed polls (503, throttling, connection) end the wait with the
    last error.
    """

    initial: float = 0.5
    multiplier: float = 1.5
    max_interval: float = 10.0
    # The API's own cap on what it asks (core.domain.polling.MAX_SECONDS).
    max_retry_after: float = 300.0
    jitter: float = 0.1
    max_jitter: float = 0.1
    max_errors: int = 5

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        backoff = min(self.initial * self.multiplier ** min(attempt, 64), self.max_interval)
        asked = min(retry_after, self.max_retry_after) if retry_after is not None else 0.0
        pause = max(backoff, asked)
        return pause + min(self.jitter * pause, self.max_jitter) * rand


class TaskClient:
    """Calls the task API. `auth` is "sigv4" (IAM), "bearer" (JWT from LRT_TOKEN), a requests auth, or None."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        auth: AuthOption = None,
        timeout: float = 10,
        session: requests.Session | None = None,
        poll: PollPolicy | None = None,
        upload_above: int = DEFAULT_UPLOAD_ABOVE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        if urlsplit(self.base_url).scheme not in ("http", "https") or not urlsplit(self.base_url).hostname:
            raise ValueError(f"the API URL must look like https://host[/stage], not {self.base_url!r}")
        self.timeout = timeout
        self.poll = poll or PollPolicy()
        self.upload_above = upload_above
        self._auth = resolve_auth(auth)
        self._owns_session = session is None
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def submit(
        self,
        task: str,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        input_file: str | Path | None = None,
        webhook_url: str | None = None,
        **kwargs: Any,
    ) -> TaskSnapshot:
        """Queue a task; returns at once with its id. Inputs as a mapping, keywords, or both; or `input_file`, a file
        holding the inputs' JSON object. Inputs over `upload_above` bytes are uploaded, then submitted by reference.

        With an idempotency key, submitting the same inputs again returns the same task; other inputs raise Conflict.
        With `webhook_url`, the API POSTs the task's outcome there when it ends, signed with the stack's webhook
        secret (Standard Webhooks); a URL the API does not allow raises InvalidInput naming Webhook-URL.
        """
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if webhook_url is not None:
            headers[WEBHOOK_HEADER] = webhook_url
        if input_file is not None:
            if inputs or kwargs:
                raise ValueError("give the inputs either in a file or as arguments, not both")
            path = Path(input_file)
            if path.stat().st_size > self.upload_above:
                with path.open("rb") as stream:
                    headers[UPLOAD_HEADER] = self.upload(stream)
                return self._task(self._send("POST", _path(task), headers=headers))
            data = path.read_bytes()
        else:
            data = json.dumps({**(inputs or {}), **kwargs}, separators=(",", ":"), allow_nan=False).encode()
            if len(data) > self.upload_above:
                headers[UPLOAD_HEADER] = self.upload(data)
                return self._task(self._send("POST", _path(task), headers=headers))
        return self._task(self._send("POST", _path(task), data=data, headers=headers))

    def upload(self, data: bytes | IO[bytes]) -> str:
        """Upload an input (a JSON object's bytes) straight to the API's payload bucket; its upload id, for the
        Input-Upload header of a submission. The upload goes to S3 with the form the API signed, without this
        client's own credentials. The size is declared first: an input larger than the API's tasks can take raises
        ApiError (413, saying why) before anything is sent."""
        declared = json.dumps({"bytes": _size(data)}).encode()
        form = _json_object(self._send("POST", "/uploads", data=declared, headers={"Content-Type": "application/json"}))
        try:
            url, fields = str(form["url"]), {str(k): str(v) for k, v in dict(form["fields"]).items()}
            upload_id = str(form["upload_id"])
        except (KeyError, TypeError, ValueError) as error:
            raise ApiError(200, "Unexpected response", f"not an upload form: {error}", form) from error
        try:
            stored = requests.post(
                url, data=fields, files={"file": ("input.json", data, "application/json")}, timeout=None
            )
        except requests.RequestException as error:
            raise ConnectionFailed(url, _reason(error, self.timeout)) from error
        if stored.status_code >= 300:
            raise ApiError(stored.status_code, "Upload refused", stored.text.strip()[:500], {})
        return upload_id

    def result(self, task: str, task_id: str) -> Any:
        """The result of a task that has succeeded, downloaded when the API keeps it apart (GET .../result)."""
        response = self._send("GET", f"{_path(task, task_id)}/result", allow_redirects=False)
        if response.status_code == 303:
            return self._download(response.headers["Location"])
        if response.status_code == 200:
            return response.json()
        raise ApiError(response.status_code, "Not finished", "the task has not finished", _json_object(response))

    def _download(self, url: str) -> Any:
        """A result from its presigned link: a plain GET, no credentials of this client's (S3 refuses a request that
        carries two kinds of auth)."""
        try:
            response = requests.get(url, timeout=self.timeout)
        except requests.RequestException as error:
            raise ConnectionFailed(url, _reason(error, self.timeout)) from error
        if response.status_code >= 400:
            raise ApiError(response.status_code, "Download refused", response.text.strip()[:500], {})
        return response.json()

    def _with_result(self, status: TaskSnapshot) -> TaskSnapshot:
        """The status with a large result downloaded into `result`."""
        if status.status == "succeeded" and status.result is None and status.result_url is not None:
            return replace(status, result=self._download(status.result_url))
        return status

    def status(self, task: str, task_id: str) -> TaskSnapshot:
        return self._task(self._send("GET", _path(task, task_id)))

    def cancel(self, task: str, task_id: str) -> TaskSnapshot:
        """Cancel a queued or running task (cancelling twice is fine); Conflict once it has finished."""
        return self._task(self._send("DELETE", _path(task, task_id)))

    def wait(
        self,
        task: str,
        task_id: str,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: Callable[[TaskSnapshot], None] | None = None,
        seen: TaskSnapshot | None = None,
    ) -> TaskSnapshot:
        """Poll until the task has finished and return its last status: succeeded, failed or cancelled.

        `on_progress` gets every status seen, the last included. Raises WaitTimeout after `timeout` seconds (None:
        no limit); the task keeps running. 503s, throttling and connection errors are retried (see PollPolicy).
        `seen`: the task as it was just shown (the submission's answer, say): the first poll waits for its Retry-After
        rather than asking again at once.
        """
        deadline = None if timeout is None else self._clock() + timeout
        last: TaskSnapshot | None = None
        errors = attempt = 0
        if seen is not None and seen.is_pending:
            last = seen
            self._sleep(self._pause(attempt, seen.retry_after, deadline))
            attempt += 1
        while True:
            try:
                current = self.status(task, task_id)
            except (ConnectionFailed, ApiError) as error:
                if isinstance(error, ApiError) and not error.retryable:
                    raise
                errors += 1
                if errors >= self.poll.max_errors:
                    raise
                retry_after = error.retry_after if isinstance(error, ApiError) else None
            else:
                errors = 0
                last = current
                if on_progress is not None:
                    on_progress(current)
                if current.is_finished:
                    return self._with_result(current)
                retry_after = current.retry_after
            if deadline is not None and self._clock() >= deadline:
                raise WaitTimeout(task, task_id, timeout or 0.0, last.status if last else None)
            self._sleep(self._pause(attempt, retry_after, deadline))
            attempt += 1

    def _pause(self, attempt: int, retry_after: float | None, deadline: float | None) -> float:
        delay = self.poll.delay(attempt, retry_after, self._rand())
        return delay if deadline is None else max(0.0, min(delay, deadline - self._clock()))

    def run(
        self,
        task: str,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        input_file: str | Path | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        on_progress: Callable[[TaskSnapshot], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Submit, wait, and return the task's result; raises TaskFailed, TaskCancelled or WaitTimeout."""
        submitted = self.submit(task, inputs, idempotency_key=idempotency_key, input_file=input_file, **kwargs)
        finished = self.wait(task, submitted.task_id, timeout=timeout, on_progress=on_progress, seen=submitted)
        finished.raise_for_outcome()
        return finished.result

    def list(
        self,
        task: str | None = None,
        *,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of the caller's tasks, newest first: of kind `task`, or of every kind; in the states `status`
        names, or in any. Pass the page's `next_cursor` as `cursor` (with the same filters) for the next one."""
        statuses = [status] if isinstance(status, str) else list(status or ())
        query = [("status", name) for name in statuses]
        query += [("limit", str(limit))] if limit is not None else []
        query += [("cursor", cursor)] if cursor is not None else []
        path = "/tasks" if task is None else _path(task)
        response = self._send("GET", path + ("?" + urlencode(query) if query else ""))
        return TaskPage.from_json(_json_object(response))

    def iter_tasks(
        self, task: str | None = None, *, status: str | Iterable[str] | None = None, page_size: int | None = None
    ) -> Iterator[TaskSnapshot]:
        """Every task of the listing, newest first, page after page (fetched as the iteration reaches them)."""
        cursor = None
        while True:
            page = self.list(task, status=status, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _send(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        allow_redirects: bool = True,
    ) -> requests.Response:
        url = self.base_url + path
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                auth=self._auth,
                timeout=self.timeout,
                allow_redirects=allow_redirects,
            )
        except requests.RequestException as error:
            raise ConnectionFailed(url, _reason(error, self.timeout)) from error
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _task(self, response: requests.Response) -> TaskSnapshot:
        body = _json_object(response)
        try:
            return TaskSnapshot.from_json(body, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        except ValueError as error:
            raise ApiError(response.status_code, "Unexpected response", f"not a task: {error}", body) from error


def _size(data: bytes | IO[bytes]) -> int:
    """The bytes an upload will send: all of `data`, or what is left of a stream from where it stands."""
    if isinstance(data, bytes):
        return len(data)
    start = data.tell()
    end = data.seek(0, os.SEEK_END)
    data.seek(start)
    return end - start


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date. None when absent or unreadable."""
    if value is None:
        return None
    if DELTA_SECONDS.match(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _positive(value: Any) -> float | None:
    """A positive number of seconds from a JSON body; None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _path(task: str, task_id: str | None = None) -> str:
    path = "/" + quote(task, safe="")
    return path if task_id is None else f"{path}/{quote(task_id, safe='')}"


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _api_error(response: requests.Response) -> ApiError:
    # A problem+json body from the API, or API Gateway's own {"message": "Forbidden"}, or anything else.
    problem = _json_object(response)
    title = str(problem.get("title") or response.reason or "HTTP error")
    detail = problem.get("detail") or problem.get("message") or ("" if problem else response.text.strip()[:200])
    error_class = ERRORS_BY_STATUS.get(response.status_code, ApiError)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error_class(response.status_code, title, str(detail), problem, retry_after=retry_after)


def _reason(error: requests.RequestException, timeout: float) -> str:
    """The root cause in a few words ("connection refused"), not urllib3's nested repr."""
    if isinstance(error, requests.Timeout) and not isinstance(error, requests.ConnectionError):
        return f"no answer within {timeout:g} s"
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower() if isinstance(current.strerror, str) else str(current.strerror)
        reason = getattr(current, "reason", None)
        related = [*current.args, reason, current.__cause__, current.__context__]
        pending.extend(item for item in related if isinstance(item, BaseException))
    return str(error)
