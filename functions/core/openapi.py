"""The OpenAPI 3.1 document of the API, generated from the task registry: one path per task."""

from __future__ import annotations

from typing import Any

import msgspec

from core.http import MAX_BODY_BYTES
from core.registry import tasks
from core.service import MAX_IDEMPOTENCY_KEY_LENGTH

_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_PROBLEM = {"$ref": "#/components/responses/Problem"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before polling", "schema": {"type": "integer"}}}


def _status_schema(result_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["task_id", "task", "status", "created_at"],
        "properties": {
            "task_id": {"type": "string", "format": "uuid"},
            "task": {"type": "string"},
            "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "result": result_schema,
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"TaskStatus": _status_schema({})}
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
                    "content": {"application/json": {"schema": input_ref}},
                },
                "responses": {
                    "202": {"description": "Accepted: poll the Location", "content": status, "headers": _RETRY_AFTER},
                    **dict.fromkeys(("400", "404", "409", "413", "422", "500", "503"), _PROBLEM),
                },
            }
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
                                },
                            }
                        }
                    },
                }
            },
        },
    }
