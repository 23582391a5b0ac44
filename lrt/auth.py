"""Authentication for a deployed API: AWS SigV4 (IAM authorizer) or a bearer token (JWT authorizer).

Both are `requests` auth classes, applied to each prepared request, so a body is signed exactly as sent.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from lrt.errors import AuthNotConfigured

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials
    from botocore.session import Session

AuthName = Literal["none", "sigv4", "bearer"]
AuthOption = AuthName | AuthBase | None

# <api-id>.execute-api.<region>.amazonaws.com (or .amazonaws.com.cn in the China regions)
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
# Headers that say what the request is; hop-by-hop and transport headers are left unsigned.
SIGNED_HEADERS = ("content-type", "idempotency-key", "input-upload")


def region_from_url(url: str) -> str | None:
    match = EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    return match.group("region") if match else None


class SigV4Auth(AuthBase):
    """Signs requests for API Gateway's IAM authorizer with botocore's SigV4 signer.

    The region is, in order: the `region` argument, the one in an `execute-api` URL, `AWS_REGION`, the botocore
    session's (`AWS_DEFAULT_REGION`, the profile). Credentials come from the default botocore chain unless given,
    and are read again for every request, so refreshed (assumed-role, SSO) credentials are picked up.
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        credentials: Credentials | None = None,
        session: Session | None = None,
        service: str = "execute-api",
    ) -> None:
        self._region = region
        self._credentials = credentials
        self._session = session
        self.service = service

    def _botocore_session(self) -> Session:
        if self._session is None:
            import botocore.session  # only needed when signing

            self._session = botocore.session.get_session()
        return self._session

    def region_for(self, url: str) -> str:
        region = (
            self._region
            or region_from_url(url)
            or os.environ.get("AWS_REGION")
            or self._botocore_session().get_config_variable("region")
        )
        if not region:
            raise AuthNotConfigured(
                f"no AWS region for {urlsplit(url).hostname}: set AWS_REGION or use an execute-api URL"
            )
        return str(region)

    def frozen_credentials(self) -> ReadOnlyCredentials:
        credentials = self._credentials or self._botocore_session().get_credentials()
        if credentials is None:
            raise AuthNotConfigured(
                "no AWS credentials found: configure a profile (AWS_PROFILE) or set AWS_ACCESS_KEY_ID"
            )
        return credentials.get_frozen_credentials()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth as BotocoreSigV4Auth
        from botocore.awsrequest import AWSRequest

        url = request.url or ""
        if not isinstance(request.body, bytes | str | None):
            raise TypeError("SigV4Auth signs bytes or text bodies, not streams")
        headers = {name: value for name, value in request.headers.items() if name.lower() in SIGNED_HEADERS}
        aws_request = AWSRequest(method=request.method, url=url, data=request.body or b"", headers=headers)
        BotocoreSigV4Auth(self.frozen_credentials(), self.service, self.region_for(url)).add_auth(aws_request)
        for name, value in aws_request.headers.items():
            request.headers[name] = value
        return request


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>` for a JWT authorizer; the token defaults to `LRT_TOKEN`."""

    def __init__(self, token: str | None = None) -> None:
        token = token or os.environ.get("LRT_TOKEN")
        if not token:
            raise AuthNotConfigured("no bearer token: set LRT_TOKEN")
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


def resolve_auth(auth: AuthOption) -> AuthBase | None:
    """The auth class for an option: a name ("none", "sigv4", "bearer"), an auth object, or None."""
    if auth is None or auth == "none":
        return None
    if auth == "sigv4":
        return SigV4Auth()
    if auth == "bearer":
        return BearerAuth()
    if isinstance(auth, AuthBase):
        return auth
    raise ValueError(f"unknown auth {auth!r}: use 'none', 'sigv4', 'bearer' or a requests auth object")
