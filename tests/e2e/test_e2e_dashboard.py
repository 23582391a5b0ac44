"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against the local stack.

One pass through what a user does: open the page (with a token in the URL's fragment, which never reaches a server),
get a 422's per-field error next to its field, submit a task and watch it go queued -> running -> succeeded with its
result, cancel another, filter by status and by task. Screenshots at 1280x800 and at a phone's width go to a folder
the test prints. Then an uploaded input shown by its link, and an API that takes IAM-signed requests only (which a page
cannot make) said to be one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, Request, Route, expect, sync_playwright

from devstack import LocalStack
from lrt import TaskClient

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# This machine's network is closed: without the background-networking flags Chromium's own connections are refused,
# many at a time, at every start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "header.payload.signature"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    assert CHROMIUM.is_file(), (
        f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path_factory.mktemp("dashboard-screenshots"))


def nap(base_url: str, seconds: float) -> str:
    answer = requests.post(f"{base_url}/e2e-nap", json={"seconds": seconds}, timeout=10)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def row_status(page: Page, task_id: str) -> Any:
    return page.locator(f'tr[data-task-id="{task_id}"] td.status')


def test_dashboard_submits_watches_cancels_and_filters_tasks(
    stack: LocalStack,
    base_url: str,
    browser: BrowserContext,
    screenshots: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    page = browser.new_page()
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request))

    # GIVEN the page, opened with a token in its fragment
    page.goto(f"{base_url}/dashboard#token={TOKEN}")
    expect(page.locator("#submit-task option[value=e2e-nap]")).to_have_count(1, timeout=WAIT_MS)
    # THEN the token went into the API calls' Authorization header, never into a URL; the address no longer holds it
    assert "#token" not in page.url
    api_calls = [request for request in sent if "/dashboard" not in request.url]
    assert api_calls
    assert all(request.headers.get("authorization") == f"Bearer {TOKEN}" for request in api_calls)
    assert not [request.url for request in sent if TOKEN in request.url]
    assert page.evaluate("sessionStorage.getItem('lrt-token')") == TOKEN

    # WHEN a field's value is wrong: the 422's per-field error shows next to that field
    page.select_option("#submit-task", "e2e-nap")
    page.fill("#field-seconds", "a while")
    page.click("#submit button[type=submit]")
    expect(page.locator("#field-seconds-error")).to_contain_text("Expected", timeout=WAIT_MS)
    expect(page.locator("#field-seconds")).to_have_attribute("aria-invalid", "true")

    # GIVEN both of the stack's worker slots busy: one task to cancel later, one that ends in a few seconds
    to_cancel = nap(base_url, 30)
    nap(base_url, 4)

    # WHEN a task is submitted through the form, with the keyboard
    page.fill("#field-seconds", "4")
    page.locator("#field-seconds").press("Enter")
    expect(page.locator("#submit-status")).to_contain_text("Submitted e2e-nap", timeout=WAIT_MS)
    expect(page.locator("#field-seconds")).not_to_have_attribute("aria-invalid", "true")
    task_id = page.locator("#submit-status").inner_text().split()[-1].rstrip(".")

    # THEN it is seen queued, then running with a moving progress bar, then succeeded with its result
    status = row_status(page, task_id)
    expect(status).to_have_text("queued", timeout=WAIT_MS)
    expect(status).to_have_text("running", timeout=WAIT_MS)
    progress = page.locator(f'tr[data-task-id="{task_id}"] progress')
    expect(progress).not_to_have_attribute("value", "0", timeout=WAIT_MS)
    expect(status).to_have_text("succeeded", timeout=WAIT_MS)
    page.get_by_role("button", name=f"Details of e2e-nap {task_id}").click()
    expect(page.locator("#detail-outcome")).to_have_text('"rested"', timeout=WAIT_MS)
    expect(page.locator("#detail-input")).to_contain_text('"seconds": 4')
    page.screenshot(path=str(screenshots / "dashboard-1280x800.png"))

    # WHEN another, running, task is cancelled from its row
    page.get_by_role("button", name=f"Cancel e2e-nap {to_cancel}").click()
    expect(row_status(page, to_cancel)).to_have_text("cancelled", timeout=WAIT_MS)

    # AND the list is filtered by status, then by task
    page.check("#filters input[value=cancelled]")
    expect(page.locator("#tasks tbody tr:not([data-status=cancelled])")).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator(f'tr[data-task-id="{to_cancel}"]')).to_have_count(1)
    page.uncheck("#filters input[value=cancelled]")
    page.select_option("#filter-task", "multiply")
    expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#tasks tbody tr:not(:has(td:first-child:text-is('multiply')))")).to_have_count(0)
    page.select_option("#filter-task", "e2e-nap")
    expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_have_count(1, timeout=WAIT_MS)

    # AND at a phone's width the page still reads (no sideways scrolling of the page itself)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "dashboard-390x844.png"), full_page=True)
    with capsys.disabled():
        print(f"\ndashboard screenshots: {screenshots} ({time.monotonic() - started:.1f} s in the browser)")


