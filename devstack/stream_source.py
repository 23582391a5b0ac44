"""A DynamoDB stream event source mapping as Lambda runs it, for the local stack: read the table's stream in order,
drop the records the mapping's FilterCriteria do not match, invoke the function with batches, and go on from the
first record a partial batch response names (ReportBatchItemFailures), up to MaximumRetryAttempts, after which the
batch's range goes to the on-failure destination (an SQS queue) and the stream moves on.

Simplified against Lambda, and said so here: one shard at a time, read from the template's StartingPosition when the
environment starts (a restarted environment starts there again); BisectBatchOnFunctionError is not emulated (a
failing batch is retried whole); filters support what the template uses: nested objects and lists of exact values
(AWS's documented semantics: every key of a pattern must match, any value of a list may; a record matches when any
filter of the list does), and refuse content filters (prefix, exists, numeric, ...) rather than misread them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from devstack.lambdas import LambdaFunction
from devstack.template import REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

    from devstack.resources import LocalResources
    from devstack.template import FunctionSpec

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how often an idle stream is read again (Lambda reads each shard about 4 times a second)
RETRY_SECONDS = 0.5


def matches(pattern: Any, value: Any) -> bool:
    """Whether `value` (a stream record, or a part of it) matches an event filter pattern (or a part of it)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(sub, value[key]) for key, sub in pattern.items()
        )
    if isinstance(pattern, list):
        if any(isinstance(rule, dict) for rule in pattern):
            raise NotImplementedError(f"content filters are not emulated: {pattern!r}")
        values = value if isinstance(value, list) else [value]
        return any(item in pattern for item in values)
    raise ValueError(f"a filter pattern holds objects and lists, not {pattern!r}")


