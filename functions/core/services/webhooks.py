"""Webhooks: which URLs a task may name (checked at submit), and their delivery (the webhook function), signed as
Standard Webhooks specify with the `standardwebhooks` package's own signer.

No server-side request forgery: a URL is checked when it is submitted, but a name can resolve to another address by
the time the task ends (DNS rebinding), so the delivery resolves the name once, refuses when any of its addresses is
not allowed, and connects to the address it checked, while TLS still verifies the certificate for the name (SNI and
hostname check on the name, urllib3's server_hostname and assert_hostname). Redirects are not followed: a redirect
could point anywhere.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import socket
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import urllib3

from core.errors import InvalidInput, MalformedRequest, QueueUnavailable
from core.observability import logger

if TYPE_CHECKING:
    # For annotations only: core.services.tasks imports this module, and must not pull in the store's botocore.
    from core.services.events import TaskEvent

WEBHOOK_HEADER = "Webhook-URL"
MAX_URL_LENGTH = 2048
MIN_PORT, MAX_PORT = 1, 65535
PORT_RANGE = f"must name a port from {MIN_PORT} to {MAX_PORT}, or none"
# A receiver is expected to answer at once (and do its work later): a slow one holds the webhook function.
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
# The longest wait between two attempts: a receiver that is back is tried again within 12 hours.
MAX_RETRY_DELAY_SECONDS = 43_200
# SendMessage hides a new message for at most 15 minutes (DelaySeconds).
MAX_SEND_DELAY_SECONDS = 900
# ChangeMessageVisibility: "the visibility timeout for a message cannot exceed 12 hours from the time of the
# ReceiveMessage request", however often it is extended (Amazon SQS API Reference, ChangeMessageVisibility).
RECEIVE_WINDOW_SECONDS = 43_200
# What may have passed since that receive when the function hides the message: the poller's batching window and the
# invocation (the webhook function's Timeout), within the queue's visibility timeout, after which the receipt is no
# longer the message's. A template test keeps both below this margin.
RECEIVE_LAG_SECONDS = 3_600
# The longest one hiding of a received message may be, inside the 12 hours of the receive it is made in.
MAX_HIDE_SECONDS = RECEIVE_WINDOW_SECONDS - RECEIVE_LAG_SECONDS
# A message received this close to its attempt's due time is attempted at once rather than hidden again.
DUE_TOLERANCE_SECONDS = 1.0
# Below the webhook queue's maxReceiveCount (template.yaml), which only catches a message the function cannot handle.
MAX_RETRIES = 40
# Within the webhook queue's retention (14 days, the most SQS keeps a message), with a day to spare.
MAX_RETRY_SECONDS = 13 * 86_400
# A DNS label: letters, digits, hyphens inside; the name's last label not all digits (an IP in disguise).
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class UrlPolicy(StrEnum):
    # Deployed: https to public addresses only.
    PUBLIC = "public"
    # The local stack: http or https, to loopback addresses only (the receivers of a developer's own machine).
    LOOPBACK = "loopback"


class WebhookRefused(Exception):
    """A URL the policy does not allow: refused at submit (422) or at delivery (dead-lettered, never retried)."""


def address_allowed(address: Address, policy: UrlPolicy) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if policy is UrlPolicy.LOOPBACK:
        return address.is_loopback
    # is_global alone lets through some multicast and reserved ranges; instance metadata (169.254.169.254,
    # fd00:ec2::254) is link-local or private.
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class WebhookTarget(msgspec.Struct, frozen=True):
    url: str
    scheme: str
    host: str
    port: int
    # Path and query, as sent in the request line.
    target: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str, policy: UrlPolicy) -> WebhookTarget:
    """The URL's parts when its form is allowed; WebhookRefused saying why not. Resolves nothing: an IP literal is
    checked here, a name when the delivery connects."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise WebhookRefused("must be ASCII, without spaces or control characters")
    try:
        parts = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError as error:
        raise WebhookRefused(_unparsable(url)) from error
    schemes = ("https",) if policy is UrlPolicy.PUBLIC else ("https", "http")
    if parts.scheme not in schemes:
        raise WebhookRefused(f"must be an {' or '.join(schemes)} URL")
    if parts.auth is not None:
        raise WebhookRefused("must not hold a user name or password")
    if parts.fragment is not None:
        raise WebhookRefused("must not hold a fragment")
    host = (parts.host or "").lower().strip("[]")
    if not host:
        raise WebhookRefused("has no host")
    address = _ip_literal(host)
    if address is None:
        labels = host.removesuffix(".").split(".")
        if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
            raise WebhookRefused("must name its host by a DNS name or an IP address in its usual form")
        if policy is UrlPolicy.PUBLIC and (len(labels) < 2 or labels[-1] in ("localhost", "internal", "local")):
            raise WebhookRefused("must name a public host")
        if policy is UrlPolicy.LOOPBACK and labels != ["localhost"]:
            raise WebhookRefused("must name a loopback address or localhost (loopback addresses only)")
    elif not address_allowed(address, policy):
        raise WebhookRefused(f"names an address that is not allowed ({policy.value} addresses only)")
    # Port 0 would otherwise be taken for "no port" and the delivery sent to 443; urllib3 refuses the rest.
    if parts.port is not None and not MIN_PORT <= parts.port <= MAX_PORT:
        raise WebhookRefused(PORT_RANGE)
    port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    return WebhookTarget(url, str(parts.scheme), host, port, parts.request_uri)


