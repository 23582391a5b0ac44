"""Listing from the client and the CLI: TaskClient.list and iter_tasks, `lrt ls` as a table that fits the terminal
and as JSON, against the fake API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lrt.cli import main, task_table
from lrt.client import TaskClient, TaskSnapshot
from tests.unit.client.fakeapi import FakeApi, Reply, problem_reply, task_reply

NOW = datetime(2025, 1, 2, 3, 5, 0, tzinfo=UTC)
IDS = [f"{n:08d}-4c1d-4e5f-9a6b-7c8d9e0f1a2b" for n in range(3)]


def page(*replies: Reply, next_cursor: str | None = None) -> Reply:
    return Reply(200, {"items": [reply.body for reply in replies], "next_cursor": next_cursor})


def three_tasks() -> list[Reply]:
    return [
        task_reply("running", task_id=IDS[0], progress=0.42),
        task_reply("succeeded", task_id=IDS[1], task="describe-a-long-task-name", result={"mean": 2}),
        task_reply("queued", task_id=IDS[2]),
    ]


def test_list_asks_for_the_filters_and_reads_the_page(api: FakeApi) -> None:
    api.script("GET", "/multiply?status=queued&status=running&limit=2", page(*three_tasks()[:2], next_cursor="c1"))

    listed = TaskClient(api.base_url).list("multiply", status=["queued", "running"], limit=2)

    assert [task.task_id for task in listed.items] == IDS[:2]
    assert listed.items[0].progress == 0.42
    assert listed.next_cursor == "c1"


def test_iter_tasks_follows_the_cursors_to_the_end(api: FakeApi) -> None:
    first, second, third = three_tasks()
    api.script("GET", "/tasks?limit=2", page(first, second, next_cursor="abc.def"))
    api.script("GET", "/tasks?limit=2&cursor=abc.def", page(third))

    tasks = list(TaskClient(api.base_url).iter_tasks(page_size=2))

    assert [task.task_id for task in tasks] == IDS
    assert [seen.path for seen in api.requests] == ["/tasks?limit=2", "/tasks?limit=2&cursor=abc.def"]


def test_lrt_ls_prints_a_table_and_where_to_go_on(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    api.script("GET", "/tasks?status=running&status=queued&limit=3", page(*three_tasks(), next_cursor="more"))

    code = main(["--url", api.base_url, "ls", "--status", "running,queued", "--limit", "3"])

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["ID", "TASK", "STATUS", "PROGRESS", "CREATED", "DURATION"]
    assert IDS[0] in lines[1]
    assert "running" in lines[1]
    assert "42%" in lines[1]
    assert "100%" in lines[2]
    assert "3.0s" in lines[2]
    assert err == "lrt: more with --cursor more\n"


def test_lrt_ls_json_is_the_page_for_scripts(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", "/fit?limit=20", page(*three_tasks()))

    code = main(["--url", api.base_url, "ls", "fit", "--json"])

    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [item["task_id"] for item in printed["items"]] == IDS
    assert printed["next_cursor"] is None
    assert printed["items"][1]["result"] == {"mean": 2}


def test_lrt_ls_refused_filter_is_exit_4_with_the_apis_reason(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.script("GET", "/tasks?status=done&limit=20", problem_reply(400, "Malformed request", "status must be one of …"))

    code = main(["--url", api.base_url, "ls", "--status", "done"])

    assert code == 4
    assert "status must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("width", [40, 60, 80, 100, 160])
def test_task_table_fits_the_terminal(width: int) -> None:
    tasks = [TaskSnapshot.from_json(reply.body) for reply in three_tasks()]

    lines = task_table(tasks, width=width, now=NOW)

    assert len(lines) == 4
    assert all(len(line) <= width for line in lines), lines
    # The id stays whole while it fits, and its first 8 characters are always there.
    assert (IDS[0] in lines[1]) == (width >= 120)
    assert lines[1].startswith(IDS[0][:8])
