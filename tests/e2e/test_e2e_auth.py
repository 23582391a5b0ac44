"""AUTH_TYPE=JWT: the local stack checks bearer tokens as API Gateway's HTTP API JWT authorizer does, before any
function runs, and passes a valid token's claims to the functions as the deployed API does; routes the template
leaves open stay open. The stack is its own issuer; `python -m devstack token` signs for it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from joserfc.jwk import RSAKey
from samcli.yamlhelper import yaml_parse

from devstack import LocalStack
from devstack.auth import LocalIssuer
from devstack.template import DEFAULT_TEMPLATE
from lrt import NotFound, TaskClient
from lrt.auth import BearerAuth
from tests.e2e.e2e_support import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ECHO = "tests.support.environment_handlers.echo_authorizer"


def _template_with_test_routes(path: Path) -> Path:
    """template.yaml and two test-only routes to a function that echoes its authorizer context: GET /whoami, under
    the API's auth like every route, and GET /public, whose security the template leaves empty."""
    template = yaml_parse(DEFAULT_TEMPLATE.read_text())
    template["Resources"]["EchoFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Handler": ECHO,
            "Events": {
                name: {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}, "Path": route, "Method": "GET"}}
                for name, route in (("WhoAmI", "/whoami"), ("Public", "/public"))
            },
        },
    }
    paths = template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"]
    paths["/whoami"] = {"get": {"security": paths["/{task}"]["post"]["security"]}}
    paths["/public"] = {"get": {"security": []}}
    path.write_text(json.dumps(template))
    return path


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devstack-state")


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory: pytest.TempPathFactory, state_dir: Path) -> Iterator[LocalStack]:
    if os.environ.get("E2E_BASE_URL"):
        pytest.skip("the local stack's own issuer")
    template = _template_with_test_routes(tmp_path_factory.mktemp("template") / "template.json")
    stack = LocalStack(
        template=template,
        port=0,
        env={"MULTIPLY_DELAY_SECONDS": "0"},
        auth_type="JWT",
        state_dir=state_dir,
        worker_concurrency=1,
        task_modules=["tests.e2e.e2e_tasks", "tests.support.extra_tasks"],
    )
    with stack:
        yield stack


@pytest.fixture(scope="module")
def issuer(jwt_stack: LocalStack) -> LocalIssuer:
    assert jwt_stack.issuer is not None
    return jwt_stack.issuer


