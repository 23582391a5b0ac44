"""Inputs and results too large for the task's record, in the payload bucket (the claim-check pattern): the record
keeps the object's key. Also the caller's own uploads, which never pass through Lambda.

Keys: `inputs/<task_id>/<digest>` (an inline body too large for the record), `uploads/<owner digest>/<upload_id>` (an upload;
the owner's digest in the key binds it to the caller who asked for it), `results/<task_id>`. The bucket's lifecycle
rules expire every object with the task's retention (template.yaml, PayloadBucket).

The bucket keeps versions: an upload's form stays valid for its hour, and a second POST of it replaces the object,
so submit records the version it saw (and the worker and the input's link read that version): a task runs on the
bytes that were there when it was accepted, whatever is posted after.

Thresholds, from the cost arithmetic (docs/performance.md): every write of a record costs one DynamoDB write unit per
KB of the whole item ($0.625 per million) and a task's record is written 2 to 3 times or more (created, claimed,
finished, and once a second of progress), while S3 charges $5.40 per million for a PUT and a GET whatever the size.
Above ≈ 2 KB the bucket is cheaper for an input; a result, written once and read by each poll, breaks even higher.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from core.adapters.aws_errors import AwsError, error_code, is_aws_unavailable
from core.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# What S3 answers for a key we named that holds nothing (never uploaded, expired, deleted, or another caller's upload
# id, whose key has another owner's digest): 404 to a role allowed s3:ListBucket, 403 to one that is not
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Permissions"). The functions are not: the
# grant would let submit and the worker list every caller's upload keys, and AWS documents no way to scope it (an
# s3:prefix condition) that still counts for a read's 404. Their own policies allow reading every key they name, so a
# 403 on one means it is absent. HeadObject's error has no body: its code is the status.
_ABSENT = frozenset({"NoSuchKey", "NoSuchVersion", "404", "AccessDenied", "403"})

# An input this large or smaller stays in the record.
INLINE_INPUT_MAX_BYTES = 2 * 1024
# A result this large or smaller stays in the record, and GET shows it inline as the original API did.
INLINE_RESULT_MAX_BYTES = 8 * 1024
# The most an upload form ever allows, whatever the worker's memory (InputLimit is lower at every memory Lambda has).
MAX_UPLOAD_BYTES = 1024**3
MIB = 1024 * 1024
# What the worker holds before it reads an input: 61 MB measured (its handler's imports and numpy, docs/performance.md),
# with room for Lambda's own runtime in the same memory.
WORKER_BASELINE_MB = 100
# The worker's peak memory per byte of JSON input while it reads, parses, validates and runs the task: 21.8 measured
# for fit's costliest input (rows of one short number: a list, a float and pointers for every 6 bytes of text), 9.7
# for describe's, plus half as much again for what the measurement leaves out.
MEMORY_PER_INPUT_BYTE = 33
# The largest result: S3's limit for one PutObject.
MAX_RESULT_BYTES = 5 * 1024**3
# How long an upload form may be used; an upload that starts in time may run past it.
UPLOAD_URL_SECONDS = 3600
# How long a result's download link works: short, as anyone holding it may read the result.
RESULT_URL_SECONDS = 900


class PayloadsUnavailable(ServiceUnavailable):
    """The payload bucket did not answer (throttled, failing on AWS's side, out of reach)."""


class InputLimit(msgspec.Struct, frozen=True):
    """The largest input a task can take: what a worker with `worker_memory_mb` (WorkerMemorySize) can hold while it
    parses and runs it. A larger one would end its every delivery out of memory, and the task GaveUp."""

    worker_memory_mb: int

    @property
    def max_bytes(self) -> int:
        usable = max(0, self.worker_memory_mb - WORKER_BASELINE_MB) * MIB
        return min(MAX_UPLOAD_BYTES, usable // MEMORY_PER_INPUT_BYTE)

    def refusal(self, size: int) -> str:
        return (
            f"an input of {size} bytes is more than a task can take: a worker of {self.worker_memory_mb} MB "
            f"(WorkerMemorySize) holds inputs of up to {self.max_bytes} bytes while it parses and runs them"
        )


class StoredObject(msgspec.Struct, frozen=True):
    size: int
    # The version this read found (None in a bucket that keeps no versions): what a later read asks for again.
    version: str | None = None


class UploadForm(msgspec.Struct, frozen=True):
    """A presigned POST: send `fields` and then the file, as multipart/form-data, to `url`."""

    url: str
    fields: dict[str, str]


def input_key(task_id: str, data: bytes) -> str:
    """Named after its content too: an idempotent replay with another body (refused, 409) stores it apart, and so
    never overwrites the input of the task it names."""
    return f"inputs/{task_id}/{hashlib.sha256(data).hexdigest()[:32]}"


def result_key(task_id: str) -> str:
    return f"results/{task_id}"


def upload_key(owner: str, upload_id: str) -> str:
    digest = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"uploads/{digest}/{upload_id}"


class PayloadStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str, version: str | None = None) -> bytes | None:
        """The object's bytes (of `version`, else the latest); None when there is none (never stored, or expired)."""

    def head(self, key: str, version: str | None = None) -> StoredObject | None:
        """The object's size and version (`version`, else the latest); None when there is none."""

    def download_url(self, key: str, expires_seconds: int, version: str | None = None) -> str: ...

    def upload_form(self, key: str, max_bytes: int, expires_seconds: int) -> UploadForm: ...


def _translated(error: Exception) -> Exception:
    if is_aws_unavailable(error):
        return PayloadsUnavailable("the payload store is busy or unavailable; try again")
    return error


def _absent(error: Exception, key: str) -> bool:
    code = error_code(error)
    if code in ("AccessDenied", "403"):
        # Logged, should a policy ever deny a read it was meant to allow: the object would look absent.
        logger.info("the payload bucket denied a read: taken as no such object", extra={"key": key})
    return code in _ABSENT


class S3PayloadStore:
    def __init__(self, bucket: str, client: Callable[[], S3Client]) -> None:
        self._bucket = bucket
        # Built at first use: most invocations move no payload and never need the client.
        self._client_factory = client

    @property
    def _client(self) -> S3Client:
        return self._client_factory()

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType="application/json")
        except AwsError as error:
            raise _translated(error) from error

    def _object(self, key: str, version: str | None) -> dict[str, Any]:
        return {"Bucket": self._bucket, "Key": key} | ({"VersionId": version} if version is not None else {})

    def get(self, key: str, version: str | None = None) -> bytes | None:
        try:
            response = self._client.get_object(**self._object(key, version))
        except AwsError as error:
            if _absent(error, key):
                return None
            raise _translated(error) from error
        return response["Body"].read()

    def head(self, key: str, version: str | None = None) -> StoredObject | None:
        try:
            response = self._client.head_object(**self._object(key, version))
        except AwsError as error:
            if _absent(error, key):
                return None
            raise _translated(error) from error
        # "null": an object stored while the bucket kept no versions; that is its version id all the same.
        return StoredObject(int(response["ContentLength"]), response.get("VersionId"))

    def download_url(self, key: str, expires_seconds: int, version: str | None = None) -> str:
        # Signed here, with the function's own credentials: no request to AWS.
        url: str = self._client.generate_presigned_url(
            "get_object", Params=self._object(key, version), ExpiresIn=expires_seconds
        )
        return url

    def upload_form(self, key: str, max_bytes: int, expires_seconds: int) -> UploadForm:
        # A POST policy rather than a presigned PUT: S3 itself refuses a file over max_bytes.
        form = self._client.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_seconds,
        )
        return UploadForm(url=str(form["url"]), fields={str(k): str(v) for k, v in form["fields"].items()})