def _unparsable(url: str) -> str:
    """Why urllib3 could not read `url`: its port, when that is what the standard library cannot read either."""
    try:
        port = urllib.parse.urlsplit(url).port
    except ValueError:
        return PORT_RANGE
    return "is not a URL" if port is None or MIN_PORT <= port <= MAX_PORT else PORT_RANGE


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, policy: UrlPolicy) -> str:
    """A URL accepted at submit, or InvalidInput (422) naming the Webhook-URL header."""
    try:
        parse_url(url, policy)
    except WebhookRefused as refused:
        message = f"the webhook URL {refused}"
        raise InvalidInput(
            f"{WEBHOOK_HEADER}: {message}", errors=[{"field": WEBHOOK_HEADER, "message": message, "type": "invalid"}]
        ) from None
    return url


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve_checked(target: WebhookTarget, policy: UrlPolicy, resolver: Resolver) -> str:
    """The one address the delivery connects to: every address the name resolves to must be allowed, else an
    attacker's name that resolves to a public and a private address could be connected to the private one."""
    literal = _ip_literal(target.host)
    try:
        found = [str(literal)] if literal is not None else list(dict.fromkeys(resolver(target.host, target.port)))
    except OSError as error:
        raise DeliveryFailed(f"cannot resolve {target.host}: {type(error).__name__}") from error
    if not found:
        raise DeliveryFailed(f"{target.host} resolves to no address")
    for text in found:
        address = _ip_literal(text.split("%", 1)[0])
        if address is None or not address_allowed(address, policy):
            raise WebhookRefused(f"resolves to an address that is not allowed ({policy.value} addresses only)")
    return found[0].split("%", 1)[0]


class DeliveryFailed(Exception):
    """The receiver could not be reached or did not answer 2xx: tried again later."""


