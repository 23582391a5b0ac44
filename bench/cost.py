"""What a task costs the account in platform overhead, from the AWS requests it makes and the functions' billed time.

List prices of us-east-1 as of 2024-12-01 (DynamoDB on-demand after the 2024-11-01 price cut), first pricing tier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PRICES_AS_OF = "2024-12-01"
REGION = "us-east-1"
HTTP_API_PER_REQUEST = 1.00 / 1e6  # first 300 M requests a month, each 512 KB of payload one request
HTTP_API_METERED_BYTES = 512 * 1024
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334  # first 7.5 G GB-s a month; billed per 1 ms
SQS_STANDARD_PER_REQUEST = 0.40 / 1e6  # each 64 KB chunk of a request's payload is one request
DYNAMODB_PER_WRITE_UNIT = 0.625 / 1e6  # on-demand; one write of up to 1 KB
DYNAMODB_PER_READ_UNIT = 0.125 / 1e6  # on-demand; one strongly consistent read of up to 4 KB
S3_PER_WRITE_REQUEST = 0.005 / 1000  # S3 Standard PUT, COPY, POST, LIST
S3_PER_READ_REQUEST = 0.0004 / 1000  # S3 Standard GET, HEAD and all other requests
PER_MILLION = 1e6

# Operations that consume write or read request units, one per KB written / 4 KB read of the item.
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_READS = frozenset({"GetItem"})
# A new record also writes the table's owner index, once: its projection holds only attributes that never change, so
# no update writes it again (template.yaml, docs/design.md); an entry is ≈ 170 bytes, one write unit.
INDEX_WRITES_PER_PUT = 1
_S3_WRITES = frozenset({"PutObject", "PostObject", "CopyObject", "CreateMultipartUpload", "UploadPart"})


def api_requests(body_bytes: int) -> int:
    """API Gateway requests one HTTP request is billed as: one per 512 KB of payload, at least one."""
    return max(1, math.ceil(body_bytes / HTTP_API_METERED_BYTES))


def write_units(item_bytes: int) -> int:
    return max(1, math.ceil(item_bytes / 1024))


def read_units(item_bytes: int) -> int:
    return max(1, math.ceil(item_bytes / 4096))


@dataclass(frozen=True)
class FunctionUse:
    """One function's share of a task: invocations per task, billed ms per invocation, configured memory."""

    invocations_per_task: float
    billed_ms_per_invocation: float
    memory_mb: int


def billed_ms(durations_s: Iterable[float]) -> float:
    """Mean billed duration: Lambda rounds each invocation up to the next millisecond."""
    billed = [max(1, math.ceil(seconds * 1000)) for seconds in durations_s]
    return sum(billed) / len(billed) if billed else 0.0


def usd_per_million_tasks(
    requests_per_task: Mapping[str, float],
    functions: Mapping[str, FunctionUse],
    *,
    api_requests_per_task: float,
    item_bytes: int = 1024,
) -> dict[str, float]:
    """Cost per million tasks by item, and "total". requests_per_task: {"sqs.SendMessage": 1.0, ...};
    item_bytes: the task record's size, which each DynamoDB write and read is billed by."""
    lines: dict[str, float] = {"apigateway": api_requests_per_task * HTTP_API_PER_REQUEST}
    lines["lambda.requests"] = sum(use.invocations_per_task for use in functions.values()) * LAMBDA_PER_REQUEST
    for name, use in sorted(functions.items()):
        gb_seconds = use.invocations_per_task * use.billed_ms_per_invocation / 1000 * use.memory_mb / 1024
        lines[f"lambda.duration.{name}"] = gb_seconds * LAMBDA_ARM64_PER_GB_SECOND
    sqs = dynamodb_write = dynamodb_read = s3 = 0.0
    for key, count in requests_per_task.items():
        service, _, operation = key.partition(".")
        if service == "sqs":
            sqs += count * SQS_STANDARD_PER_REQUEST
        elif service == "dynamodb" and operation in _WRITES:
            dynamodb_write += count * write_units(item_bytes) * DYNAMODB_PER_WRITE_UNIT
        elif service == "dynamodb" and operation in _READS:
            dynamodb_read += count * read_units(item_bytes) * DYNAMODB_PER_READ_UNIT
        elif service == "s3":
            s3 += count * (S3_PER_WRITE_REQUEST if operation in _S3_WRITES else S3_PER_READ_REQUEST)
    lines["sqs"] = sqs
    lines["dynamodb.writes"] = dynamodb_write
    lines["dynamodb.index_writes"] = (
        requests_per_task.get("dynamodb.PutItem", 0.0) * INDEX_WRITES_PER_PUT * DYNAMODB_PER_WRITE_UNIT
    )
    lines["dynamodb.reads"] = dynamodb_read
    lines["s3"] = s3
    per_million = {key: value * PER_MILLION for key, value in lines.items()}
    per_million["total"] = sum(per_million.values())
    return per_million


def arithmetic(
    requests_per_task: Mapping[str, float],
    functions: Mapping[str, FunctionUse],
    *,
    api_requests_per_task: float,
    item_bytes: int = 1024,
) -> list[str]:
    """The cost model as lines a reader can check by hand (the README shows them)."""
    out = [f"USD per million tasks, {REGION} list prices as of {PRICES_AS_OF}:"]
    out.append(f"  API Gateway HTTP API  {api_requests_per_task:.3f} req x $1.00/M = ${api_requests_per_task:.3f}")
    invocations = sum(use.invocations_per_task for use in functions.values())
    out.append(f"  Lambda requests       {invocations:.3f} inv x $0.20/M = ${invocations * 0.20:.3f}")
    for name, use in sorted(functions.items()):
        gb_s = use.invocations_per_task * use.billed_ms_per_invocation / 1000 * use.memory_mb / 1024
        out.append(
            f"  Lambda {name:<14} {use.invocations_per_task:.3f} inv x {use.billed_ms_per_invocation:.1f} ms x "
            f"{use.memory_mb / 1024:.3f} GB = {gb_s * 1e6:,.0f} GB-s x $0.0000133334 = ${gb_s * 1e6 * LAMBDA_ARM64_PER_GB_SECOND:.3f}"
        )
    for key, count in sorted(requests_per_task.items()):
        service, _, operation = key.partition(".")
        if service == "sqs":
            out.append(f"  SQS {operation:<17} {count:.3f} req x $0.40/M = ${count * 0.40:.3f}")
        elif service == "dynamodb" and operation in _WRITES:
            units = count * write_units(item_bytes)
            out.append(f"  DynamoDB {operation:<12} {units:.3f} WRU x $0.625/M = ${units * 0.625:.3f}")
        elif service == "dynamodb" and operation in _READS:
            units = count * read_units(item_bytes)
            out.append(f"  DynamoDB {operation:<12} {units:.3f} RRU x $0.125/M = ${units * 0.125:.3f}")
        elif service == "s3":
            price = 5.0 if operation in _S3_WRITES else 0.4
            out.append(f"  S3 {operation:<18} {count:.3f} req x ${price:.2f}/M = ${count * price:.3f}")
    index_writes = requests_per_task.get("dynamodb.PutItem", 0.0) * INDEX_WRITES_PER_PUT
    out.append(f"  DynamoDB owner index  {index_writes:.3f} WRU x $0.625/M = ${index_writes * 0.625:.3f}")
    total = usd_per_million_tasks(
        requests_per_task, functions, api_requests_per_task=api_requests_per_task, item_bytes=item_bytes
    )["total"]
    out.append(f"  total                 ${total:.3f} per million tasks (the tasks' own run time excluded)")
    return out
