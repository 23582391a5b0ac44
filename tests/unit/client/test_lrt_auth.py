"""SigV4 signing (checked against the spec, offline, with fake credentials) and bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import urlsplit

import pytest
import requests
from botocore.credentials import Credentials
from botocore.session import Session

from lrt import AuthNotConfigured, BearerAuth, SigV4Auth, TaskClient
from lrt.auth import region_from_url, resolve_auth
from tests.unit.client.fakeapi import FakeApi, task_reply

URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/multiply"
FAKE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>\d{8}/[a-z0-9-]+/execute-api/aws4_request), "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def signed(body: bytes, url: str = URL, **auth_options: object) -> requests.PreparedRequest:
    request = requests.Request(
        "POST", url, data=body, headers={"Content-Type": "application/json", "Idempotency-Key": "k-1"}
    ).prepare()
    auth = SigV4Auth(credentials=FAKE, **auth_options)  # type: ignore[arg-type]
    return auth(request)


def expected_signature(request: requests.PreparedRequest, signed_headers: str, scope: str) -> str:
    """SigV4 computed by hand from the AWS documentation, independently of botocore."""
    url = urlsplit(str(request.url))
    body = request.body
    assert isinstance(body, bytes)
    values = {"host": url.netloc, **{name.lower(): value for name, value in request.headers.items()}}
    canonical_headers = "".join(f"{name}:{str(values[name]).strip()}\n" for name in signed_headers.split(";"))
    canonical_request = "\n".join(
        ["POST", url.path, "", canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()]
    )
    amz_date = str(request.headers["X-Amz-Date"])
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = ("AWS4" + FAKE.secret_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_sigv4_signs_with_the_region_of_the_execute_api_url() -> None:
    # WHEN
    request = signed(b'{"x":2,"y":3}')

    # THEN a valid SigV4 header for execute-api in eu-west-1, over the body and the headers that matter
    match = AUTHORIZATION.match(str(request.headers["Authorization"]))
    assert match, request.headers["Authorization"]
    amz_date = str(request.headers["X-Amz-Date"])
    assert re.fullmatch(r"\d{8}T\d{6}Z", amz_date)
    assert match["key"] == "AKIDEXAMPLE"
    assert match["scope"] == f"{amz_date[:8]}/eu-west-1/execute-api/aws4_request"
    assert set(match["signed"].split(";")) >= {"content-type", "host", "idempotency-key", "x-amz-date"}
    assert request.headers["X-Amz-Security-Token"] == "session-token"
    assert match["signature"] == expected_signature(request, match["signed"], match["scope"])


def test_sigv4_signature_covers_the_body() -> None:
    request = signed(b'{"x":2}')
    match = AUTHORIZATION.match(str(request.headers["Authorization"]))
    assert match
    tampered = request.copy()
    tampered.body = b'{"x":3}'

    assert match["signature"] == expected_signature(request, match["signed"], match["scope"])
    assert match["signature"] != expected_signature(tampered, match["signed"], match["scope"])


def test_sigv4_region_argument_wins_for_a_custom_domain() -> None:
    request = signed(b"{}", url="https://tasks.example.com/multiply", region="ap-south-1")

    assert "/ap-south-1/execute-api/" in str(request.headers["Authorization"])


def test_sigv4_region_from_aws_region_for_a_custom_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "sa-east-1")

    request = signed(b"{}", url="https://tasks.example.com/multiply")

    assert "/sa-east-1/execute-api/" in str(request.headers["Authorization"])


@pytest.fixture
def empty_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Session:
    """A botocore session that finds no region and no credentials, and never asks the instance metadata service."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return Session()


def test_sigv4_without_a_region_says_how_to_set_one(empty_aws_config: Session) -> None:
    auth = SigV4Auth(credentials=FAKE, session=empty_aws_config)
    request = requests.Request("GET", "https://tasks.example.com/multiply/1").prepare()

    with pytest.raises(AuthNotConfigured, match="AWS_REGION"):
        auth(request)


def test_sigv4_without_credentials_says_how_to_set_them(empty_aws_config: Session) -> None:
    auth = SigV4Auth(session=empty_aws_config)

    with pytest.raises(AuthNotConfigured, match="no AWS credentials"):
        auth(requests.Request("GET", URL).prepare())


def test_region_from_url_reads_execute_api_hosts_only() -> None:
    assert region_from_url("https://a1b2c3.execute-api.us-east-2.amazonaws.com/") == "us-east-2"
    assert region_from_url("https://a1b2c3.execute-api.cn-north-1.amazonaws.com.cn/prod") == "cn-north-1"
    assert region_from_url("http://127.0.0.1:3000") is None


def test_client_sends_signed_requests(api: FakeApi) -> None:
    api.script("POST", "/multiply", task_reply("queued"))

    TaskClient(api.base_url, auth=SigV4Auth("us-east-1", credentials=FAKE)).submit("multiply", x=2, y=3)

    assert api.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/execute-api/aws4_request" in api.requests[0].headers["authorization"]


def test_bearer_auth_sends_the_token_from_lrt_token(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRT_TOKEN", "eyJ.test.token")
    api.script("POST", "/multiply", task_reply("queued"))

    TaskClient(api.base_url, auth="bearer").submit("multiply", x=2, y=3)

    assert api.requests[0].headers["authorization"] == "Bearer eyJ.test.token"


def test_bearer_auth_without_a_token_is_refused() -> None:
    with pytest.raises(AuthNotConfigured, match="LRT_TOKEN"):
        BearerAuth()


def test_resolve_auth_knows_its_names() -> None:
    assert resolve_auth(None) is None
    assert resolve_auth("none") is None
    assert isinstance(resolve_auth("sigv4"), SigV4Auth)
    with pytest.raises(ValueError, match="unknown auth"):
        resolve_auth("basic")  # type: ignore[arg-type]
