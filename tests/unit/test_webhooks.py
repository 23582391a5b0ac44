"""Webhooks: which URLs are refused (at submit and at delivery), how a delivery is signed and retried.

No test here may send anything to an address other than 127.0.0.1: every name resolves through a stub, and the
`no_connections_but_loopback` guard fails a test that opens a connection anywhere else (before it is made)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trustme
from standardwebhooks import Webhook

from core.domain.records import TaskRecord, TaskStatus
from core.errors import InvalidInput
from core.services.events import task_event
from core.services.webhooks import (
    MAX_URL_LENGTH,
    Delivery,
    DeliveryFailed,
    RetrySchedule,
    UrlPolicy,
    WebhookRefused,
    WebhookSender,
    check_url,
    parse_url,
    resolve_checked,
    signed_headers,
)
from tests.support.receivers import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_796_400_000.0


@pytest.fixture(autouse=True)
def no_connections_but_loopback(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every socket connection of a test, made only when it is to 127.0.0.1; any other fails the test unmade."""
    attempted: list[Any] = []
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        attempted.append(address)
        host = address[0] if isinstance(address, tuple) else address
        if host != "127.0.0.1":
            pytest.fail(f"a test tried to connect to {address!r}")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    resolve = socket.getaddrinfo

    def no_lookups(host: Any, *args: Any, **kwargs: Any) -> Any:
        # Not even a DNS query leaves this machine: names resolve through the tests' stubs.
        if host not in ("127.0.0.1", "localhost", None):
            pytest.fail(f"a test tried to resolve {host!r}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_lookups)
    return attempted


def resolving_to(*addresses: str) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


def finished(**changes: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "task_id": "2f1c1c4e-8d3c-4b7e-9a55-0d6f1c3a9b11",
        "task": "multiply",
        "status": TaskStatus.SUCCEEDED,
        "input_json": '{"x":2,"y":3}',
        "created_at": NOW,
        "expires_at": int(NOW) + 86_400,
        "owner": "alice",
        "started_at": NOW + 1,
        "finished_at": NOW + 2,
        "result_json": "6",
        "webhook_url": "https://hooks.example.com/tasks",
    }
    return TaskRecord(**(values | changes))


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[Delivery, int]] = []
        self.hidden: list[tuple[str, int]] = []
        self.dead_letters: list[str] = []

    def send_later(self, body: str, delay_seconds: int) -> None:
        self.sent.append((Delivery.from_message(body), delay_seconds))

    def hide(self, receipt_handle: str, seconds: int) -> None:
        self.hidden.append((receipt_handle, seconds))

    def dead_letter(self, body: str) -> None:
        self.dead_letters.append(body)


def sqs_record(delivery: Delivery, attempt: int) -> dict[str, Any]:
    return {
        "messageId": f"m{attempt}",
        "receiptHandle": f"r{attempt}",
        "body": delivery.to_message(),
        "attributes": {"ApproximateReceiveCount": str(attempt)},
    }


# ---- URLs refused at submit


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https"),
        ("ftp://hooks.example.com/x", "https"),
        ("https://user:pass@hooks.example.com/x", "user name"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com/" + "a" * MAX_URL_LENGTH, "longer"),
        ("https://10.0.0.1/x", "not allowed"),
        ("https://169.254.169.254/latest/meta-data/", "not allowed"),
        ("https://127.0.0.1/x", "not allowed"),
        ("https://[::1]/x", "not allowed"),
        ("https://[::ffff:10.0.0.1]/x", "not allowed"),
        ("https://[fd00:ec2::254]/x", "not allowed"),
        ("https://224.0.0.1/x", "not allowed"),
        ("https://0.0.0.0/x", "not allowed"),
        ("https://100.64.0.1/x", "not allowed"),
        ("https://2130706433/x", "usual form"),
        ("https://0x7f.0.0.1/x", "usual form"),
        ("https://localhost/x", "public host"),
        ("https://metadata.google.internal/x", "public host"),
        ("https://hooks.example.com /x", "spaces"),
        ("https://hööks.example.com/x", "ASCII"),
        ("https:///x", "host"),
        # Port 0 once passed as "no port", and the delivery went to 443.
        ("https://hooks.example.com:0/x", "port from 1 to 65535"),
        ("https://93.184.216.34:0/x", "port from 1 to 65535"),
        ("https://hooks.example.com:65536/x", "port from 1 to 65535"),
        ("https://hooks.example.com:99999999999/x", "port from 1 to 65535"),
        ("https://hooks.example.com:-1/x", "port from 1 to 65535"),
        ("https://hooks.example.com:https/x", "port from 1 to 65535"),
        ("https://hooks.example.com:44a/x", "port from 1 to 65535"),
    ],
)
def test_check_url_refuses_what_the_public_policy_does_not_allow(url: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_url(url, UrlPolicy.PUBLIC)

    assert why in str(refused.value.detail)
    assert refused.value.extra["errors"][0]["field"] == "Webhook-URL"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/tasks?key=1",
        "https://hooks.example.com:8443/x",
        "https://hooks.example.com:1/x",
        "https://hooks.example.com:65535/x",
        "https://93.184.216.34/x",
    ],
)
def test_check_url_accepts_public_https_urls(url: str) -> None:
    assert check_url(url, UrlPolicy.PUBLIC) == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://127.0.0.1/hook", "http://localhost:9/x"])
