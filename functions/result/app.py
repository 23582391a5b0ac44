"""GET /<task>/<task_id>: a task's status and result. DELETE: cancel a task that has not finished.
GET /<task>/<task_id>/result: the result alone (303 to its download link when it is kept in the payload bucket).
GET /<task>/<task_id>/input: what it was given (303 likewise). GET /<task> and GET /tasks: the caller's tasks, newest
first, a page at a time. Only the task's owner sees it: to anyone else it is 404, as a task that never existed.
GET /dashboard: the page that shows all of it in a browser (result.dashboard).

The task's record alone answers (its Retry-After is stored at submit), so the function starts without the task
registry: as quick to start as a bare handler. Only a listing of one kind of task loads it, to tell an unknown name.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from core.adapters.aws import execution_control, listing_secret, payload_store, task_store
from core.adapters.payloads import RESULT_URL_SECONDS
from core.domain.polling import RecentRuns
from core.domain.records import TaskRecord, TaskStatus
from core.errors import Conflict, MalformedRequest
from core.http.api import (
    ALL_TASKS_ROUTE,
    RESULT_ROUTE,
    TASK_ID_ROUTE,
    TASK_INPUT_ROUTE,
    TASK_ROUTE,
    Request,
    Router,
    dumps,
    response,
    see_other,
    task_response,
)
from core.observability import logger, metrics
from core.services.tasks import TaskService
from core.settings import settings
from result.dashboard import ASSET_ROUTES, DASHBOARD_ROUTE, serve_asset, serve_page


@lru_cache(maxsize=1)
def service() -> TaskService:
    return TaskService(
        task_store(), retention_days=settings().retention_days, id_secret=listing_secret, executions=execution_control()
    )


@lru_cache(maxsize=1)
def recent_runs() -> RecentRuns:
    """The tasks this environment has shown finished: their queue waits and runs tell pending ones when to come back."""
    return RecentRuns()


def result_url(record: TaskRecord) -> str | None:
    """A short-lived download link to a result kept in the payload bucket, for the owner who asked (nobody else
    reaches this: the record was read for its owner)."""
    if record.status is not TaskStatus.SUCCEEDED or record.result_ref is None:
        return None
    return payload_store().download_url(record.result_ref, RESULT_URL_SECONDS)


def show(request: Request, task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    record = service().get(task, task_id, owner=request.owner)
    recent_runs().note(record)
    return task_response(request, record, result_url=result_url(record), recent=recent_runs())


def cancel(request: Request, task: str, task_id: str) -> dict[str, Any]:
    logger.set_correlation_id(task_id)
    record = service().cancel(task, task_id, owner=request.owner)
    logger.info("task cancelled", task=task)
    return task_response(request, record)


def show_result(request: Request, task: str, task_id: str) -> dict[str, Any]:
    """The result itself: 200 with it when it is small, 303 to its download link when it is not; while the task is
    pending, its status (202, Retry-After); 409 when it failed or was cancelled."""
    logger.set_correlation_id(task_id)
    record = service().get(task, task_id, owner=request.owner)
    recent_runs().note(record)
    if not record.status.is_terminal:
        return task_response(request, record, recent=recent_runs())
    if record.status is not TaskStatus.SUCCEEDED:
        raise Conflict(f"task {record.task_id} is {record.status.value}: it has no result", task_status=record.status)
    url = result_url(record)
    if url is not None:
        return see_other(url)
    return response(200, record.result_json or "null", "application/json")


def show_input(request: Request, task: str, task_id: str) -> dict[str, Any]:
    """The input as it was accepted: 200 with it when the record holds it, 303 to its download link when it is kept
    in the payload bucket (large, or uploaded).

    `?redirect=false`: 200 either way, `{"input": …}` or `{"input_url", "input_bytes", "expires_in"}`, for a browser
    page: its fetch cannot use a 303 (with redirect "manual" it sees an opaque redirect, status 0 and no Location;
    followed, the link is on S3's origin, which neither the page's Content-Security-Policy nor S3's CORS rules let it
    read), so the page shows the link instead."""
    logger.set_correlation_id(task_id)
    redirect = _flag(request, "redirect", default=True)
    record = service().get(task, task_id, owner=request.owner)
    if record.input_json is None and record.input_ref is not None:
        url = payload_store().download_url(record.input_ref, RESULT_URL_SECONDS, record.input_version)
        if redirect:
            return see_other(url)
        link = {
            "input_url": url,
            "input_bytes": _size(record.input_ref, record.input_version),
            "expires_in": RESULT_URL_SECONDS,
        }
        return response(200, dumps(link), "application/json")
    text = record.input_json or "null"
    return response(200, text if redirect else f'{{"input":{text}}}', "application/json")


def _size(key: str, version: str | None) -> int | None:
    found = payload_store().head(key, version)
    return found.size if found is not None else None


def _flag(request: Request, name: str, *, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise MalformedRequest(f"the query parameter {name} is true or false, not {value[:50]!r}")
    return value == "true"


def list_kind(request: Request, task: str) -> dict[str, Any]:
    from core.registry import get_task  # only a listing of one kind pays for the registry: 404 for an unknown name

    get_task(task)
    return response(200, dumps(service().list_page(request.query, owner=request.owner, task=task)), "application/json")


def list_all(request: Request) -> dict[str, Any]:
    return response(200, dumps(service().list_page(request.query, owner=request.owner)), "application/json")


route = Router(
    {
        TASK_ID_ROUTE: {"GET": show, "DELETE": cancel},
        RESULT_ROUTE: {"GET": show_result},
        TASK_INPUT_ROUTE: {"GET": show_input},
        TASK_ROUTE: {"GET": list_kind},
        ALL_TASKS_ROUTE: {"GET": list_all},
        DASHBOARD_ROUTE: {"GET": serve_page},
        **{path: {"GET": serve_asset} for path in ASSET_ROUTES},
    }
)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return route(event)
