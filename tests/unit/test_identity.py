"""Who owns a task: the caller as API Gateway's authorizer established it, normalised (core.domain.identity)."""

from __future__ import annotations

import pytest

from core.domain.identity import MAX_OWNER_BYTES, PUBLIC, IamOwner, owner_key, owner_of, role_arn
from core.errors import ApiError, UnknownCaller


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
    [
        {"iam": {"accessKey": "AKIA..."}},
        {"jwt": {"claims": {"iss": "https://issuer.example.com"}}},
        {"jwt": {"claims": {"iss": "https://issuer.example.com", "sub": ""}}},
        {"lambda": {}},
    ],
)
def test_an_authorizer_context_that_names_nobody_is_refused_with_a_403(authorizer: dict[str, object]) -> None:
    with pytest.raises(UnknownCaller) as refused:
        owner_of(authorizer)

    assert isinstance(refused.value, ApiError)
    assert (refused.value.status, refused.value.title) == (403, "Caller not identified")


def test_a_token_without_a_subject_is_refused_saying_which_claim_is_missing() -> None:
    with pytest.raises(UnknownCaller, match="sub claim is missing or empty"):
        owner_of({"jwt": {"claims": {"iss": "https://issuer.example.com", "sub": ""}}})


def _subject_owner(subject: str) -> str:
    return owner_of({"jwt": {"claims": {"iss": "https://issuer.example.com", "sub": subject}}})


def test_an_identity_that_fits_the_owner_key_keeps_its_form() -> None:
    longest = "s" * (MAX_OWNER_BYTES - len("https://issuer.example.com#"))

    assert _subject_owner(longest) == f"https://issuer.example.com#{longest}"
    assert len(_subject_owner(longest).encode()) == MAX_OWNER_BYTES


@pytest.mark.parametrize(
    "subject", ["a" * 2022, "a" * 100_000, "é" * 1100, "\ud800"], ids=["2022", "100k", "utf8", "surrogate"]
)
def test_an_identity_too_long_for_the_owner_key_is_its_digest(subject: str) -> None:
    owner = _subject_owner(subject)

    assert owner.startswith("#sha256:")
    owner.encode()  # storable: valid UTF-8
    assert len(owner.encode()) < MAX_OWNER_BYTES
    assert _subject_owner(subject) == owner  # the same caller on every request


def test_two_long_identities_are_two_owners_and_no_short_one_takes_a_digests_form() -> None:
    first, second = _subject_owner("a" * 3000), _subject_owner("a" * 2999 + "b")

    assert first != second
    # Every owner that keeps its form begins with an issuer's URL, an ARN or "public", never with a digest's "#".
    assert not _subject_owner("#sha256:" + first.removeprefix("#sha256:")).startswith("#")
    assert owner_key("arn:aws:iam::123456789012:user/alice") == "arn:aws:iam::123456789012:user/alice"


SESSION_ONE = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Analyst_0123/alice@example.com"
SESSION_TWO = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Analyst_0123/bob@example.com"


def _iam(arn: str, cognito: dict[str, object] | None = None) -> dict[str, object]:
    return {"iam": {"userArn": arn, "cognitoIdentity": cognito}}


def test_by_default_every_session_of_a_role_is_the_role() -> None:
    assert owner_of(_iam(SESSION_ONE)) == owner_of(_iam(SESSION_TWO)) == owner_of(_iam(SESSION_ONE), IamOwner.ROLE)


def test_with_role_session_ownership_each_session_owns_its_own_tasks() -> None:
    assert owner_of(_iam(SESSION_ONE), IamOwner.ROLE_SESSION) == SESSION_ONE
    assert owner_of(_iam(SESSION_TWO), IamOwner.ROLE_SESSION) == SESSION_TWO


def test_with_role_session_ownership_each_cognito_identity_owns_its_own_tasks() -> None:
    # Cognito names the role session of every identity of a pool alike
    session = "arn:aws:sts::123456789012:assumed-role/Cognito_TasksAuth_Role/CognitoIdentityCredentials"
    alice = {"amr": ["authenticated"], "identityId": "us-east-1:1111", "identityPoolId": "us-east-1:pool"}
    bob = {"amr": ["authenticated"], "identityId": "us-east-1:2222", "identityPoolId": "us-east-1:pool"}

    owners = {owner_of(_iam(session, identity), IamOwner.ROLE_SESSION) for identity in (alice, bob)}

    assert owners == {f"{session}#us-east-1:1111", f"{session}#us-east-1:2222"}
    assert owner_of(_iam(session, alice)) == owner_of(_iam(session, bob))  # under Role, one owner


@pytest.mark.parametrize("mode", list(IamOwner))
def test_principals_that_are_no_assumed_role_own_as_themselves_whatever_the_mode(mode: IamOwner) -> None:
    assert owner_of(_iam("arn:aws:iam::123456789012:user/alice"), mode) == "arn:aws:iam::123456789012:user/alice"
