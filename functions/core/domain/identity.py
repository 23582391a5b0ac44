"""Who is calling, as API Gateway's authorizer established it, normalised so that one caller is one owner.

- IAM (SigV4): the principal's ARN, and for an assumed role the role's ARN: a role session's ARN ends in the session
  name (`botocore-session-1733…`, new for every process), so the same role from a re-run CLI is the same caller.
- JWT: the token's issuer and subject (`<iss>#<sub>`; an OIDC issuer URL has no fragment, so `#` never occurs in
  it and two (issuer, subject) pairs never give one owner).
- No authorizer (AuthType NONE): everyone is the one public caller, and every task is shared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PUBLIC = "public"
"""The owner of every task when the API has no authorizer (AuthType NONE)."""

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


class UnknownCaller(Exception):
    """The authorizer's context names nobody; API Gateway would not have let the request through."""


def role_arn(principal_arn: str) -> str:
    """An assumed-role session's ARN as the role's own; any other principal's ARN as it is."""
    match = _ASSUMED_ROLE.match(principal_arn)
    if match is None:
        return principal_arn
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def owner_of(authorizer: Mapping[str, Any] | None) -> str:
    """The owner of what the caller submits, from the event's `requestContext.authorizer`."""
    if not authorizer:
        return PUBLIC
    iam = authorizer.get("iam")
    if iam:
        arn = iam.get("userArn")
        if arn:
            return role_arn(str(arn))
        raise UnknownCaller("an IAM authorizer context without userArn")
    jwt = authorizer.get("jwt")
    if jwt:
        claims = jwt.get("claims") or {}
        issuer, subject = claims.get("iss"), claims.get("sub")
        if issuer and subject:
            return f"{issuer}#{subject}"
        raise UnknownCaller("a JWT authorizer context without iss and sub claims")
    raise UnknownCaller(f"an authorizer context of an unknown kind: {sorted(authorizer)}")
