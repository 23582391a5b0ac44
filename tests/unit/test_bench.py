"""The benchmark's arithmetic and report shape, on tiny inputs (no timing, no stack)."""

from __future__ import annotations

import shutil

import pytest

from bench import report
from bench.coldstart import instructions_once, summarize
from bench.cost import FunctionUse, arithmetic, billed_ms, usd_per_million_tasks
from bench.local import durations_in


def test_billed_ms_rounds_each_invocation_up_to_the_next_millisecond() -> None:
    # GIVEN durations of 0.2 ms, 1.0 ms and 2.5 ms
    # WHEN they are billed
    # THEN each is rounded up on its own: 1 + 1 + 3 ms, a mean of 5/3
    assert billed_ms([0.0002, 0.001, 0.0025]) == pytest.approx(5 / 3)
    assert billed_ms([]) == 0.0


def test_cost_per_million_tasks_adds_up_list_prices() -> None:
    # GIVEN one submit (10 ms at 256 MB), one poll (4 ms at 256 MB) and a tenth of a worker batch (20 ms at 1 GB)
    functions = {
        "submit": FunctionUse(1, 10, 256),
        "result": FunctionUse(1, 4, 256),
        "worker": FunctionUse(0.1, 20, 1024),
    }
    requests = {
        "sqs.SendMessage": 1,
        "sqs.ReceiveMessage": 0.1,
        "sqs.DeleteMessageBatch": 0.1,
        "dynamodb.PutItem": 1,
        "dynamodb.UpdateItem": 2,
        "dynamodb.GetItem": 1,
    }
    # WHEN the cost model prices them
    costs = usd_per_million_tasks(requests, functions, api_requests_per_task=2)
    # THEN every line is count x price x a million
    assert costs["apigateway"] == pytest.approx(2.00)
    assert costs["lambda.requests"] == pytest.approx(2.1 * 0.20)
    assert costs["lambda.duration.submit"] == pytest.approx(0.010 * 0.25 * 0.0000133334 * 1e6)
    assert costs["lambda.duration.worker"] == pytest.approx(0.1 * 0.020 * 1 * 0.0000133334 * 1e6)
    assert costs["sqs"] == pytest.approx(1.2 * 0.40)
    assert costs["dynamodb.writes"] == pytest.approx(3 * 0.625)
    assert costs["dynamodb.index_writes"] == pytest.approx(1 * 0.625)  # the new record's entry in the owner index
    assert costs["dynamodb.reads"] == pytest.approx(0.125)
    assert costs["total"] == pytest.approx(sum(value for key, value in costs.items() if key != "total"))
    # AND the printed arithmetic ends with the same total
    assert arithmetic(requests, functions, api_requests_per_task=2)[-1].startswith(
        f"  total                 ${costs['total']:.3f}"
    )


def test_cold_start_summary_is_medians_and_ratios_to_the_bare_handler() -> None:
    samples = {"bare": [(0.5, 0.4), (0.6, 0.4), (0.7, 0.5)], "result": [(0.6, 0.44), (0.7, 0.46), (0.8, 0.5)]}
    summary = summarize(samples)
    assert summary["bare"]["ratio_to_bare"] == 1.0
    assert summary["result"]["median_s"] == 0.7
    assert summary["result"]["ratio_to_bare"] == pytest.approx(0.46 / 0.4, abs=1e-3)


