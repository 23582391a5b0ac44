"""An SQS event source mapping as Lambda runs it: long-poll, batch, invoke, delete what succeeded.

Messages named in the response's batchItemFailures, and every message of an invocation that raised, are left
alone: they reappear after the queue's visibility timeout, and the queue's redrive policy moves one received
maxReceiveCount times to its dead-letter queue (moto does this on receive, as SQS does). Each source runs in the
function's execution environment (devstack.lambdas.serve_sqs), which ends as Lambda ends one when fault() says so.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.lambdas import LambdaFunction
from devstack.template import REGION

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from devstack.resources import LocalResources
    from devstack.template import FunctionSpec

logger = logging.getLogger(__name__)

LONG_POLL_SECONDS = 1  # short enough that stop() returns promptly; SQS allows up to 20
SQS_MAX_BATCH = 10  # one ReceiveMessage returns at most 10 messages


def _lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    # Lambda's event spells SQS's StringValue/DataType in lower camel case and always has the list keys.
    converted = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = value["BinaryValue"]
        converted[name] = item
    return converted


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str = REGION) -> dict[str, Any]:
    """One record of Lambda's SQS event."""
    attributes = message.get("Attributes", {})
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            key: attributes[key]
            for key in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "SequenceNumber",
                "MessageGroupId",
                "MessageDeduplicationId",
                "AWSTraceHeader",
            )
            if key in attributes
        },
        "messageAttributes": _lambda_message_attributes(dict(message.get("MessageAttributes", {}))),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class SqsEventSource:
    """Pollers feeding `function` from `queue_url`; `concurrency` invocations at most run at once."""

    def __init__(
        self,
        sqs: SQSClient,
        function: LambdaFunction,
        *,
        queue_url: str,
        queue_arn: str,
        batch_size: int = 10,
        batching_window_seconds: float = 0,
        concurrency: int = 2,
        report_batch_item_failures: bool = True,
        drain_seconds: float = 5.0,
    ) -> None:
        self._sqs = sqs
        self._function = function
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._report_failures = report_batch_item_failures
        self._drain_seconds = drain_seconds
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, name=f"{function.spec.name}-poller-{n}", daemon=True)
            for n in range(max(1, concurrency))
        ]
        # When each poller's running invocation started (monotonic seconds), by thread.
        self._started: dict[int, float] = {}

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop polling; wait a little for running invocations (an abandoned batch is delivered again)."""
        self._stopping.set()
        deadline = time.monotonic() + LONG_POLL_SECONDS + self._drain_seconds
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def fault(self) -> str | None:
        """What would make Lambda end this execution environment: an invocation past the function's timeout, or
        a poller that ended (the handler raised SystemExit, say). None while all is well."""
        if self._stopping.is_set():
            return None
        timeout = self._function.spec.timeout
        now = time.monotonic()
        if any(now - started > timeout for started in list(self._started.values())):
            return f"{self._function.spec.name}: Task timed out after {timeout:.2f} seconds"
        if not all(thread.is_alive() for thread in self._threads):
            return f"{self._function.spec.name}: the runtime exited during an invocation"
        return None

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._receive_batch()
                if batch:
                    self._invoke(batch)
            except (BotoCoreError, ClientError):
                if self._stopping.is_set():
                    return
                logger.exception("polling %s failed; retrying", self._queue_url)
                self._stopping.wait(1)

    def _receive(self, count: int, wait_seconds: int) -> list[MessageTypeDef]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(count, SQS_MAX_BATCH),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _receive_batch(self) -> list[MessageTypeDef]:
        """Up to batch_size messages: a long poll, then more until the batch is full or its window closes."""
        batch = self._receive(self._batch_size, LONG_POLL_SECONDS)
        deadline = time.monotonic() + self._window
        while batch and len(batch) < self._batch_size and time.monotonic() < deadline:
            more = self._receive(self._batch_size - len(batch), 0)
            if not more:
                self._stopping.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            batch.extend(more)
        return batch

    def _invoke(self, batch: list[MessageTypeDef]) -> None:
        event = {"Records": [sqs_record(message, self._queue_arn) for message in batch]}
        thread = threading.get_ident()
        self._started[thread] = time.monotonic()
        try:
            response = self._function.invoke(event)
        except Exception:
            logger.exception(
                "%s invocation failed; its %d messages will be delivered again", self._function.spec.name, len(batch)
            )
            return
        finally:
            self._started.pop(thread, None)
        failed = self._failed_ids(response, batch)
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_BATCH):
            chunk = done[start : start + SQS_MAX_BATCH]
            result = self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
            )
            for failure in result.get("Failed", []):
                logger.warning("could not delete a message: %s", failure)

    def _failed_ids(self, response: Any, batch: list[MessageTypeDef]) -> set[str]:
        if not self._report_failures:
            return set()
        every = {m["MessageId"] for m in batch}
        if response is None:
            return set()
        if not isinstance(response, dict) or not isinstance(response.get("batchItemFailures", []), list):
            logger.error("invalid partial batch response; the whole batch fails: %r", response)
            return every
        failed = set()
        for item in response.get("batchItemFailures", []):
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if identifier not in every:
                # Lambda fails the whole batch when an identifier is missing, empty or unknown.
                logger.error("invalid itemIdentifier %r; the whole batch fails", identifier)
                return every
            failed.add(identifier)
        return failed


def start_event_sources(
    functions: Iterable[LambdaFunction], resources: LocalResources, sqs: SQSClient, *, concurrency: int
) -> list[SqsEventSource]:
    """A started SqsEventSource for each enabled SQS event of `functions`, with the template's settings."""
    queues = {queue.arn: queue for queue in resources.of_type("AWS::SQS::Queue")}
    sources = []
    for function in functions:
        for properties in sqs_events(function.spec):
            queue = queues.get(str(properties.get("Queue")))
            if queue is None:
                logger.warning("%s: SQS event on an unknown queue %s", function.spec.name, properties.get("Queue"))
                continue
            source = SqsEventSource(
                sqs,
                function,
                queue_url=queue.ref,
                queue_arn=queue.arn,
                batch_size=int(properties.get("BatchSize", 10)),
                batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
                concurrency=concurrency,
                report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            )
            source.start()
            sources.append(source)
    return sources


def sqs_events(spec: FunctionSpec) -> list[dict[str, Any]]:
    """The properties of the function's enabled SQS events."""
    return [event for event in spec.sqs_events() if event.get("Enabled", True) not in (False, "false")]
