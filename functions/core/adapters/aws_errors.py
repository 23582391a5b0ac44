"""Which failures of AWS calls a later attempt may not meet: the adapters turn them into StoreUnavailable or
QueueUnavailable (503 at the API), the worker retries them. Not in core.errors, which task modules import, because it
imports botocore."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError

# Error codes of AWS calls that a later attempt may not meet: throttling, and AWS's own server-side faults.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
    }
)

AwsError = (BotoCoreError, ClientError)
"""What a botocore client call raises."""


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a ClientError (e.g. ConditionalCheckFailedException), None for anything else."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def is_aws_unavailable(error: BaseException) -> bool:
    """An AWS call throttled, failed on AWS's side, or could not reach AWS: trying again later may succeed."""
    if isinstance(error, ClientError):
        return error_code(error) in TRANSIENT_ERROR_CODES
    return isinstance(error, AwsConnectionError | HTTPClientError)