def test_report_has_the_shape_the_readme_documents() -> None:
    # GIVEN tiny measurements: two tasks, one poll each
    cold = summarize({"bare": [(0.5, 0.4)], "submit": [(0.6, 0.45)]})
    warm = {"submit": {"median_ms": 0.8, "mean_ms": 0.9, "invocations": 3}}
    local = {
        "tasks": 2,
        "submit_errors": 0,
        "poll_statuses": {"200 succeeded": 2},
        "phase_seconds": 1.0,
        "requests": {"sqs.SendMessage": 2},
        "requests_per_task": {"sqs.SendMessage": 1.0, "dynamodb.PutItem": 1.0},
        "durations": {"submit": [0.004, 0.006], "result": [0.002, 0.002], "worker": [0.01]},
        "memory_mb": {"submit": 256, "result": 256, "worker": 1024},
        "throughput": {
            "tasks_per_s": 60.0,
            "submit_p50_ms": 5.0,
            "submit_p99_ms": 9.0,
            "result_visible_p50_ms": 20.0,
            "polls_per_task": 1.5,
            "cpu_ms_per_task": {"api": 10.0, "worker": 4.0, "emulator": 9.0, "load": 2.0},
        },
        "throughput_polling_every_2ms": {
            "tasks_per_s": 30.0,
            "submit_p50_ms": 9.0,
            "submit_p99_ms": 19.0,
            "result_visible_p50_ms": 40.0,
            "polls_per_task": 20.0,
            "cpu_ms_per_task": {"api": 30.0, "worker": 4.0, "emulator": 19.0, "load": 5.0},
        },
        "one_client": {"tasks_per_s": 40.0, "submit_p50_ms": 4.0, "submit_p99_ms": 6.0, "result_visible_p50_ms": 15.0},
        "usd_per_million_tasks_polled": 6.5,
        "usd_per_million_tasks_with_webhook": 8.1,
        "usd_per_million_tasks_polled_without_events": 5.4,
        "polled_detail": {
            "tasks": 2,
            "clients": 2,
            "gets_per_task": 1.0,
            "notice_latency_p50_s": 0.4,
            "notice_latency_max_s": 0.6,
            "cost_breakdown": {"apigateway": 2.0, "eventbridge": 1.0},
        },
        "usd_per_million_tasks_by_payload": {"1KB": 5.0, "10MB": 60.0},
        "payload_detail": {},
        "worker_batch_size": None,
    }
    # WHEN the report is built
    results = report.build({"nproc": 2, "cpu": "test"}, cold, warm, local)
    # THEN it has the documented keys and types
    assert set(results) >= {"machine", "cold_start", "warm_ms", "requests_per_task", "usd_per_million_tasks", "local"}
    assert set(results["cold_start"]["submit"]) >= {"median_s", "ratio_to_bare"}
    assert results["warm_ms"] == {"submit": 0.8}
    assert set(results["local"]) >= {"tasks_per_s", "submit_p50_ms", "submit_p99_ms", "result_visible_p50_ms"}
    assert results["local"]["one_client"]["submit_p50_ms"] == 4.0
    assert results["lambda"]["worker"]["invocations_per_task"] == 0.5
    assert isinstance(results["usd_per_million_tasks"], float)
    # AND the polled cost, the cost by payload, and the throughput before (2 ms polls) beside the one after
    assert results["usd_per_million_tasks_polled"] == 6.5
    assert results["usd_per_million_tasks_with_webhook"] == 8.1
    assert results["usd_per_million_tasks_polled_without_events"] == 5.4
    assert results["polled"]["gets_per_task"] == 1.0
    assert results["usd_per_million_tasks_by_payload"] == {"1KB": 5.0, "10MB": 60.0}
    assert results["local"]["polling_every_2ms"]["tasks_per_s"] == 30.0
    table = report.table(results)
    assert "tasks/s" in table
    assert "total              $  6.500 per million tasks (target <= $7.00)  ok" in table
    assert "polling every 2 ms" in table


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind counts the instructions")
def test_instruction_count_grows_with_the_work_a_cold_start_does() -> None:
    start_up = instructions_once("pass")
    importing = instructions_once("import json, email.parser")

    assert 0 < start_up < importing


def test_the_table_shows_the_instruction_count_beside_the_cpu_time_when_there_is_one() -> None:
    cold = summarize({"bare": [(0.5, 0.4)], "submit": [(0.6, 0.5)]})
    cold["bare"] |= {"million_instructions": 1000.0, "instructions_ratio_to_bare": 1.0}
    cold["submit"] |= {"million_instructions": 1100.0, "instructions_ratio_to_bare": 1.1}

    table = report.table(report.build({"nproc": 2}, cold, {}, None))

    assert "x1.250 of bare (target <= 1.15)  MISSED" in table
    assert "1100.0 M instructions (valgrind)       x1.100 of bare  ok" in table


def test_cost_of_a_task_with_payloads_counts_s3_requests_and_the_items_size() -> None:
    from bench.cost import FunctionUse, api_requests, usd_per_million_tasks

    # GIVEN a task whose input went by upload and whose result was kept in S3, with a 2.5 KB record
    requests = {
        "s3.PostObject": 1.0,  # the caller's upload
        "s3.GetObject": 2.0,  # the worker reads the input; the caller downloads the result
        "s3.PutObject": 1.0,  # the worker stores the result
        "dynamodb.PutItem": 1.0,
        "dynamodb.UpdateItem": 1.0,
        "dynamodb.GetItem": 2.0,
    }
    functions = {"submit": FunctionUse(2.0, 10.0, 256)}

    costs = usd_per_million_tasks(requests, functions, api_requests_per_task=3, item_bytes=2_500)

    # THEN S3 costs $5 per million writes and $0.40 per million reads, DynamoDB a unit per KB written, per 4 KB read
    assert costs["s3"] == pytest.approx(2 * 5.0 + 2 * 0.4)
    assert costs["dynamodb.writes"] == pytest.approx(2 * 3 * 0.625)
    assert costs["dynamodb.reads"] == pytest.approx(2 * 1 * 0.125)
    assert costs["apigateway"] == pytest.approx(3.0)
    # AND a request is billed per 512 KB of payload
    assert (api_requests(0), api_requests(512 * 1024), api_requests(512 * 1024 + 1)) == (1, 1, 2)


