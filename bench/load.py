"""The load generator, run in its own process so that it does not share the local stack's GIL.

`python -m bench.load <api_url> <mode> <clients> <tasks>` prints one JSON line:
- mode "poll": each client submits a task, then GETs it until it has finished, sleeping between GETs what the API
  asks (the body's retry_after, else the Retry-After header), as the lrt client does; then the next task (throughput,
  latency);
- mode "poll-2ms": the same, but GETs every 2 ms whatever the API asks (how this bench polled before the API's hint
  said when a task would end: the most load a client can put on the stack, not how clients behave);
- mode "submit": the clients submit the tasks; the caller waits for the queue to drain, then mode "get" polls
  each task once (requests per task with one status poll each).
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

BODY = json.dumps({"x": 6, "y": 7})
FIXED_POLL_INTERVAL_S = 0.002


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, dict[str, Any]]:
        status, payload, _ = self.exchange(method, path, body)
        return status, payload

    def exchange(self, method: str, path: str, body: str | None = None) -> tuple[int, dict[str, Any], float | None]:
        """Status, JSON body and the pause the API asked for before the next poll (None: it asked none)."""
        headers = {"content-type": "application/json"} if body is not None else {}
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        payload = json.loads(response.read() or b"null")
        return response.status, payload, retry_after(payload, response.getheader("Retry-After"))


def retry_after(body: Any, header: str | None) -> float | None:
    """The body's retry_after (seconds, to a tenth), else the Retry-After header's whole seconds."""
    hint = body.get("retry_after") if isinstance(body, dict) else None
    if isinstance(hint, int | float) and not isinstance(hint, bool) and hint > 0:
        return float(hint)
    return float(header) if header is not None and header.strip().isdigit() else None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def _run_clients(work: Callable[[Any], None], shares: list[Any]) -> None:
    """One client thread per share, all at once; returns when every one has finished."""
    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def poll_run(url: str, clients: int, tasks: int, *, fixed_interval: float | None = None) -> dict[str, Any]:
    """`fixed_interval`: GET every so many seconds, whatever the API asks; None: sleep what it asks."""
    submit_ms: list[float] = []
    visible_ms: list[float] = []
    polls: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(count: int) -> None:
        client = Client(url)
        for _ in range(count):
            started = time.perf_counter()
            status, body, hint = client.exchange("POST", "/multiply", BODY)
            submitted = time.perf_counter()
            if status != 202:
                with lock:
                    errors.append(f"submit {status} {body}")
                continue
            gets = 0
            # The fixed-interval client asks at once, as it always did; the other first sleeps the submission's hint.
            pause = 0.0 if fixed_interval is not None else hint or 0.0
            while True:
                time.sleep(pause)
                status, result, hint = client.exchange("GET", f"/multiply/{body['task_id']}")
                gets += 1
                if status != 202:
                    break
                pause = fixed_interval if fixed_interval is not None else hint or FIXED_POLL_INTERVAL_S
            done = time.perf_counter()
            with lock:
                submit_ms.append((submitted - started) * 1000)
                if status == 200 and result.get("status") == "succeeded":
                    visible_ms.append((done - started) * 1000)
                    polls.append(gets)
                else:
                    errors.append(f"get {status} {result}")

    started, cpu_started = time.perf_counter(), time.process_time()
    _run_clients(work, _split(tasks, clients))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    return {
        "tasks": len(visible_ms),
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(len(visible_ms) / elapsed, 1),
        "submit_p50_ms": round(statistics.median(submit_ms), 2) if submit_ms else None,
        "submit_p99_ms": round(percentile(submit_ms, 0.99), 2),
        "result_visible_p50_ms": round(statistics.median(visible_ms), 2) if visible_ms else None,
        "result_visible_p99_ms": round(percentile(visible_ms, 0.99), 2),
        "polls_per_task": round(statistics.fmean(polls), 2) if polls else None,
        "errors": errors[:5],
        "error_count": len(errors),
        "client_cpu_ms_per_task": round(client_cpu / max(1, len(visible_ms)) * 1000, 1),
    }


def submit_run(url: str, clients: int, tasks: int) -> dict[str, Any]:
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(count: int) -> None:
        client = Client(url)
        for _ in range(count):
            status, body = client.request("POST", "/multiply", BODY)
            with lock:
                (ids.append(body["task_id"]) if status == 202 else errors.append(f"{status} {body}"))

    _run_clients(work, _split(tasks, clients))
    return {"ids": ids, "errors": errors[:5], "error_count": len(errors)}


def get_run(url: str, clients: int, ids: list[str]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def work(chunk: list[str]) -> None:
        client = Client(url)
        for task_id in chunk:
            status, body = client.request("GET", f"/multiply/{task_id}")
            key = f"{status} {body.get('status') if isinstance(body, dict) else body}"
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

    _run_clients(work, [ids[n::clients] for n in range(clients)])
    return {"statuses": statuses}


def main(argv: list[str]) -> None:
    url, mode, clients = argv[0], argv[1], int(argv[2])
    if mode == "poll":
        result = poll_run(url, clients, int(argv[3]))
    elif mode == "poll-2ms":
        result = poll_run(url, clients, int(argv[3]), fixed_interval=FIXED_POLL_INTERVAL_S)
    elif mode == "submit":
        result = submit_run(url, clients, int(argv[3]))
    else:
        result = get_run(url, clients, json.loads(sys.stdin.read()))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
