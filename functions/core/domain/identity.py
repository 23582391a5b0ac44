"""Who is calling, as API Gateway's authorizer established it, normalised so that one caller is one owner.

- IAM (SigV4): the principal's ARN. For an assumed role, what the stack's IamOwner parameter chooses: the role's
  ARN (Role, the default: a role session's ARN ends in the session name, `botocore-session-1733…` new for every
  process, so the same role from a re-run CLI is the same caller; but every user of one IAM Identity Center
  permission set, or of one Cognito identity pool role, is then one caller too), or the session's ARN (RoleSession:
  an Identity Center session is named after its user; Cognito names every identity's session alike, so its identity
  id is added, after a `#` that no ARN holds).
- JWT: the token's issuer and subject (`<iss>#<sub>`; an OIDC issuer URL has no fragment, so `#` never occurs in
  it and two (issuer, subject) pairs never give one owner).
- No authorizer (AuthType NONE): everyone is the one public caller, and every task is shared.

An owner is a key of the table's owner index, which DynamoDB caps at 2,048 bytes: a longer identity (a JWT's `sub`
may be any length) is kept as its SHA-256 digest, in a form that no identity above can take (none begins with `#`).
Every identity that fits keeps its own form, as it always had.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from core.errors import UnknownCaller

__all__ = ["MAX_OWNER_BYTES", "PUBLIC", "IamOwner", "UnknownCaller", "owner_key", "owner_of", "role_arn"]


class IamOwner(StrEnum):
    """Who owns what an assumed IAM role submits (the template's IamOwner parameter)."""

    ROLE = "Role"
    ROLE_SESSION = "RoleSession"


PUBLIC = "public"
"""The owner of every task when the API has no authorizer (AuthType NONE)."""

# DynamoDB's limit on a partition key's value; the owner is the owner index's (template.yaml, TasksTable).
MAX_OWNER_BYTES = 2048
_DIGEST_PREFIX = "#sha256:"

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


def owner_key(identity: str) -> str:
    """The identity as the owner the table can key: itself when it fits, else its digest (no two identities share
    one). A string that is not valid Unicode text (a lone surrogate, which JSON can carry) cannot be stored either."""
    try:
        encoded = identity.encode()
    except UnicodeEncodeError:
        encoded = identity.encode("utf-8", "surrogatepass")
    else:
        if len(encoded) <= MAX_OWNER_BYTES:
            return identity
    return _DIGEST_PREFIX + hashlib.sha256(encoded).hexdigest()


def role_arn(principal_arn: str) -> str:
    """An assumed-role session's ARN as the role's own; any other principal's ARN as it is."""
    match = _ASSUMED_ROLE.match(principal_arn)
    if match is None:
        return principal_arn
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def session_owner(principal_arn: str, cognito_identity: Mapping[str, Any] | None) -> str:
    """The principal as its own owner; a Cognito identity pool's credentials with the identity's id, since Cognito
    names every identity's role session alike."""
    identity_id = (cognito_identity or {}).get("identityId")
    return f"{principal_arn}#{identity_id}" if identity_id else principal_arn


def owner_of(authorizer: Mapping[str, Any] | None, iam_owner: IamOwner = IamOwner.ROLE) -> str:
    """The owner of what the caller submits, from the event's `requestContext.authorizer`; `iam_owner`: whether an
    assumed role's sessions are one owner (Role) or one each (RoleSession)."""
    if not authorizer:
        return PUBLIC
    iam = authorizer.get("iam")
    if iam:
        arn = iam.get("userArn")
        if arn and iam_owner is IamOwner.ROLE_SESSION:
            return owner_key(session_owner(str(arn), iam.get("cognitoIdentity")))
        if arn:
            return owner_key(role_arn(str(arn)))
        raise UnknownCaller("the request's IAM identity names no principal (no userArn)")
    jwt = authorizer.get("jwt")
    if jwt:
        claims = jwt.get("claims") or {}
        issuer, subject = claims.get("iss"), claims.get("sub")
        if issuer and subject:
            return owner_key(f"{issuer}#{subject}")
        missing = " and ".join(claim for claim, value in (("iss", issuer), ("sub", subject)) if not value)
        raise UnknownCaller(f"the token names no caller: its {missing} claim is missing or empty")
    raise UnknownCaller(f"the request's authorizer context is of an unknown kind ({', '.join(sorted(authorizer))})")