def test_each_functions_durations_come_from_its_report_lines() -> None:
    # GIVEN the stack's output: REPORT lines (a cold start's with its Init Duration) among other lines
    log = (
        "[SubmitFunction] REPORT RequestId: a\tInit Duration: 150.00 ms\tDuration: 12.50 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 90 MB\n"
        '{"level":"INFO","message":"task accepted"}\n'
        "[SubmitFunction] REPORT RequestId: b\tDuration: 4.00 ms\tBilled Duration: 4 ms\tMemory Size: 256 MB\t"
        "Max Memory Used: 90 MB\n"
        "[WorkerFunction] REPORT RequestId: c\tDuration: 30.25 ms\tBilled Duration: 31 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 99 MB\n"
    )
    # WHEN they are read THEN each function's durations, in seconds
    assert durations_in(log) == {"submit": [0.0125, 0.004], "worker": [0.03025]}


def test_the_polled_cost_adds_each_tasks_event_and_its_share_of_a_notifier_batch() -> None:
    from bench.polled import events_per_task, webhook_per_task

    # GIVEN one EventBridge event per task, and a notifier invocation of 100 ms at 256 MB for 10 tasks' ends
    events = events_per_task()
    # THEN the event is $1.00 per million, the notifier a tenth of an invocation's request and duration
    assert events["eventbridge"] == pytest.approx(1.00)
    assert events["lambda.notifier"] == pytest.approx(0.1 * (0.20 + 0.1 * 0.25 * 0.0000133334 * 1e6))
    # AND a webhook delivery is three SQS requests, one invocation, and a hundredth of a secret read
    webhook = webhook_per_task()
    assert webhook["webhook.sqs"] == pytest.approx(3 * 0.40)
    assert webhook["webhook.lambda"] == pytest.approx(0.20 + 0.1 * 0.25 * 0.0000133334 * 1e6)
    assert webhook["webhook.secret"] == pytest.approx(0.01 * 5.0)


def test_the_load_generator_sleeps_the_bodys_hint_else_the_headers_seconds() -> None:
    from bench.load import retry_after

    assert retry_after({"retry_after": 0.3}, "1") == 0.3
    assert retry_after({"status": "running"}, "2") == 2.0
    assert retry_after({"retry_after": 0}, None) is None
    assert retry_after(None, "soon") is None


@pytest.mark.parametrize("shape", ["describe", "fit"])
def test_the_input_memory_probe_runs_the_task_as_the_worker_does_and_reports_its_peak(
    shape: str, tmp_path: pytest.TempPathFactory
) -> None:
    from pathlib import Path

    from bench.input_memory import measure

    # GIVEN a small input of the costliest shape, run in a process of its own
    probe = measure(shape, 20_000, Path(str(tmp_path)))

    # THEN the task succeeded and the peak counts the input's parse above the handler's own imports
    assert probe["status"] == "succeeded"
    assert probe["input_bytes"] > 80_000
    assert 30 < probe["baseline_mb"] <= probe["peak_mb"] < 200


def test_an_hour_of_a_durable_training_run_costs_its_compute_and_each_steps_operations() -> None:
    from bench.durable import DURABLE_PER_OPERATION, hour_of_training

    # 4 hours of 10-minute steps at 900 s a invocation: one step an invocation (a second would not fit), so 24
    # invocations, 24 steps and 23 suspensions, and the execution's start: 48 durable operations.
    hour = hour_of_training(hours=4, step_minutes=10, worker_timeout=900, memory_mb=512, replay_seconds_per_step=0)

    assert (hour["steps"], hour["invocations"], hour["durable_operations"]) == (24, 24, 48)
    breakdown = hour["usd_per_task_hour_breakdown"]
    assert breakdown["durable_operations"] == pytest.approx(48 * DURABLE_PER_OPERATION / 4, rel=1e-3)
    # Compute is the whole of it but for a fraction of a percent: the same hour on plain Lambda, were it allowed.
    assert breakdown["lambda_gb_seconds"] == pytest.approx(hour["usd_per_hour_plain_lambda"], rel=1e-3)
    assert hour["usd_per_hour_plain_lambda"] < hour["usd_per_task_hour"] < 1.01 * hour["usd_per_hour_plain_lambda"]
    # Two-minute steps fit several to an invocation.
    assert hour_of_training(hours=1, step_minutes=2, worker_timeout=900)["invocations"] == 5


def test_the_table_judges_the_first_invocation_against_its_own_target() -> None:
    # GIVEN first-invocation figures: submit within 1.12x of the bare handler, worker beyond it
    first = {
        "bare": {"cpu_median_s": 0.2, "ratio_to_bare": 1.0, "runs": 3},
        "submit": {"cpu_median_s": 0.22, "ratio_to_bare": 1.1, "runs": 3},
        "worker": {"cpu_median_s": 0.23, "ratio_to_bare": 1.15, "runs": 3},
    }
    cold = summarize({"bare": [(0.5, 0.4)], "submit": [(0.6, 0.45)]})
    # WHEN the report is built and printed
    results = report.build({"nproc": 2}, cold, {}, None, first_invocation=first)
    table = report.table(results)
    # THEN the figures are kept, and each line says whether it meets 1.12x
    assert results["cold_start_first_invocation"] == first
    lines = {line.split()[0]: line for line in table.splitlines() if "target <= 1.12" in line}
    assert lines["submit"].endswith("ok")
    assert not lines["worker"].endswith("ok")