class InMemoryPayloadStore:
    """The payload bucket in memory, keeping versions as the deployed one does, for domain tests: URLs are not
    reachable, only recognisable."""

    def __init__(self) -> None:
        # Each key's versions, oldest first.
        self.versions: dict[str, list[tuple[str, bytes]]] = {}

    def put(self, key: str, data: bytes) -> None:
        self.versions.setdefault(key, []).append((f"v{len(self.versions.get(key, [])) + 1}", bytes(data)))

    def get(self, key: str, version: str | None = None) -> bytes | None:
        stored = self.versions.get(key, [])
        if version is None:
            return stored[-1][1] if stored else None
        return next((data for kept, data in stored if kept == version), None)

    def head(self, key: str, version: str | None = None) -> StoredObject | None:
        stored = [kept for kept in self.versions.get(key, []) if version is None or kept[0] == version]
        return StoredObject(len(stored[-1][1]), stored[-1][0]) if stored else None

    def download_url(self, key: str, expires_seconds: int, version: str | None = None) -> str:
        return f"memory://payloads/{key}?expires={expires_seconds}" + (f"&version={version}" if version else "")

    def upload_form(self, key: str, max_bytes: int, expires_seconds: int) -> UploadForm:
        return UploadForm(url="memory://payloads", fields={"key": key, "max_bytes": str(max_bytes)})
