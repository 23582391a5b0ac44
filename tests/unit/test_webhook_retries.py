"""The webhook retry schedule as SQS can keep it: a receiver that never answers is tried at every delay of any schedule
RetrySchedule accepts, under one webhook-id, and dead-lettered after the last; and no SendMessage or
ChangeMessageVisibility made on the way breaks SQS's limits. SQS is simulated here with the rules its API reference
states: DelaySeconds 0 to 900; a received message hidden at most 12 hours from the ReceiveMessage that returned it,
however often it is extended; a message that is not deleted comes back once its visibility timeout has passed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from core.domain.records import TaskRecord, TaskStatus
from core.services.events import task_event
from core.services.webhooks import (
    MAX_RETRIES,
    MAX_RETRY_DELAY_SECONDS,
    MAX_RETRY_SECONDS,
    Delivery,
    RetrySchedule,
    UrlPolicy,
    WebhookSender,
)

# SQS's limits, as the API reference states them (not the code's constants: the test checks the code against them).
SQS_MAX_DELAY_SECONDS = 900
SQS_RECEIVE_WINDOW_SECONDS = 12 * 3600
# The webhook queue's VisibilityTimeout and maxReceiveCount (template.yaml; tests/template checks them).
QUEUE_VISIBILITY_SECONDS = 900
QUEUE_MAX_RECEIVE_COUNT = 50
# The local stack's schedule and the template's default.
LOCAL_SCHEDULE = "1,2,2"
DEFAULT_SCHEDULE = "30,120,600,3600,10800,21600,43200,43200"
START = 1_800_000_000.0


class SqsRefused(AssertionError):
    """A call SQS would have refused: the test fails on it."""


@dataclass
class Message:
    body: str
    visible_at: float
    received_at: float | None = None
    receipt: str | None = None
    receives: int = 0


@dataclass
class SimulatedSqs:
    """The webhook queue and its dead-letter queue, keeping SQS's rules, on a clock the test moves."""

    now: float = START
    messages: dict[str, Message] = field(default_factory=dict)
    dead_letters: list[str] = field(default_factory=list)
    receive_counts: list[int] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def clock(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def send_later(self, body: str, delay_seconds: int) -> None:
        if not 0 <= delay_seconds <= SQS_MAX_DELAY_SECONDS:
            raise SqsRefused(f"SendMessage with DelaySeconds {delay_seconds}")
        self.messages[f"m{next(self._ids)}"] = Message(body, self.now + delay_seconds)

    def hide(self, receipt_handle: str, seconds: int) -> None:
        (message,) = (m for m in self.messages.values() if m.receipt == receipt_handle)
        assert message.received_at is not None
        if not 0 <= seconds <= SQS_RECEIVE_WINDOW_SECONDS or self.now + seconds > (
            message.received_at + SQS_RECEIVE_WINDOW_SECONDS
        ):
            raise SqsRefused(
                f"ChangeMessageVisibility of {seconds} s, {self.now - message.received_at} s after receive"
            )
        message.visible_at = self.now + seconds

    def dead_letter(self, body: str) -> None:
        self.dead_letters.append(body)

    def receive(self) -> tuple[str, Message]:
        """The next message to become visible, received when it does (the clock moves there)."""
        message_id, message = min(self.messages.items(), key=lambda item: item[1].visible_at)
        self.now = max(self.now, message.visible_at)
        message.received_at = self.now
        message.receipt = f"{message_id}-{message.receives}"
        message.receives += 1
        message.visible_at = self.now + QUEUE_VISIBILITY_SECONDS
        return message_id, message

    def delete(self, message_id: str) -> None:
        self.receive_counts.append(self.messages.pop(message_id).receives)


@dataclass
class DeadReceiver:
    """A webhook URL whose host never answers; notes when each attempt was made."""

    sqs: SimulatedSqs
    attempts: list[float] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.attempts.append(self.sqs.now)
        raise OSError("connection refused")


def finished() -> TaskRecord:
    return TaskRecord(
        "2f1c1c4e-8d3c-4b7e-9a55-0d6f1c3a9b11",
        "multiply",
        TaskStatus.SUCCEEDED,
        '{"x":2,"y":3}',
        START - 10,
        int(START) + 86_400,
        "alice",
        started_at=START - 5,
        finished_at=START - 1,
        result_json="6",
        webhook_url="https://hooks.example.com/tasks",
    )


def run_until_settled(schedule: RetrySchedule, lag: int) -> tuple[SimulatedSqs, DeadReceiver]:
    """The notifier's message, then the webhook function invoked `lag` seconds after each receive, as Lambda's poller
    would, until the queue is empty."""
    sqs = SimulatedSqs()
    receiver = DeadReceiver(sqs)
    sender = WebhookSender(
        lambda: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        policy=UrlPolicy.PUBLIC,
        schedule=schedule,
        queue=sqs,
        resolver=receiver,
        clock=sqs.clock,
    )
    sqs.send_later(Delivery.of(task_event(finished())).to_message(), 0)
    while sqs.messages:
        message_id, message = sqs.receive()
        sqs.now += lag
        record: dict[str, Any] = {
            "messageId": message_id,
            "receiptHandle": message.receipt,
            "body": message.body,
            "attributes": {"ApproximateReceiveCount": str(message.receives)},
        }
        response = sender.handle([record])
        if {"itemIdentifier": message_id} not in response["batchItemFailures"]:
            sqs.delete(message_id)
    return sqs, receiver


def schedules() -> st.SearchStrategy[str]:
    delays = st.lists(st.integers(0, MAX_RETRY_DELAY_SECONDS), min_size=1, max_size=MAX_RETRIES)
    return delays.map(lambda values: ",".join(map(str, values)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=schedules(), lag=st.integers(0, 151))
@example(text=DEFAULT_SCHEDULE, lag=151)
@example(text=LOCAL_SCHEDULE, lag=0)
@example(text=",".join([str(MAX_RETRY_DELAY_SECONDS)] * (MAX_RETRY_SECONDS // MAX_RETRY_DELAY_SECONDS)), lag=151)
def test_every_schedule_is_kept_within_sqs_limits_under_one_webhook_id(text: str, lag: int) -> None:
    # GIVEN any schedule the settings accept, and a receiver that never answers
    try:
        schedule = RetrySchedule.parse(text)
    except ValueError:
        assume(False)
        raise

    # WHEN the deliveries go round the queue until it is empty (SqsRefused fails the test on a call SQS would refuse)
    sqs, receiver = run_until_settled(schedule, lag)

    # THEN every attempt was made, each after its delay (and no later than the hidings it took allow)
    assert len(receiver.attempts) == len(schedule.delays) + 1
    for delay, (before, after) in zip(schedule.delays, itertools.pairwise(receiver.attempts), strict=True):
        assert delay - 1 <= after - before <= delay + 3 * (lag + 1), (delay, after - before)
    # AND the delivery was dead-lettered after the last, once, with the notifier's webhook-id and body
    (dead,) = sqs.dead_letters
    first = Delivery.of(task_event(finished()))
    last = Delivery.from_message(dead)
    assert (last.webhook_id, last.body, last.attempt or 1) == (first.webhook_id, first.body, len(schedule.delays) + 1)
    # AND no message was received often enough to near the queue's own redrive
    assert max(sqs.receive_counts) <= 3 < QUEUE_MAX_RECEIVE_COUNT


def test_the_default_schedule_spans_more_than_a_day() -> None:
    sqs, receiver = run_until_settled(RetrySchedule.parse(DEFAULT_SCHEDULE), lag=1)

    assert receiver.attempts[-1] - receiver.attempts[0] > 86_400
    assert len(sqs.dead_letters) == 1


def test_a_long_delay_is_a_delayed_message_then_one_hiding_inside_its_receives_window() -> None:
    # GIVEN a delivery that failed once, with 12 hours to wait
    sqs, receiver = run_until_settled(RetrySchedule.parse("43200"), lag=151)

    # THEN the retry came 12 hours later, and the queue was asked for nothing SQS refuses (SqsRefused otherwise)
    assert receiver.attempts[1] - receiver.attempts[0] == pytest.approx(43_200, abs=2 * 152)
    assert len(sqs.dead_letters) == 1