def _token_command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack token ARGS` from the checkout."""
    command = [sys.executable, "-m", "devstack", "token", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tasks(stack: LocalStack) -> int:
    return int(stack.dynamodb.scan(TableName=stack.resources.table_name, Select="COUNT")["Count"])


def _forged(issuer: LocalIssuer) -> str:
    """A token with the stack's issuer, audience and key id, signed with another key."""
    other = LocalIssuer(issuer.issuer, issuer.audience, RSAKey.generate_key(2048, parameters={"kid": issuer.key.kid}))
    return other.token("mallory")


@pytest.mark.parametrize(
    ("case", "description"),
    [
        pytest.param("none", None, id="no token"),
        pytest.param("expired", "the token has expired", id="expired"),
        pytest.param("audience", "the token does not have a valid audience", id="wrong audience"),
        pytest.param("signature", "the token could not be verified with the issuer's keys", id="bad signature"),
        pytest.param("garbage", "the token could not be verified with the issuer's keys", id="not a JWT"),
    ],
)
def test_a_request_without_a_valid_token_is_refused_before_any_function_runs(
    jwt_stack: LocalStack, issuer: LocalIssuer, case: str, description: str | None
) -> None:
    # GIVEN a token that API Gateway would refuse, or none
    headers = {
        "none": {},
        "expired": _bearer(issuer.token("alice", expires_in=-60)),
        "audience": _bearer(LocalIssuer(issuer.issuer, "someone-else", issuer.key).token("alice")),
        "signature": _bearer(_forged(issuer)),
        "garbage": _bearer("not-a-jwt"),
    }[case]
    before = _tasks(jwt_stack)

    # WHEN it submits a task
    response = requests.post(f"{jwt_stack.api_url}/multiply", json={"x": 2, "y": 3}, headers=headers, timeout=10)

    # THEN 401, answered as API Gateway answers it, and nothing was stored
    assert response.status_code == 401
    assert response.text == '{"message":"Unauthorized"}'
    assert response.headers["Content-Type"] == "application/json"
    challenge = response.headers.get("www-authenticate")
    if description is None:
        assert challenge is None
    else:
        assert challenge == f'Bearer scope="" error="invalid_token" error_description="{description}"'
    assert _tasks(jwt_stack) == before


def test_a_valid_tokens_claims_reach_the_function_as_the_deployed_api_passes_them(
    jwt_stack: LocalStack, issuer: LocalIssuer
) -> None:
    # GIVEN a token with claims of every JSON type
    token = issuer.token("alice", claims={"groups": ["admins", "users"], "level": 3, "verified": True})

    # WHEN a function behind the JWT authorizer is called with it
    response = requests.get(f"{jwt_stack.api_url}/whoami", headers=_bearer(token), timeout=10)

    # THEN it sees requestContext.authorizer.jwt, each claim as text, as HTTP APIs pass them
    assert response.status_code == 200, response.text
    authorizer = response.json()["authorizer"]
    claims = authorizer["jwt"]["claims"]
    assert authorizer["jwt"]["scopes"] is None
    assert claims["sub"] == "alice"
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == issuer.audience
    assert claims["exp"].isdigit()
    assert claims["iat"].isdigit()
    assert (claims["groups"], claims["level"], claims["verified"]) == ("[admins users]", "3", "true")
    # AND a token without "Bearer " is read too, as API Gateway reads its identity source
    assert requests.get(f"{jwt_stack.api_url}/whoami", headers={"Authorization": token}, timeout=10).status_code == 200


def test_a_route_the_template_leaves_open_needs_no_token(jwt_stack: LocalStack) -> None:
    response = requests.get(f"{jwt_stack.api_url}/public", timeout=10)

    assert response.status_code == 200, response.text
    assert response.json() == {"authorizer": None}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_browsers_preflight_of_a_tasks_get_or_delete_needs_no_token(
    jwt_stack: LocalStack, issuer: LocalIssuer, method: str
) -> None:
    # GIVEN a task, and the preflight a browser sends before a cross-origin GET or DELETE of it (no credentials)
    headers = _bearer(issuer.token("alice"))
    task_id = requests.post(f"{jwt_stack.api_url}/multiply", json={"x": 1, "y": 2}, headers=headers, timeout=10)
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": method}

    # WHEN it is sent
    response = requests.options(
        f"{jwt_stack.api_url}/multiply/{task_id.json()['task_id']}", headers=preflight, timeout=10
    )

    # THEN no authorizer refuses it (the route's OPTIONS has none), and it says what the route allows
    assert response.status_code == 204, response.text
    assert method in response.headers["Allow"].split(", ")
    # AND the methods themselves still want the token
    assert requests.request(method, f"{jwt_stack.api_url}/multiply/{uuid.uuid4()}", timeout=10).status_code == 401


def test_a_task_submitted_with_a_valid_token_runs(jwt_stack: LocalStack, issuer: LocalIssuer) -> None:
    headers = _bearer(issuer.token("alice"))

    submitted = requests.post(f"{jwt_stack.api_url}/multiply", json={"x": 6, "y": 7}, headers=headers, timeout=10)

    assert submitted.status_code == 202, submitted.text
    location = f"{jwt_stack.api_url}{submitted.headers['Location']}"
    result = wait_until(lambda: (r := requests.get(location, headers=headers, timeout=10)).status_code == 200 and r)
    assert result.json()["result"] == 42


def test_the_token_command_signs_for_the_running_stack_and_lrt_uses_it(jwt_stack: LocalStack, state_dir: Path) -> None:
    # GIVEN the issuer's key, readable by its owner only
    saved = state_dir / "jwt-issuer.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    # WHEN `python -m devstack token` makes a token, and `lrt --auth bearer` runs a task with it
    made = _token_command("--sub", "alice", "--state-dir", str(state_dir))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    lrt = Path(sys.executable).parent / "lrt"
    run = subprocess.run(
        [str(lrt), "--url", jwt_stack.api_url, "--auth", "bearer", "run", "multiply", "x=2", "y=3"],
        env=os.environ | {"LRT_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # THEN the stack accepts it
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "6"


def test_the_token_command_says_what_to_do_when_no_stack_issues_tokens(tmp_path: Path) -> None:
    done = _token_command("--sub", "alice", "--state-dir", str(tmp_path))

    assert done.returncode == 1
    assert "AUTH_TYPE=JWT make run" in done.stderr


def _client(stack: LocalStack, token: str) -> TaskClient:
    return TaskClient(stack.api_url, auth=BearerAuth(token), timeout=30)


def test_alices_task_is_a_404_to_bob_on_get_and_delete(jwt_stack: LocalStack, issuer: LocalIssuer) -> None:
    alice, bob = _bearer(issuer.token("alice")), _bearer(issuer.token("bob"))
    submitted = requests.post(f"{jwt_stack.api_url}/e2e-nap", json={"seconds": 1}, headers=alice, timeout=10)
    assert submitted.status_code == 202, submitted.text
    location = f"{jwt_stack.api_url}{submitted.headers['Location']}"
    unknown = f"{jwt_stack.api_url}/e2e-nap/{uuid.uuid4()}"

    for method in ("GET", "DELETE"):
        theirs = requests.request(method, location, headers=bob, timeout=10)
        never = requests.request(method, unknown, headers=bob, timeout=10)
        assert theirs.status_code == never.status_code == 404
        assert theirs.json()["title"] == never.json()["title"]
    # Alice's task went on as if nothing had been asked
    done = wait_until(lambda: (r := requests.get(location, headers=alice, timeout=10)).status_code == 200 and r)
    assert done.json()["status"] == "succeeded"


def test_alice_and_bob_sending_the_same_idempotency_key_get_two_tasks(
    jwt_stack: LocalStack, issuer: LocalIssuer
) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    ids = {
        name: requests.post(
            f"{jwt_stack.api_url}/multiply",
            json={"x": 1, "y": 2},
            headers=_bearer(issuer.token(name)) | key,
            timeout=10,
        ).json()["task_id"]
        for name in ("alice", "bob")
    }
    again = requests.post(
        f"{jwt_stack.api_url}/multiply", json={"x": 1, "y": 2}, headers=_bearer(issuer.token("alice")) | key, timeout=10
    )

    assert ids["alice"] != ids["bob"]
    assert again.json()["task_id"] == ids["alice"]


def test_bob_can_read_neither_alices_upload_nor_her_large_result_nor_its_link(
    jwt_stack: LocalStack, issuer: LocalIssuer
) -> None:
    alice, bob = _client(jwt_stack, issuer.token("alice")), _client(jwt_stack, issuer.token("bob"))
    # GIVEN alice's upload, and her task whose result is kept in the bucket
    upload_id = alice.upload(json.dumps({"values": [1, 2, 3]}).encode())
    big = alice.submit("huge-result", size=100_000)
    alice.wait("huge-result", big.task_id, timeout=60)

    # WHEN bob names the upload, asks for the task, its result, or its link
    used = requests.post(
        f"{jwt_stack.api_url}/describe",
        headers=_bearer(issuer.token("bob")) | {"Input-Upload": upload_id},
        timeout=10,
    )
    shown = requests.get(
        f"{jwt_stack.api_url}/huge-result/{big.task_id}", headers=_bearer(issuer.token("bob")), timeout=10
    )
    result = requests.get(
        f"{jwt_stack.api_url}/huge-result/{big.task_id}/result",
        headers=_bearer(issuer.token("bob")),
        allow_redirects=False,
        timeout=10,
    )

    # THEN the upload is none of his, and the task is unknown to him: no link is ever handed to him
    assert used.status_code == 422
    assert used.json()["errors"][0]["field"] == "Input-Upload"
    assert (shown.status_code, result.status_code) == (404, 404)
    assert "Location" not in result.headers
    with pytest.raises(NotFound):
        bob.result("huge-result", big.task_id)
    # while alice gets it all
    assert alice.result("huge-result", big.task_id) == "x" * 100_000