def test_check_url_under_the_loopback_policy_accepts_this_machine(url: str) -> None:
    assert check_url(url, UrlPolicy.LOOPBACK) == url


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/x", "https://hooks.example.com/x", "http://169.254.169.254/", "http://[::2]/"]
)
def test_check_url_under_the_loopback_policy_refuses_everything_else(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, UrlPolicy.LOOPBACK)


# ---- addresses refused at delivery, without a connection


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.1",),
        ("169.254.169.254",),
        ("::1",),
        ("127.0.0.1",),
        ("::ffff:192.168.1.1",),
        ("fd00:ec2::254",),
        # One public address beside a private one: the name is refused, whichever would have been connected to.
        ("93.184.216.34", "10.0.0.1"),
    ],
)
def test_a_name_that_resolves_to_a_forbidden_address_is_refused_without_a_connection(
    addresses: tuple[str, ...], no_connections_but_loopback: list[Any]
) -> None:
    queue = FakeQueue()
    sender = WebhookSender(
        lambda: SECRET,
        policy=UrlPolicy.PUBLIC,
        schedule=RetrySchedule.parse("1,2"),
        queue=queue,
        resolver=resolving_to(*addresses),
    )
    delivery = Delivery.of(task_event(finished()))

    with pytest.raises(WebhookRefused):
        sender.deliver(delivery)
    response = sender.handle([sqs_record(delivery, 1)])

    assert no_connections_but_loopback == []
    # Refused for good: dead-lettered at once, never retried.
    assert response == {"batchItemFailures": []}
    assert queue.dead_letters == [delivery.to_message()]
    assert queue.sent == []


def test_resolve_checked_connects_to_the_address_it_checked() -> None:
    target = parse_url("https://hooks.example.com/x", UrlPolicy.PUBLIC)

    assert resolve_checked(target, UrlPolicy.PUBLIC, resolving_to("93.184.216.34", "2606:2800:220:1::1")) == (
        "93.184.216.34"
    )


def test_a_name_that_does_not_resolve_is_a_failure_tried_again() -> None:
    def unresolvable(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    target = parse_url("https://hooks.example.com/x", UrlPolicy.PUBLIC)

    with pytest.raises(DeliveryFailed):
        resolve_checked(target, UrlPolicy.PUBLIC, unresolvable)


# ---- signing, verified with the library's own verifier


def test_signed_headers_verify_with_standardwebhooks_with_or_without_the_prefix() -> None:
    delivery = Delivery.of(task_event(finished()))
    now = datetime.now(UTC)

    for secret in (SECRET, SECRET.removeprefix("whsec_")):
        headers = signed_headers(secret, delivery, now)
        assert Webhook(SECRET).verify(delivery.body, headers) == json.loads(delivery.body)
    assert headers["webhook-id"] == f"msg_{delivery.task_id}_succeeded"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))


class Clock:
    """A clock the test moves: the sender reads it for signing and for when an attempt is due."""

    def __init__(self, start: float | None = None) -> None:
        # Now by default: the receivers verify the signatures' timestamps against their own clock.
        self.now = float(int(time.time())) if start is None else start

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def loopback_sender(queue: FakeQueue, **options: Any) -> WebhookSender:
    return WebhookSender(
        lambda: SECRET,
        policy=UrlPolicy.LOOPBACK,
        schedule=RetrySchedule.parse("30,120"),
        queue=queue,
        resolver=resolving_to("127.0.0.1"),
        **options,
    )


def test_a_delivery_is_posted_signed_and_a_500_is_retried_under_the_same_webhook_id(
    receiver_factory: Callable[..., Receiver],
) -> None:
    receiver = receiver_factory(statuses=[500])
    queue, clock = FakeQueue(), Clock()
    started = clock.now
    sender = loopback_sender(queue, clock=clock)
    delivery = Delivery.of(task_event(finished(webhook_url=f"http://127.0.0.1:{receiver.port}/hooks?x=1")))

    first = sender.handle([sqs_record(delivery, 1)])
    ((retry, delay),) = queue.sent
    clock.advance(delay)
    second = sender.handle([sqs_record(retry, 1)])

    # The first message is done with: the second attempt is a message of its own, due after the schedule's first delay
    assert first == {"batchItemFailures": []}
    assert (retry.attempt, retry.due_at, delay) == (2, started + 30, 30)
    assert msgspec.structs.replace(retry, attempt=None, due_at=None) == delivery
    assert second == {"batchItemFailures": []}
    (headers_1, body_1), (headers_2, body_2) = receiver.requests
    assert headers_1["webhook-id"] == headers_2["webhook-id"] == f"msg_{delivery.task_id}_succeeded"
    assert body_1 == body_2
    detail = Webhook(SECRET).verify(body_2, headers_2)
    assert (detail["status"], detail["result"], detail["task_id"]) == ("succeeded", 6, delivery.task_id)
    assert headers_2["host"] == f"127.0.0.1:{receiver.port}"


