"""Schemathesis against the API's own OpenAPI document, as the stack serves it at GET /openapi.json.

Every operation of every task registered at that time (POST and GET /<task>, GET and DELETE /<task>/{task_id},
GET /<task>/{task_id}/input), GET /tasks and POST /uploads is called with generated inputs, valid and invalid, and every response is checked against the document with
schemathesis's default checks: no 5xx, a documented status code, content type and headers, a body that
matches its schema, invalid input refused with a 4xx, valid input accepted, 405 for an undeclared method.

The number of inputs tried and the statuses they met are printed in pytest's terminal summary.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

pytestmark = pytest.mark.e2e

# Per operation, for the fuzzing phase; the coverage phase adds its own cases. The test-only tasks of
# tests/e2e/e2e_tasks.py (e2e-*) go through the same code with other input models: fewer suffice there.
MAX_EXAMPLES = 15
TEST_TASK_MAX_EXAMPLES = 5
REQUEST_TIMEOUT_SECONDS = 10
# The methods API Gateway's ANY /{task}/{task_id} routes to the result function (samcli's Route.ANY_HTTP_METHODS,
# less HEAD, which schemathesis does not probe, and OPTIONS, a route of its own that answers 204 for browsers'
# preflights), which answers 405 for those it does not serve. TRACE and QUERY never
# reach a function. Nor do the methods that no route of /{task} takes: the gateway answers those itself, before any
# function (404 {"message": "Not Found"} from an HTTP API), so no document or handler could make them a 405.
ROUTED_UNDECLARED_METHODS = ["get", "put", "post", "delete", "patch"]
TASK_PATH = "^/[^/]+$"
TEST_TASK_PATH = "^/e2e-"
# What schemathesis accepts for schema-valid data by default, and 422.
SHAPE_CHECKED_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# What schemathesis accepts by default for schema-invalid data (schemathesis.config._checks).
NEGATIVE_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
# A listing's cursor is any string to JSON Schema, and a 400 unless it is one the API issued for the same listing
# (the follow-ups below pass real ones on).
LISTING_STATUSES = ["2xx", "3xx", "400", "401", "403", "404", "429", "5xx"]
# Listings of one kind all run the same code, as do the inputs of every task: a few examples each; GET /tasks gets
# more. (The follow-ups reach each one's 200 with real ids and cursors.)
LIST_KIND_MAX_EXAMPLES = 5
LIST_ALL_MAX_EXAMPLES = 10
INPUT_MAX_EXAMPLES = 5


class FuzzSummary:
    """Inputs generated and statuses met, over the session; printed in the terminal summary."""

    def __init__(self) -> None:
        self.generated = 0
        self.follow_ups = 0
        self.statuses: Counter[int] = Counter()
        self.operations: set[str] = set()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.generated:
            return
        server_errors = sum(count for status, count in self.statuses.items() if status >= 500)
        by_status = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        terminalreporter.write_sep("-", "schemathesis")
        terminalreporter.write_line(
            f"{self.generated} generated inputs over {len(self.operations)} operations "
            f"(+ {self.follow_ups} GET/DELETE of the tasks they submitted), {server_errors} server errors; "
            f"responses by status: {by_status}"
        )


@pytest.fixture(scope="module")
def fuzz_summary(request: pytest.FixtureRequest) -> FuzzSummary:
    plugins = request.config.pluginmanager
    summary = plugins.get_plugin(FuzzSummary.__name__)
    if summary is None:
        summary = FuzzSummary()
        plugins.register(summary, FuzzSummary.__name__)
    assert isinstance(summary, FuzzSummary)
    return summary


@pytest.fixture(scope="module")
def api_schema(base_url: str) -> OpenApiSchema:
    """The document the running API serves, so that every task registered at that time is fuzzed."""
    config = SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "request-timeout": REQUEST_TIMEOUT_SECONDS,
            "generation": {"max-examples": MAX_EXAMPLES},
            "phases": {"coverage": {"unexpected-methods": ROUTED_UNDECLARED_METHODS}},
            "operations": [
                {
                    "include-operation-id": "list_tasks",
                    "generation": {"max-examples": LIST_ALL_MAX_EXAMPLES},
                    "checks": {"positive_data_acceptance": {"expected-statuses": LISTING_STATUSES}},
                },
                {
                    "include-operation-id-regex": "^list_",
                    "generation": {"max-examples": LIST_KIND_MAX_EXAMPLES},
                    "checks": {"positive_data_acceptance": {"expected-statuses": LISTING_STATUSES}},
                },
                # No other method of these paths reaches a function: the gateway's own 404, not a 405.
                {
                    "include-path-regex": "/input$",
                    "generation": {"max-examples": INPUT_MAX_EXAMPLES},
                    "phases": {"coverage": {"unexpected-methods": []}},
                },
                # JSON Schema cannot say that lengths agree across fields (y one per row of X, rows of one width):
                # fit's and train's schema-valid inputs may still be a 422 naming the field, which tests/unit check.
                # JSON Schema's integer includes 319.0, which the API's exact types refuse (422, naming the field).
                {
                    "include-operation-id": "submit_huge-result",
                    "checks": {"positive_data_acceptance": {"expected-statuses": SHAPE_CHECKED_STATUSES}},
                },
                # A declared size over what a task can take is schema-invalid (the document's maximum) and a 413,
                # which says why (the worker's memory), not a generic 400 or 422.
                {
                    "include-operation-id": "create_upload",
                    "checks": {"negative_data_rejection": {"expected-statuses": [*NEGATIVE_STATUSES, "413"]}},
                },
                {
                    "include-operation-id-regex": "^submit_(fit|train)$",
                    "checks": {"positive_data_acceptance": {"expected-statuses": SHAPE_CHECKED_STATUSES}},
                    "phases": {"coverage": {"unexpected-methods": []}},
                },
                {
                    "include-path-regex": f"{TEST_TASK_PATH}[^/]*$",
                    "generation": {"max-examples": TEST_TASK_MAX_EXAMPLES},
                    "phases": {"coverage": {"unexpected-methods": []}},
                },
                {"include-path-regex": TEST_TASK_PATH, "generation": {"max-examples": TEST_TASK_MAX_EXAMPLES}},
                {"include-path-regex": TASK_PATH, "phases": {"coverage": {"unexpected-methods": []}}},
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config, timeout=REQUEST_TIMEOUT_SECONDS)


@pytest.fixture(autouse=True)
def _schemathesis_nodeid_on_pytest_9_2(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32.5's from_fixture reads and writes `item._nodeid`, which pytest 9.2 replaced with `_id`:
    # give it a plain attribute to use (it only renames the item while each operation runs, for reports).
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _follow_ups(
    case: schemathesis.Case[Any], response: schemathesis.Response, http: requests.Session
) -> list[tuple[schemathesis.Case[Any], schemathesis.Response]]:
    """GET its input, GET, then DELETE, a task that a generated input got accepted: the fuzzer's own ids are random,
    so only these reach the 200, 202 and 409 answers of those operations. Cancelling also keeps the test-only tasks
    from napping for any number of seconds, or failing into the dead-letter queue, under the tests that follow. And the
    next page of a listing that has one, with the cursor it gave.
    """
    if case.method == "GET" and "{task_id}" not in case.path:  # GET /tasks, GET /<task>: a listing
        return _next_page(case, response, http)
    if case.method != "POST" or response.status_code != 202:
        return []
    try:
        task_id = response.json()["task_id"]
    except (ValueError, KeyError, TypeError):
        return []  # not a task's status: the checks report it
    calls: list[tuple[schemathesis.Case[Any], schemathesis.Response]] = []
    for method, path in (("GET", "/{task_id}/input"), ("GET", "/{task_id}"), ("DELETE", "/{task_id}")):
        operation = case.operation.schema.find_operation_by_label(f"{method} {case.path}{path}")
        assert operation is not None, f"the document has no {method} {case.path}{path}"
        follow_up = operation.Case(path_parameters={"task_id": task_id})
        calls.append((follow_up, follow_up.call(session=http, timeout=REQUEST_TIMEOUT_SECONDS)))
    return calls


def _next_page(
    case: schemathesis.Case[Any], response: schemathesis.Response, http: requests.Session
) -> list[tuple[schemathesis.Case[Any], schemathesis.Response]]:
    try:
        cursor = response.json()["next_cursor"] if response.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        return []  # not a page: the checks report it
    if not cursor:
        return []
    follow_up = case.operation.Case(query={**(case.query or {}), "cursor": cursor})
    page = follow_up.call(session=http, timeout=REQUEST_TIMEOUT_SECONDS)
    assert page.status_code == 200, page.text  # a cursor the API gave goes on with the listing it was given for
    return [(follow_up, page)]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_conforms_to_its_openapi_document(
    case: schemathesis.Case[Any], http: requests.Session, fuzz_summary: FuzzSummary
) -> None:
    response = case.call(session=http, timeout=REQUEST_TIMEOUT_SECONDS)
    follow_ups = _follow_ups(case, response, http)
    fuzz_summary.generated += 1
    fuzz_summary.follow_ups += len(follow_ups)
    fuzz_summary.operations.add(case.operation.label)
    exchanges = [(case, response), *follow_ups]
    fuzz_summary.statuses.update(checked_response.status_code for _, checked_response in exchanges)
    for checked, checked_response in exchanges:
        checked.validate_response(
            checked_response, transport_kwargs={"session": http, "timeout": REQUEST_TIMEOUT_SECONDS}
        )
