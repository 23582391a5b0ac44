"""Writes functions/core/adapters/botocore_models/: botocore's models of the services the functions call, cut to the
operations they call and stripped of documentation.

botocore reads a client's whole service model at every cold start: DynamoDB's is 500 KB of JSON for 62
operations, of which the functions call four. The cut models are what core.adapters.aws's session reads first; they
are ≈ 5% of the size and save ≈ 20 ms of CPU per cold start (README, "Design choices"). A task's own boto3
clients use boto3's default session and botocore's full models.

Run `make models` after changing botocore's version or calling a new operation; a test checks that the files
are what this script writes from the installed botocore, and that every operation the functions call is in
them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import botocore
from botocore.loaders import Loader

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "functions" / "core" / "adapters" / "botocore_models"

# (service, API version): the operations the functions call, in botocore's names.
OPERATIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("dynamodb", "2012-08-10"): (
        "BatchGetItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "TransactWriteItems",
        "UpdateItem",
    ),
    ("events", "2015-10-07"): ("PutEvents",),
    ("lambda", "2015-03-31"): ("GetDurableExecution", "Invoke", "StopDurableExecution"),
    # CreateBucket is never called: botocore builds a presigned POST's URL from its operation model.
    ("s3", "2006-03-01"): ("CreateBucket", "GetObject", "HeadObject", "PutObject"),
    ("secretsmanager", "2017-10-17"): ("GetSecretValue",),
    ("sqs", "2012-11-05"): ("ChangeMessageVisibility", "GetQueueAttributes", "SendMessage", "SendMessageBatch"),
}
_DOCUMENTATION = frozenset({"documentation", "documentationUrl"})


def _without_documentation(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_documentation(value) for key, value in node.items() if key not in _DOCUMENTATION}
    if isinstance(node, list):
        return [_without_documentation(value) for value in node]
    return node


def _shapes_used(model: dict[str, Any], operations: tuple[str, ...]) -> set[str]:
    pending = []
    for name in operations:
        operation = model["operations"][name]
        pending += [operation[part]["shape"] for part in ("input", "output") if part in operation]
        pending += [error["shape"] for error in operation.get("errors", [])]
    used: set[str] = set()
    while pending:
        name = pending.pop()
        if name in used:
            continue
        used.add(name)
        shape = model["shapes"][name]
        pending += [member["shape"] for member in shape.get("members", {}).values()]
        pending += [shape[part]["shape"] for part in ("member", "key", "value") if part in shape]
    return used


def trimmed_model(service: str, api_version: str, operations: tuple[str, ...]) -> dict[str, Any]:
    """The service's model with only `operations`, the shapes they reach, and no documentation."""
    # load_data, not load_service_model: botocore merges a service's extras into whatever file it loads.
    model: dict[str, Any] = Loader().load_data(f"{service}/{api_version}/service-2")
    used = _shapes_used(model, operations)
    model = {
        **model,
        "operations": {name: model["operations"][name] for name in operations},
        "shapes": {name: shape for name, shape in model["shapes"].items() if name in used},
    }
    trimmed = dict(_without_documentation(model))
    # botocore's model reads each client context parameter's documentation (S3 has some): kept, emptied.
    for parameter in trimmed.get("clientContextParams", {}).values():
        parameter["documentation"] = ""
    return trimmed


def rendered(model: dict[str, Any]) -> str:
    return json.dumps(model, sort_keys=True, separators=(",", ":")) + "\n"


def model_path(service: str, api_version: str) -> Path:
    return MODELS / service / api_version / "service-2.json"


def main() -> None:
    shutil.rmtree(MODELS, ignore_errors=True)
    MODELS.mkdir(parents=True)
    # core.adapters.aws reads the models only under the botocore they were cut from.
    (MODELS / "VERSION").write_text(botocore.__version__ + "\n")
    for (service, api_version), operations in OPERATIONS.items():
        path = model_path(service, api_version)
        path.parent.mkdir(parents=True)
        path.write_text(rendered(trimmed_model(service, api_version, operations)))
        print(f"{path.relative_to(ROOT)}: {', '.join(operations)}", file=sys.stderr)


if __name__ == "__main__":
    main()
