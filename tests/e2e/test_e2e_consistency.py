"""What a poller sees is always a whole state: never `succeeded` without its result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack import LocalStack

pytestmark = pytest.mark.e2e


def test_a_finished_task_is_never_seen_without_its_result(base_url: str, stack: LocalStack) -> None:
    with requests.Session() as session:
        tasks = {
            session.post(f"{base_url}/multiply", json={"x": n, "y": 3}, timeout=10).json()["task_id"]: n * 3
            for n in range(100)
        }

    def poll(task_id: str) -> list[dict[str, object]]:
        seen = []
        with requests.Session() as session:
            while True:
                response = session.get(f"{base_url}/multiply/{task_id}", timeout=10)
                seen.append(response.json())
                if response.status_code == 200:
                    return seen

    with ThreadPoolExecutor(max_workers=8) as pool:
        histories = dict(zip(tasks, pool.map(poll, tasks), strict=True))

    for task_id, history in histories.items():
        final = history[-1]
        assert final["status"] == "succeeded", final
        assert final["result"] == tasks[task_id], final
        assert all(seen["status"] in ("queued", "running", "succeeded") for seen in history)