def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    receiver_factory: Callable[..., Receiver], no_connections_but_loopback: list[Any]
) -> None:
    receiver = receiver_factory(statuses=[302])
    queue = FakeQueue()
    delivery = Delivery.of(task_event(finished(webhook_url=f"http://127.0.0.1:{receiver.port}/hook")))

    response = loopback_sender(queue).handle([sqs_record(delivery, 1)])

    assert response == {"batchItemFailures": []}
    assert [(sent.attempt, delay) for sent, delay in queue.sent] == [(2, 30)]  # tried again, as any failure
    assert len(receiver.requests) == 1
    assert all(address[0] == "127.0.0.1" for address in no_connections_but_loopback)


def test_after_the_last_retry_a_delivery_is_dead_lettered(receiver_factory: Callable[..., Receiver]) -> None:
    receiver = receiver_factory(statuses=[503, 503, 503])
    queue, clock = FakeQueue(), Clock()
    sender = loopback_sender(queue, clock=clock)
    delivery = Delivery.of(task_event(finished(webhook_url=f"http://127.0.0.1:{receiver.port}/hook")))

    responses = [sender.handle([sqs_record(delivery, 1)])]
    for _ in range(2):
        retry, delay = queue.sent[-1]
        clock.advance(delay)
        responses.append(sender.handle([sqs_record(retry, 1)]))

    assert [len(r["batchItemFailures"]) for r in responses] == [0, 0, 0]
    assert [(sent.attempt, delay) for sent, delay in queue.sent] == [(2, 30), (3, 120)]
    (dead,) = queue.dead_letters
    assert Delivery.from_message(dead).attempt == 3
    assert len(receiver.requests) == 3


def _tls_receiver(
    receiver_factory: Callable[..., Receiver], tmp_path: Path, *, certificate_for: str
) -> tuple[Receiver, str]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names `certificate_for`, and the file of the test CA that
    signed it (for the sender to trust)."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(certificate_for).configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return receiver_factory(tls=server_context), str(ca_file)


def test_https_connects_to_the_checked_address_and_verifies_the_certificate_for_the_name(
    receiver_factory: Callable[..., Receiver], tmp_path: Path
) -> None:
    receiver, ca_file = _tls_receiver(receiver_factory, tmp_path, certificate_for="localhost")
    sender = loopback_sender(FakeQueue(), ca_certs=ca_file)
    delivery = Delivery.of(task_event(finished(webhook_url=f"https://localhost:{receiver.port}/hook")))

    assert sender.handle([sqs_record(delivery, 1)]) == {"batchItemFailures": []}
    ((headers, body),) = receiver.requests
    assert headers["host"] == f"localhost:{receiver.port}"
    assert Webhook(SECRET).verify(body, headers)["task_id"] == delivery.task_id


def test_https_refuses_a_certificate_for_another_name(
    receiver_factory: Callable[..., Receiver], tmp_path: Path
) -> None:
    receiver, ca_file = _tls_receiver(receiver_factory, tmp_path, certificate_for="other.example")
    sender = loopback_sender(FakeQueue(), ca_certs=ca_file)

    with pytest.raises(DeliveryFailed):
        sender.deliver(Delivery.of(task_event(finished(webhook_url=f"https://localhost:{receiver.port}/hook"))))
    assert receiver.requests == []


# ---- the retry schedule


def test_retry_schedule_gives_each_attempts_delay_then_none() -> None:
    schedule = RetrySchedule.parse("30,120,600")

    assert [schedule.delay_after(attempt) for attempt in (1, 2, 3, 4)] == [30, 120, 600, None]
    assert schedule.total_seconds == 750


@pytest.mark.parametrize("text", ["", "1,,2", "a", "-1", "43201", ",".join(["1"] * 41), ",".join(["43200"] * 27)])
def test_retry_schedule_refuses_what_sqs_cannot_do(text: str) -> None:
    with pytest.raises(ValueError, match="seconds"):
        RetrySchedule.parse(text)


def test_a_delivery_message_round_trips_and_keeps_its_body_byte_for_byte() -> None:
    delivery = Delivery.of(task_event(finished()))

    assert Delivery.from_message(delivery.to_message()) == delivery
    assert delivery.body == task_event(finished()).detail_json()


@pytest.mark.parametrize(
    ("url", "port"), [("https://hooks.example.com:8443/x", 8443), ("https://hooks.example.com:/x", 443)]
)
def test_parse_url_delivers_to_the_port_named_or_the_schemes_own(url: str, port: int) -> None:
    assert parse_url(url, UrlPolicy.PUBLIC).port == port