def test_dashboard_shows_an_uploaded_input_by_its_link(
    stack: LocalStack, base_url: str, browser: BrowserContext
) -> None:
    # GIVEN a task whose input was uploaded, so kept in the payload bucket (GET …/input would be a 303 to S3)
    given = {"seconds": 0.2}
    upload_id = TaskClient(base_url, timeout=30).upload(json.dumps(given).encode())
    submitted = requests.post(f"{base_url}/e2e-nap", headers={"Input-Upload": upload_id}, timeout=10)
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    assert requests.get(f"{base_url}/e2e-nap/{task_id}/input", allow_redirects=False, timeout=10).status_code == 303

    # WHEN its details are opened in the page
    page = browser.new_page()
    page.goto(f"{base_url}/dashboard")
    page.get_by_role("button", name=f"Details of e2e-nap {task_id}").click(timeout=WAIT_MS)

    # THEN the input pane says where the input is, with its size, and links to it; the link gives the input
    expect(page.locator("#detail-input")).to_contain_text("Kept in the payload bucket", timeout=WAIT_MS)
    expect(page.locator("#detail-input")).to_contain_text(f"{len(json.dumps(given))} bytes")
    href = page.locator("#detail-input-link").get_attribute("href")
    assert href is not None
    assert json.loads(requests.get(href, timeout=10).content) == given
    page.close()


def test_dashboard_says_plainly_when_the_api_takes_iam_signed_requests_only(
    stack: LocalStack, base_url: str, browser: BrowserContext
) -> None:
    # GIVEN an API whose routes take AWS IAM auth: API Gateway refuses every unsigned request itself, 403 in its own
    # JSON (the local stack does not emulate IAM auth: its answers are put in the API calls' place)
    page = browser.new_page()
    refused: list[str] = []

    def iam_authorizer(route: Route) -> None:
        refused.append(route.request.url)
        route.fulfill(
            status=403,
            headers={"Content-Type": "application/json", "x-amzn-ErrorType": "MissingAuthenticationTokenException"},
            body='{"message":"Missing Authentication Token"}',
        )

    page.route(lambda url: "/dashboard" not in url, iam_authorizer)

    # WHEN the page is opened
    page.goto(f"{base_url}/dashboard")

    # THEN it says that the dashboard cannot sign such requests, which auth types it serves and what to use instead
    notice = page.locator("#notice")
    expect(notice).to_contain_text("only AWS IAM", timeout=WAIT_MS)
    expect(notice).to_contain_text("AuthType JWT")
    expect(notice).to_contain_text("lrt --auth sigv4")
    # AND it stops asking (every refresh would be refused the same)
    asked = len(refused)
    page.wait_for_timeout(3 * 2000)
    assert len(refused) == asked
    page.close()


def test_dashboard_shows_the_apis_own_403_as_it_is(stack: LocalStack, base_url: str, browser: BrowserContext) -> None:
    # A 403 from the API's functions (problem+json) is not the gateway's IAM refusal: the page shows its detail.
    page = browser.new_page()
    problem = {"type": "about:blank", "title": "Forbidden", "status": 403, "detail": "this caller may not list tasks"}
    page.route(
        lambda url: url.endswith("/tasks") or "/tasks?" in url,
        lambda route: route.fulfill(
            status=403, headers={"Content-Type": "application/problem+json"}, body=json.dumps(problem)
        ),
    )

    page.goto(f"{base_url}/dashboard")

    expect(page.locator("#notice")).to_have_text("this caller may not list tasks", timeout=WAIT_MS)
    page.close()
