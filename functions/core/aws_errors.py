"""Which failures of AWS calls a later attempt may not meet: the API answers them 503, the worker retries them.
Not in core.errors, which task modules import, because it imports botocore."""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError

# Error codes of AWS calls that a later attempt may not meet: throttling and AWS's own transient faults.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalFailure",
    }
)


def is_aws_unavailable(error: BaseException) -> bool:
    """An AWS call throttled, failed on AWS's side, or could not reach AWS: trying again later may succeed."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in THROTTLING_CODES
    return isinstance(error, AwsConnectionError | HTTPClientError)