def passes(filters: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    patterns = [json.loads(str(item["Pattern"])) for item in filters]
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One record of Lambda's DynamoDB event, from one of GetRecords' (its time as epoch seconds)."""
    images = dict(record["dynamodb"])
    created = images.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        images["ApproximateCreationDateTime"] = float(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", REGION),
        "dynamodb": images,
        "eventSourceARN": stream_arn,
    }


class StreamEventSource:
    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        function: LambdaFunction,
        *,
        stream_arn: str,
        properties: Mapping[str, Any],
        sqs: SQSClient | None = None,
        on_failure_url: str | None = None,
    ) -> None:
        self._streams = streams
        self._function = function
        self._stream_arn = stream_arn
        self._batch_size = int(properties.get("BatchSize", 100))
        self._window = float(properties.get("MaximumBatchingWindowInSeconds", 0))
        self._filters = list(properties.get("FilterCriteria", {}).get("Filters", []))
        self._report_failures = "ReportBatchItemFailures" in properties.get("FunctionResponseTypes", [])
        # -1 (Lambda's default): until the record expires; here, for ever.
        self._max_retries = int(properties.get("MaximumRetryAttempts", -1))
        self._starting_position = str(properties.get("StartingPosition", "LATEST"))
        self._sqs = sqs
        self._on_failure_url = on_failure_url
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{function.spec.name}-stream", daemon=True)
        self._started: float | None = None

    def start(self) -> None:
        # The iterator is taken before the environment says it is ready: no write after that is missed.
        self._iterator: str | None = self._first_iterator()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def fault(self) -> str | None:
        if self._stopping.is_set():
            return None
        started = self._started
        if started is not None and time.monotonic() - started > self._function.spec.timeout:
            return f"{self._function.spec.name}: Task timed out after {self._function.spec.timeout:.2f} seconds"
        if not self._thread.is_alive():
            return f"{self._function.spec.name}: the runtime exited during an invocation"
        return None

    def _first_iterator(self) -> str:
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        # moto's table stream has one shard, which never splits.
        shard_id = shards[-1]["ShardId"]
        kind: Literal["TRIM_HORIZON", "LATEST"] = (
            "TRIM_HORIZON" if self._starting_position == "TRIM_HORIZON" else "LATEST"
        )
        return self._streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType=kind)[
            "ShardIterator"
        ]

    def _read(self) -> list[dict[str, Any]]:
        if self._iterator is None:
            return []
        response = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = response.get("NextShardIterator")
        return [lambda_record(record, self._stream_arn) for record in response.get("Records", [])]

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        opened: float | None = None
        while not self._stopping.is_set():
            try:
                pending.extend(record for record in self._read() if passes(self._filters, record))
            except (BotoCoreError, ClientError):
                logger.exception("reading the stream %s failed; reading again", self._stream_arn)
                self._stopping.wait(1)
                continue
            if pending and opened is None:
                opened = time.monotonic()
            window_closed = opened is not None and time.monotonic() - opened >= self._window
            if pending and (len(pending) >= self._batch_size or window_closed):
                batch, pending = pending[: self._batch_size], pending[self._batch_size :]
                self._deliver(batch)
                opened = time.monotonic() if pending else None
                continue
            self._stopping.wait(POLL_SECONDS)

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Invoke until the batch is done with: retried from its first failed record, up to the retry limit."""
        retries = 0
        while batch and not self._stopping.is_set():
            failed_from = self._invoke(batch)
            if failed_from is None:
                return
            batch = batch[failed_from:]
            if 0 <= self._max_retries <= retries:
                self._give_up(batch)
                return
            retries += 1
            self._stopping.wait(RETRY_SECONDS)

    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """Where the batch must be retried from; None when it succeeded."""
        self._started = time.monotonic()
        try:
            response = self._function.invoke({"Records": batch})
        except Exception:
            logger.exception("%s failed on %d stream records; retrying", self._function.spec.name, len(batch))
            return 0
        finally:
            self._started = None
        if not self._report_failures or not isinstance(response, dict):
            return None
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        failed = [item.get("itemIdentifier") for item in response.get("batchItemFailures", [])]
        if not failed:
            return None
        if not all(identifier in sequence_numbers for identifier in failed):
            logger.error("invalid itemIdentifier in %r; the whole batch is retried", failed)
            return 0
        return min(sequence_numbers.index(identifier) for identifier in failed)

    def _give_up(self, batch: list[dict[str, Any]]) -> None:
        """As Lambda's on-failure destination gets it: the batch's range on the stream, not the records."""
        first, last = batch[0]["dynamodb"]["SequenceNumber"], batch[-1]["dynamodb"]["SequenceNumber"]
        logger.error("%s: %d stream records failed every retry; skipped", self._function.spec.name, len(batch))
        if self._sqs is None or self._on_failure_url is None:
            return
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self._function.spec.name},
            "DDBStreamBatchInfo": {
                "streamArn": self._stream_arn,
                "startSequenceNumber": first,
                "endSequenceNumber": last,
                "batchSize": len(batch),
            },
        }
        self._sqs.send_message(QueueUrl=self._on_failure_url, MessageBody=json.dumps(body))


def stream_events(spec: FunctionSpec) -> list[dict[str, Any]]:
    """The properties of the function's enabled DynamoDB stream events."""
    return [
        event["Properties"]
        for event in spec.events.values()
        if event.get("Type") == "DynamoDB" and event["Properties"].get("Enabled", True) not in (False, "false")
    ]


def _stream_arn(stream: Any, resources: LocalResources, dynamodb: DynamoDBClient) -> str:
    """The stream's ARN: as the template resolved it, or (Fn::GetAtt Table.StreamArn, which the local translator
    leaves as it is) the table's latest stream."""
    if isinstance(stream, str):
        return stream
    table = resources[stream["Fn::GetAtt"][0]].name
    return dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]


def start_stream_sources(
    function: LambdaFunction,
    resources: LocalResources,
    *,
    streams: DynamoDBStreamsClient,
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
) -> list[StreamEventSource]:
    queues = {queue.arn: queue.ref for queue in resources.of_type("AWS::SQS::Queue")}
    sources = []
    for properties in stream_events(function.spec):
        destination = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        source = StreamEventSource(
            streams,
            function,
            stream_arn=_stream_arn(properties["Stream"], resources, dynamodb),
            properties=properties,
            sqs=sqs,
            on_failure_url=queues.get(str(destination)) if destination else None,
        )
        source.start()
        sources.append(source)
    return sources
