"""Who owns a task: the caller as API Gateway's authorizer established it, normalised (core.domain.identity)."""

from __future__ import annotations

import pytest

from core.domain.identity import PUBLIC, UnknownCaller, owner_of, role_arn


@pytest.mark.parametrize(
    ("principal", "owner"),
    [
        pytest.param(
            "arn:aws:sts::123456789012:assumed-role/analyst/botocore-session-1733000000",
            "arn:aws:iam::123456789012:role/analyst",
            id="an assumed role's session is its role",
        ),
        pytest.param(
            "arn:aws-cn:sts::123456789012:assumed-role/analyst/alice@example.com",
            "arn:aws-cn:iam::123456789012:role/analyst",
            id="in every partition",
        ),
        pytest.param("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice", id="a user"),
        pytest.param("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root", id="the account's root"),
        pytest.param(
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:sts::123456789012:federated-user/bob",
            id="a federated user",
        ),
    ],
)
def test_role_arn_keeps_one_owner_per_principal(principal: str, owner: str) -> None:
    assert role_arn(principal) == owner


def test_two_sessions_of_one_role_are_one_owner() -> None:
    first = {"iam": {"userArn": "arn:aws:sts::123456789012:assumed-role/ci/botocore-session-1"}}
    second = {"iam": {"userArn": "arn:aws:sts::123456789012:assumed-role/ci/botocore-session-2"}}

    assert owner_of(first) == owner_of(second) == "arn:aws:iam::123456789012:role/ci"


def test_a_jwt_caller_is_its_issuer_and_subject() -> None:
    authorizer = {"jwt": {"claims": {"iss": "https://issuer.example.com", "sub": "alice", "aud": "tasks"}}}

    assert owner_of(authorizer) == "https://issuer.example.com#alice"


def test_the_same_subject_from_two_issuers_is_two_owners() -> None:
    first = {"jwt": {"claims": {"iss": "https://one.example.com", "sub": "alice"}}}
    second = {"jwt": {"claims": {"iss": "https://two.example.com", "sub": "alice"}}}

    assert owner_of(first) != owner_of(second)


@pytest.mark.parametrize("authorizer", [None, {}])
def test_without_an_authorizer_everyone_is_the_public_caller(authorizer: dict[str, object] | None) -> None:
    assert owner_of(authorizer) == PUBLIC


@pytest.mark.parametrize(
    "authorizer",
    [{"iam": {"accessKey": "AKIA..."}}, {"jwt": {"claims": {"iss": "https://issuer.example.com"}}}, {"lambda": {}}],
)
def test_an_authorizer_context_that_names_nobody_is_refused(authorizer: dict[str, object]) -> None:
    with pytest.raises(UnknownCaller):
        owner_of(authorizer)
