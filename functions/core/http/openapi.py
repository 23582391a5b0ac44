"""The OpenAPI 3.1 document of the API, generated from the task registry: one path per task."""

from __future__ import annotations

from typing import Any

import msgspec

from core.adapters.payloads import UPLOAD_URL_SECONDS, InputLimit
from core.domain.listing import DEFAULT_LIMIT, MAX_EXAMINED, MAX_LIMIT
from core.domain.records import TaskStatus
from core.errors import MAX_FIELD_ERRORS
from core.http.api import MAX_BODY_BYTES, UPLOADS_ROUTE
from core.registry import tasks
from core.services.tasks import MAX_IDEMPOTENCY_KEY_LENGTH, UPLOAD_HEADER, UPLOAD_SIZE_FIELD
from core.services.webhooks import MAX_URL_LENGTH, WEBHOOK_HEADER

_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_PROBLEM = {"$ref": "#/components/responses/Problem"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before polling", "schema": {"type": "integer"}}}
_REDIRECT = {
    "name": "redirect",
    "in": "query",
    "required": False,
    "description": "false: 200 with {input} or, for an input kept in the payload bucket, {input_url, input_bytes, "
    "expires_in} rather than a 303 (for browser pages, whose fetch cannot follow it)",
    "schema": {"type": "boolean", "default": True},
}
_INPUT_LINK = {
    "type": "object",
    "required": ["input_url", "input_bytes", "expires_in"],
    "properties": {
        "input_url": {"type": "string"},
        "input_bytes": {"type": ["integer", "null"]},
        "expires_in": {"type": "integer"},
    },
}
_STATUSES = [status.value for status in TaskStatus]
_LIST_PARAMETERS = [
    {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only tasks in these states (repeat the parameter, or separate states with commas).",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "minItems": 1, "items": {"enum": _STATUSES}},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"At most this many tasks (default {DEFAULT_LIMIT}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The previous page's next_cursor, unchanged, with the same status filter; any other is a 400.",
        "schema": {"type": "string", "minLength": 1},
    },
]
_LIST_DESCRIPTION = (
    "The caller's tasks, newest first, each as GET shows it, but that a result kept in the payload bucket is given by "
    "its size (result_bytes) without a link: GET /{task}/{task_id}/result gets it. A page examines at most "
    f"{MAX_EXAMINED} tasks: with a status filter it may hold fewer than limit, none even, and still have a next_cursor."
)
_TASK_LIST = {"application/json": {"schema": {"$ref": "#/components/schemas/TaskList"}}}
_JSON_BODY = (
    "Sent as Content-Type: application/json (or another application/*+json type, any charset): any other type is a "
    "415. A request without a body needs none."
)


def _status_schema(result_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["task_id", "task", "status", "created_at"],
        "properties": {
            "task_id": {"type": "string", "format": "uuid"},
            "task": {"type": "string"},
            "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "retry_after": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "While pending: seconds to wait before polling again, to a tenth (Retry-After rounds up)",
            },
            "attempts": {"type": "integer", "minimum": 0},
            "steps_done": {
                "type": "integer",
                "minimum": 0,
                "description": "A durable task's steps completed (its checkpoints)",
            },
            "current_step": {"type": "string", "description": "The step a running durable task is on"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "result": result_schema,
            "result_bytes": {"type": "integer", "minimum": 0, "description": "The size of a result kept apart"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    }


def _uploads(limit: InputLimit) -> dict[str, Any]:
    """POST /uploads: its optional body and its answer, as core.services.tasks and submit.app make them."""
    size = {"type": "integer", "minimum": 1, "maximum": limit.max_bytes, "description": "The file's size in bytes"}
    return {
        "post": {
            "operationId": "create_upload",
            "summary": "A form to upload an input too large for a request straight to the payload bucket",
            "description": f"POST the form's fields, then the file, as multipart/form-data to its url within "
            f"{UPLOAD_URL_SECONDS} s; then submit the task with the upload_id in the {UPLOAD_HEADER} header and no "
            f"body, within a day. An upload is the input of one task. Declare the file's size, and the form allows "
            f"that many bytes; without a body it allows the most a task can take ({limit.max_bytes} bytes here, "
            "with the worker's memory); a larger size is a 413.",
            "requestBody": {
                "required": False,
                "description": _JSON_BODY,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": [UPLOAD_SIZE_FIELD],
                            "additionalProperties": False,
                            "properties": {UPLOAD_SIZE_FIELD: size},
                        }
                    }
                },
            },
            "responses": {
                "201": {
                    "description": "The form",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Upload"}}},
                },
                **dict.fromkeys(("400", "413", "415", "422", "500", "503"), _PROBLEM),
            },
        }
    }


_UPLOAD = {
    "type": "object",
    "required": ["upload_id", "url", "fields", "expires_at", "max_bytes", "header"],
    "properties": {
        "upload_id": {"type": "string", "format": "uuid"},
        "url": {"type": "string", "description": "Where to POST the fields and the file (multipart/form-data)"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "expires_at": {"type": "string", "format": "date-time", "description": "When the form stops working"},
        "max_bytes": {"type": "integer", "minimum": 1, "description": "The largest file the form allows"},
        "header": {"const": UPLOAD_HEADER, "description": "The header that names the upload at submit"},
    },
}


def openapi_document(limit: InputLimit) -> dict[str, Any]:
    """The document, with the largest input a task takes (`limit`: the worker's memory's) where it is a bound."""
    schemas: dict[str, Any] = {
        "Upload": _UPLOAD,
        "TaskStatus": _status_schema({}),
        "TaskList": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/TaskStatus"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    }
    paths: dict[str, Any] = {
        UPLOADS_ROUTE: _uploads(limit),
        "/tasks": {
            "get": {
                "operationId": "list_tasks",
                "summary": "List the caller's tasks of every kind",
                "description": _LIST_DESCRIPTION,
                "parameters": _LIST_PARAMETERS,
                "responses": {
                    "200": {"description": "A page of tasks", "content": _TASK_LIST},
                    **dict.fromkeys(("400", "500", "503"), _PROBLEM),
                },
            }
        },
    }
    # One call for every model, so that two tasks sharing a nested model share its schema.
    input_refs, input_schemas = msgspec.json.schema_components(
        [definition.input_model for definition in tasks().values()], ref_template="#/components/schemas/{name}"
    )
    schemas.update(input_schemas)
    for (name, definition), input_ref in zip(tasks().items(), input_refs, strict=True):
        status = {"application/json": {"schema": {"$ref": "#/components/schemas/TaskStatus"}}}
        paths[f"/{name}"] = {
            "post": {
                "operationId": f"submit_{name}",
                "summary": definition.description.splitlines()[0] if definition.description else f"Submit {name}",
                # The Webhook-URL header is described here, not as a parameter: a schema can say "a URL", not "of a
                # public host", and the API fuzzer would take every 422 for a schema-valid URL as a contract breach.
                "description": f"Optional header {WEBHOOK_HEADER}: an https URL (at most {MAX_URL_LENGTH} characters) "
                "of a public host, POSTed the task's outcome when it ends, signed as Standard Webhooks specify; "
                "any other URL is refused with 422.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "description": _JSON_BODY,
                    "content": {"application/json": {"schema": input_ref}},
                },
                "responses": {
                    "202": {"description": "Accepted: poll the Location", "content": status, "headers": _RETRY_AFTER},
                    **dict.fromkeys(("400", "404", "409", "413", "415", "422", "500", "503"), _PROBLEM),
                },
            },
            "get": {
                "operationId": f"list_{name}",
                "summary": f"List the caller's {name} tasks",
                "description": _LIST_DESCRIPTION,
                "parameters": _LIST_PARAMETERS,
                "responses": {
                    "200": {"description": "A page of tasks", "content": _TASK_LIST},
                    **dict.fromkeys(("400", "404", "500", "503"), _PROBLEM),
                },
            },
        }
        paths[f"/{name}/{{task_id}}/input"] = {
            "parameters": [_TASK_ID],
            "get": {
                "operationId": f"get_input_{name}",
                "summary": "The task's input, as it was accepted",
                "parameters": [_REDIRECT],
                "responses": {
                    "200": {
                        "description": "The input (with redirect=false: in `input`, or where to download it)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [
                                        input_ref,
                                        {"type": "object", "required": ["input"], "properties": {"input": input_ref}},
                                        _INPUT_LINK,
                                    ]
                                }
                            }
                        },
                    },
                    "303": {
                        "description": "Kept in the payload bucket: its download link (Location), valid 15 minutes"
                    },
                    **dict.fromkeys(("400", "404", "500", "503"), _PROBLEM),
                },
            },
        }
        paths[f"/{name}/{{task_id}}"] = {
            "parameters": [_TASK_ID],
            "get": {
                "operationId": f"get_{name}",
                "responses": {
                    "200": {"description": "Finished: succeeded, failed or cancelled", "content": status},
                    "202": {"description": "Pending: queued or running", "content": status, "headers": _RETRY_AFTER},
                    **dict.fromkeys(("400", "404", "500"), _PROBLEM),
                },
            },
            "delete": {
                "operationId": f"cancel_{name}",
                "responses": {
                    "200": {"description": "Cancelled", "content": status},
                    **dict.fromkeys(("400", "404", "409", "500"), _PROBLEM),
                },
            },
        }
    _add_forbidden(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Long-running tasks API",
            "version": "1.0.0",
            "description": f"Submit a task (202 + id), poll it, collect its result. Bodies up to {MAX_BODY_BYTES} bytes.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["type", "title", "status", "detail"],
                                "properties": {
                                    "type": {"type": "string"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "detail": {"type": "string"},
                                    "errors": {
                                        "description": f"422: each wrong field, at most {MAX_FIELD_ERRORS}",
                                        "type": "array",
                                        "maxItems": MAX_FIELD_ERRORS,
                                        "items": {
                                            "type": "object",
                                            "required": ["field", "message", "type"],
                                            "properties": {
                                                "field": {"type": "string"},
                                                "message": {"type": "string"},
                                                "type": {"type": "string"},
                                            },
                                        },
                                    },
                                    "errors_omitted": {
                                        "description": "422: how many more fields were wrong",
                                        "type": "integer",
                                        "minimum": 1,
                                    },
                                    "request_id": {
                                        "description": "500, 503: the request's id in the function's log",
                                        "type": "string",
                                    },
                                },
                            }
                        }
                    },
                }
            },
        },
    }


def _add_forbidden(paths: dict[str, Any]) -> None:
    """Every operation that reads who calls (all but the document itself) answers 403 to a token that names nobody
    (a JWT without `sub`)."""
    for path, operations in paths.items():
        if path == "/openapi.json":
            continue
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:  # not a path item's shared `parameters`
                operation["responses"].setdefault("403", _PROBLEM)
