"""Listing over real HTTP: GET /<task> and GET /tasks beside POST /<task> (two functions on one path, by method), and
the dashboard's files, as the local stack (or a deployed API) serves them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_get_and_post_of_one_path_reach_their_own_functions(
    http: requests.Session, base_url: str, finished: Callable[..., dict[str, Any]]
) -> None:
    # GIVEN a task submitted with POST /multiply, then run
    submitted = http.post(f"{base_url}/multiply", json={"x": 6, "y": 7}, timeout=10)
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    done = finished("multiply", task_id)

    # WHEN its kind and all tasks are listed with GET
    kind = http.get(f"{base_url}/multiply", params={"limit": "100"}, timeout=10)
    everything = http.get(f"{base_url}/tasks", params={"status": "succeeded", "limit": "100"}, timeout=10)

    # THEN both answer pages (the result function's), holding the task as GET shows it
    for page in (kind, everything):
        assert page.status_code == 200, page.text
        assert page.headers["Content-Type"] == "application/json"
        assert done in page.json()["items"]
    assert {item["task"] for item in kind.json()["items"]} == {"multiply"}
    # AND its input, as it was accepted
    assert http.get(f"{base_url}/multiply/{task_id}/input", timeout=10).json() == {"x": 6, "y": 7}


def test_a_listings_pages_follow_each_other_and_a_bad_cursor_is_a_400(http: requests.Session, base_url: str) -> None:
    for n in range(3):
        assert http.post(f"{base_url}/multiply", json={"x": n, "y": 1}, timeout=10).status_code == 202

    first = http.get(f"{base_url}/multiply", params={"limit": "2"}, timeout=10).json()
    second = http.get(f"{base_url}/multiply", params={"limit": "2", "cursor": first["next_cursor"]}, timeout=10)
    foreign = http.get(f"{base_url}/fit", params={"limit": "2", "cursor": first["next_cursor"]}, timeout=10)

    assert second.status_code == 200
    assert not {item["task_id"] for item in first["items"]} & {item["task_id"] for item in second.json()["items"]}
    assert foreign.status_code == 400
    assert foreign.headers["Content-Type"] == "application/problem+json"


def test_post_to_the_listing_of_all_tasks_is_not_a_task(http: requests.Session, base_url: str) -> None:
    answer = http.post(f"{base_url}/tasks", json={}, timeout=10)

    assert answer.status_code == 404
    assert "no task named 'tasks'" in answer.json()["detail"]


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/app.js", "/dashboard/app.css"])
def test_the_dashboard_is_served_by_the_api_without_credentials(base_url: str, path: str) -> None:
    # A bare request: no signature, no token, whatever the API's auth.
    answer = requests.get(f"{base_url}{path}", timeout=10)

    assert answer.status_code == 200
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