class Delivery(msgspec.Struct, frozen=True, omit_defaults=True):
    """One webhook delivery, as the notifier queues it: the body is fixed once, so every retry sends the same bytes
    under the same webhook-id. Each retry is a new message that carries its attempt's number and due time."""

    webhook_id: str
    task_id: str
    url: str
    body: str
    # None on the notifier's message (and on one queued before retries were messages of their own): its receive
    # count is the attempt.
    attempt: int | None = None
    # When this attempt is due (epoch seconds); None: at once.
    due_at: float | None = None

    @classmethod
    def of(cls, event: TaskEvent) -> Delivery:
        if event.webhook_url is None:
            raise ValueError(f"task {event.task_id} names no webhook")
        return cls(event.webhook_id, event.task_id, event.webhook_url, event.detail_json())

    def to_message(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_message(cls, body: str) -> Delivery:
        try:
            return msgspec.json.decode(body, type=cls)
        except msgspec.DecodeError as error:
            raise MalformedRequest(f"not a webhook delivery: {body[:200]!r}") from error


def signed_headers(secret: str, delivery: Delivery, now: datetime) -> dict[str, str]:
    """Standard Webhooks' headers, signed by the library (the secret with or without its whsec_ prefix)."""
    # Imported here: submit and the notifier import this module for its URL rules and never sign.
    from standardwebhooks import Webhook

    signature = Webhook(secret).sign(delivery.webhook_id, now, delivery.body)
    return {
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "long-running-tasks-webhooks/1",
    }


def post(
    target: WebhookTarget,
    address: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: urllib3.Timeout,
    ca_certs: str | None = None,
) -> int:
    """POST to `address` (checked) as `target` names it; the response's status. No redirect is followed."""
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        # Connects to the checked address; TLS sends and verifies the name (SNI, certificate hostname).
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            # None: the system's trust store (Lambda's runtime has one).
            ca_certs=ca_certs,
            timeout=timeout,
            retries=False,
            maxsize=1,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    with pool:
        try:
            response = pool.urlopen(
                "POST",
                target.target,
                body=body,
                headers={**headers, "host": target.host_header},
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as error:
            # The error's type only: urllib3's message repeats the URL, whose query may hold the caller's token.
            raise DeliveryFailed(f"{type(error).__name__} (connecting to, or reading from, the receiver)") from error
        # The receiver's answer body is of no use: not read beyond a little, so a huge one costs nothing.
        response.read(1024)
        response.release_conn()
        return response.status


class RetrySchedule(msgspec.Struct, frozen=True):
    """Seconds to wait after each failed attempt; after the last, the delivery goes to the dead-letter queue."""

    delays: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        try:
            delays = tuple(int(part) for part in text.split(","))
        except ValueError as error:
            raise ValueError(f"a retry schedule is comma-separated whole seconds, not {text!r}") from error
        if not 0 < len(delays) <= MAX_RETRIES or not all(0 <= d <= MAX_RETRY_DELAY_SECONDS for d in delays):
            raise ValueError(f"1 to {MAX_RETRIES} delays of 0 to {MAX_RETRY_DELAY_SECONDS} seconds, not {text!r}")
        if sum(delays) > MAX_RETRY_SECONDS:
            raise ValueError(f"at most {MAX_RETRY_SECONDS} seconds of retries in all, not {sum(delays)}")
        return cls(delays)

    @property
    def total_seconds(self) -> int:
        return sum(self.delays)

    def delay_after(self, attempt: int) -> int | None:
        """The wait after failed attempt `attempt` (1 for the first); None once every retry has been made."""
        return self.delays[attempt - 1] if 1 <= attempt <= len(self.delays) else None


class RetryQueue(Protocol):
    def send_later(self, body: str, delay_seconds: int) -> None:
        """Queue a new delivery message, hidden for `delay_seconds` (at most MAX_SEND_DELAY_SECONDS);
        QueueUnavailable when it was not taken."""

    def hide(self, receipt_handle: str, seconds: int) -> None:
        """Keep a received message hidden for `seconds` from now (at most MAX_HIDE_SECONDS; QueueUnavailable)."""

    def dead_letter(self, body: str) -> None:
        """Keep a delivery that will not be tried again in the dead-letter queue (QueueUnavailable on failure)."""


class WebhookSender:
    """The webhook function's work: each delivery of a batch POSTed, signed; after a failed attempt the next is a new
    message due after the schedule's next delay, and the delivery is dead-lettered once the schedule is used up.

    A new message per attempt, because SQS cannot hide one message for a day: ChangeMessageVisibility keeps a message
    hidden at most 12 hours from the receive that returned it, and extending does not restart that clock. A new
    message is hidden for up to 15 minutes (DelaySeconds); received before its attempt is due, it is hidden again for
    what is left, at most MAX_HIDE_SECONDS, well inside the 12 hours of that receive. Each message's receive count
    then stays small (below the queue's maxReceiveCount) whatever the schedule."""

    def __init__(
        self,
        secret: Callable[[], str],
        *,
        policy: UrlPolicy,
        schedule: RetrySchedule,
        queue: RetryQueue,
        resolver: Resolver = system_resolver,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: urllib3.Timeout | None = None,
        ca_certs: str | None = None,
    ) -> None:
        # Called at the first delivery: a container that delivers nothing never reads the secret.
        self._secret = secret
        self._policy = policy
        self._schedule = schedule
        self._queue = queue
        self._resolver = resolver
        self._clock = clock
        self._timeout = timeout or urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
        self._ca_certs = ca_certs

    def deliver(self, delivery: Delivery) -> None:
        """One attempt: WebhookRefused (never to be tried again) or DeliveryFailed (to be tried again)."""
        target = parse_url(delivery.url, self._policy)
        address = resolve_checked(target, self._policy, self._resolver)
        headers = signed_headers(self._secret(), delivery, self._clock())
        status = post(target, address, delivery.body.encode(), headers, timeout=self._timeout, ca_certs=self._ca_certs)
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the receiver answered {status}")

    def handle(self, records: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, str]]]:
        failures = [str(r["messageId"]) for r in records if not self._handled(r)]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}

    def _handled(self, record: Mapping[str, Any]) -> bool:
        """Whether the message is done with: delivered, dead-lettered, or followed by its next attempt's message."""
        body = str(record["body"])
        try:
            delivery = Delivery.from_message(body)
        except MalformedRequest:
            logger.error("unreadable webhook delivery; dead-lettered", message_id=record["messageId"])
            return self._dead_lettered(body)
        attempt = delivery.attempt or int(record["attributes"]["ApproximateReceiveCount"])
        log: dict[str, object] = {"task_id": delivery.task_id, "webhook_id": delivery.webhook_id, "attempt": attempt}
        now = self._clock().timestamp()
        if delivery.due_at is not None and delivery.due_at - now > DUE_TOLERANCE_SECONDS:
            return self._hidden_until_due(str(record["receiptHandle"]), delivery.due_at - now, log)
        try:
            self.deliver(delivery)
        except WebhookRefused as refused:
            logger.warning("webhook refused at delivery; dead-lettered", reason=str(refused), extra=log)
            return self._dead_lettered(body)
        except DeliveryFailed as failed:
            delay = self._schedule.delay_after(attempt)
            if delay is None:
                logger.error("webhook not delivered after every retry; dead-lettered", reason=str(failed), extra=log)
                return self._dead_lettered(body)
            logger.warning("webhook not delivered; tried again later", reason=str(failed), retry_in=delay, extra=log)
            following = msgspec.structs.replace(delivery, attempt=attempt + 1, due_at=now + delay)
            try:
                self._queue.send_later(following.to_message(), min(delay, MAX_SEND_DELAY_SECONDS))
            except QueueUnavailable:
                # This message comes back after the queue's visibility timeout, and this attempt is made again.
                logger.exception("could not queue the delivery's next attempt", extra=log)
                return False
            return True
        logger.info("webhook delivered", extra=log)
        return True

    def _hidden_until_due(self, receipt_handle: str, wait: float, log: dict[str, object]) -> bool:
        """A message received before its attempt is due goes back, hidden until then (or as long as one hiding
        may be): reported failed, so that it stays in the queue."""
        try:
            self._queue.hide(receipt_handle, min(math.ceil(wait), MAX_HIDE_SECONDS))
        except QueueUnavailable:
            # It comes back after the queue's visibility timeout instead, and is hidden again then.
            logger.exception("could not hide a delivery until its attempt is due", extra=log)
        return False

    def _dead_lettered(self, body: str) -> bool:
        try:
            self._queue.dead_letter(body)
        except QueueUnavailable:
            logger.exception("could not dead-letter a webhook delivery; SQS will deliver it again")
            return False
        return True


def delivery_messages(events: Sequence[TaskEvent]) -> list[str]:
    return [Delivery.of(event).to_message() for event in events]


def detail_of(delivery: Delivery) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(delivery.body)
    return detail
