"""The template's SQS queues on moto's SQS, and the SQS event source: for each function `Events`
entry of `Type: SQS`, pollers long-poll the queue, invoke the function with the event Lambda
sends, delete what succeeded and leave the rest for redelivery after the visibility timeout.

`!Ref Queue` resolves to the queue's URL on the embedded endpoint (known once the queue exists),
`!GetAtt Queue.Arn` and `.QueueName` to what AWS gives, before anything starts.

Where this differs from AWS's event source mappings: docs/local-stack.md, "Amazon Translate and
the SQS event source"."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local_stack.errors import TemplateError
from local_stack.intrinsics import ACCOUNT_ID, REGION, Resolver

if TYPE_CHECKING:
    from local_stack.functions import Functions
    from local_stack.template import StackTemplate

logger = logging.getLogger(__name__)

SQS_QUEUE = "AWS::SQS::Queue"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
# Lambda starts five pollers per mapping; a machine shared by everything runs at most as many
# as a function has execution environments (local_stack/functions.py, MAX_WORKERS_PER_FUNCTION).
DEFAULT_CONCURRENCY = 5
MAX_CONCURRENCY = 10
LONG_POLL_SECONDS = 20
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30
RECEIVE_MAX = 10  # ReceiveMessage's own limit per call
RETRY_PAUSE_SECONDS = 1.0
STOP_GRACE_SECONDS = 60.0
# Queue properties that are queue attributes, as CreateQueue takes them.
_ATTRIBUTE_PROPERTIES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "SqsManagedSseEnabled",
)
_JSON_ATTRIBUTE_PROPERTIES = ("RedrivePolicy", "RedriveAllowPolicy")


# ---------------------------------------------------------------- the template's queues


def queue_name(logical_id: str, properties: Mapping[str, Any], resolver: Resolver) -> str:
    """QueueName, or the logical id (CloudFormation would add the stack's name and a suffix);
    a FIFO queue's name ends in .fifo either way."""
    name = resolver.resolve(properties.get("QueueName"))
    if isinstance(name, str) and name:
        return name
    fifo = resolver.resolve(properties.get("FifoQueue")) in (True, "true", "True")
    return f"{logical_id}.fifo" if fifo else logical_id


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def queue_attribute(resolver: Resolver, logical_id: str, resource: Mapping[str, Any], attribute: str) -> str:
    """Fn::GetAtt on an AWS::SQS::Queue."""
    name = queue_name(logical_id, resource.get("Properties") or {}, resolver)
    if attribute == "Arn":
        return queue_arn(name)
    if attribute == "QueueName":
        return name
    if attribute == "QueueUrl":
        return str(resolver.ref(logical_id))
    raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: a queue has Arn, QueueName and QueueUrl")


@dataclass(frozen=True)
class QueueDefinition:
    logical_id: str
    name: str
    attributes: Mapping[str, str]
    # Set once every queue exists: a redrive policy names its dead-letter queue.
    redrive_attributes: Mapping[str, str]

    @property
    def arn(self) -> str:
        return queue_arn(self.name)

    @property
    def fifo(self) -> bool:
        return self.attributes.get("FifoQueue") == "true"


@dataclass(frozen=True)
class SqsEventSource:
    function_id: str
    event_name: str
    queue: QueueDefinition
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool
    concurrency: int

    def describe(self) -> str:
        return f"{self.function_id} from queue {self.queue.name} ({self.event_name}, batches of {self.batch_size})"


@dataclass(frozen=True)
class QueueSetup:
    queues: Mapping[str, QueueDefinition]
    sources: tuple[SqsEventSource, ...]


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _queue(logical_id: str, resource: Mapping[str, Any], resolver: Resolver) -> QueueDefinition:
    properties = resolver.resolve(resource.get("Properties") or {})
    attributes = {key: _attribute_text(properties[key]) for key in _ATTRIBUTE_PROPERTIES if key in properties}
    if attributes.get("FifoQueue") == "false":
        del attributes["FifoQueue"]  # SQS refuses FifoQueue=false on CreateQueue
    redrive = {
        key: properties[key] if isinstance(properties[key], str) else json.dumps(properties[key])
        for key in _JSON_ATTRIBUTE_PROPERTIES
        if key in properties
    }
    return QueueDefinition(
        logical_id=logical_id,
        name=queue_name(logical_id, resource.get("Properties") or {}, resolver),
        attributes=attributes,
        redrive_attributes=redrive,
    )


def _whole_number(where: str, name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not str(value).isdigit() or not low <= int(value) <= high:
        raise TemplateError(f"{where}: {name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _source(
    function_id: str,
    event_name: str,
    properties: Mapping[str, Any],
    raw_queue: Any,
    queues: Mapping[str, QueueDefinition],
) -> SqsEventSource:
    where = f"function {function_id}, event {event_name}"
    queue = _queue_of(where, raw_queue, properties.get("Queue"), queues)
    high = 10 if queue.fifo else 10_000
    batch_size = _whole_number(where, "BatchSize", properties.get("BatchSize", 10), 1, high)
    window = _whole_number(
        where, "MaximumBatchingWindowInSeconds", properties.get("MaximumBatchingWindowInSeconds", 0), 0, 300
    )
    if batch_size > 10 and window == 0:
        raise TemplateError(f"{where}: a BatchSize over 10 needs MaximumBatchingWindowInSeconds of 1 or more")
    response_types = properties.get("FunctionResponseTypes") or []
    if not isinstance(response_types, list) or set(response_types) - {"ReportBatchItemFailures"}:
        raise TemplateError(f"{where}: FunctionResponseTypes can only be [ReportBatchItemFailures]")
    scaling = properties.get("ScalingConfig") or {}
    concurrency = DEFAULT_CONCURRENCY
    if "MaximumConcurrency" in scaling:
        concurrency = _whole_number(where, "ScalingConfig.MaximumConcurrency", scaling["MaximumConcurrency"], 2, 1000)
    if queue.fifo and window:
        logger.warning("%s: MaximumBatchingWindowInSeconds is not applied to a FIFO queue locally", where)
    if properties.get("FilterCriteria"):
        logger.warning("%s: FilterCriteria is not applied locally; every message reaches the function", where)
    return SqsEventSource(
        function_id=function_id,
        event_name=event_name,
        queue=queue,
        batch_size=batch_size,
        batching_window_seconds=float(window),
        report_batch_item_failures="ReportBatchItemFailures" in response_types,
        concurrency=min(concurrency, MAX_CONCURRENCY),
    )


def _queue_of(where: str, raw: Any, resolved: Any, queues: Mapping[str, QueueDefinition]) -> QueueDefinition:
    by_arn = {queue.arn: queue for queue in queues.values()}
    if isinstance(resolved, str) and resolved in by_arn:
        return by_arn[resolved]
    raise TemplateError(
        f"{where}: Queue {raw!r} is not the Arn of an AWS::SQS::Queue of this template "
        "(the local stack polls only queues it creates)"
    )


def _check_visibility_timeout(source: SqsEventSource, function_timeout_seconds: float) -> None:
    """Lambda refuses the mapping otherwise: a batch still running would be handed out again."""
    visibility = float(source.queue.attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT_SECONDS))
    if visibility < function_timeout_seconds:
        raise TemplateError(
            f"function {source.function_id}, event {source.event_name}: queue {source.queue.logical_id}'s "
            f"VisibilityTimeout ({visibility:g} s) is less than the function's Timeout ({function_timeout_seconds:g} s)"
        )


def discover(template: StackTemplate) -> QueueSetup:
    """The template's active queues and the SQS events of its functions."""
    resolver = template.resolver
    resources = resolver.resources
    queues = {
        logical_id: _queue(logical_id, resource, resolver)
        for logical_id, resource in resources.items()
        if resource.get("Type") == SQS_QUEUE and resolver.resource_is_active(logical_id)
    }
    sources = []
    for function_id in template.functions:
        events = (resources[function_id].get("Properties") or {}).get("Events") or {}
        for event_name, event in events.items():
            if event.get("Type") != "SQS":
                continue
            raw_properties = event.get("Properties") or {}
            properties = resolver.resolve(raw_properties)
            if properties.get("Enabled") is False:
                continue
            source = _source(function_id, event_name, properties, raw_properties.get("Queue"), queues)
            _check_visibility_timeout(source, template.functions[function_id].timeout_seconds)
            sources.append(source)
    return QueueSetup(queues=queues, sources=tuple(sources))


def create_queues(sqs: Any, setup: QueueSetup, resolver: Resolver) -> dict[str, str]:
    """Creates every queue on moto, then their redrive policies; `!Ref` gives the URLs from here."""
    urls = {}
    for queue in setup.queues.values():
        urls[queue.logical_id] = sqs.create_queue(QueueName=queue.name, Attributes=dict(queue.attributes))["QueueUrl"]
    for queue in setup.queues.values():
        if queue.redrive_attributes:
            sqs.set_queue_attributes(QueueUrl=urls[queue.logical_id], Attributes=dict(queue.redrive_attributes))
    resolver.physical_ids.update(urls)
    return urls


def record_existing_queues(setup: QueueSetup, resolver: Resolver, moto_endpoint: str) -> None:
    """A running stack made the queues (`make invoke` beside `make run`): their URLs, as moto
    names them."""
    for queue in setup.queues.values():
        resolver.physical_ids[queue.logical_id] = f"{moto_endpoint}/{ACCOUNT_ID}/{queue.name}"


# ---------------------------------------------------------------- the event


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [base64.b64encode(item).decode() for item in value.get("BinaryListValues") or []],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def sqs_record(message: Mapping[str, Any], queue_arn_text: str) -> dict[str, Any]:
    """One record of the event Lambda sends, from a ReceiveMessage message (boto3's shape)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn_text,
        "awsRegion": REGION,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(response: Any, batch_ids: Sequence[str]) -> set[str]:
    """The messages to leave for redelivery, per a ReportBatchItemFailures response: none for an
    empty or null answer, the named ones, or all of them when an identifier is missing, empty
    or not in the batch (Lambda's rule)."""
    if response is None or response == {} or response == "":
        return set()
    if not isinstance(response, Mapping):
        return set(batch_ids)
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    named = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return set(batch_ids)
        named.add(identifier)
    return named


# ---------------------------------------------------------------- polling


def _in_daemon_thread(call: Callable[[], Any]) -> asyncio.Future[Any]:
    """A blocking call as an awaitable on a daemon thread: a long poll left behind at shutdown
    holds up neither the loop's executor nor the interpreter's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = call(), None
        except BaseException as raised:  # handed to the awaiting task
            result, error = None, raised
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="sqs-poll", daemon=True).start()
    return future


class SqsEventSources:
    """Every SQS event source of the template, polling while the stack runs."""

    def __init__(
        self,
        functions: Functions,
        sources: Sequence[SqsEventSource],
        queue_urls: Mapping[str, str],
        sqs_client: Callable[[], Any],
    ) -> None:
        self._functions = functions
        self._sources = tuple(sources)
        self._urls = dict(queue_urls)
        self._sqs_client = sqs_client
        self._receiving: set[asyncio.Task[Any]] = set()
        self._pollers: list[asyncio.Task[Any]] = []
        self._stopping = False

    def describe(self) -> list[str]:
        return [source.describe() for source in self._sources]

    def start(self) -> None:
        for source in self._sources:
            if source.queue.fifo:
                name = f"sqs-{source.function_id}-{source.event_name}"
                self._pollers.append(asyncio.create_task(self._poll_fifo(source), name=name))
                continue
            for index in range(source.concurrency):
                name = f"sqs-{source.function_id}-{source.event_name}-{index}"
                self._pollers.append(asyncio.create_task(self._poll(source), name=name))

    async def _poll_fifo(self, source: SqsEventSource) -> None:
        """One receiver per FIFO queue, up to `concurrency` batches in flight: SQS holds back a
        group while a batch of it is in flight, but moto decides that from the moment a receive
        began, so concurrent long polls (or one begun before a batch finished) could hand out a
        group's next message early. Receives are long only while nothing is in flight."""
        sqs = self._sqs_client()
        url = self._urls[source.queue.logical_id]
        task = asyncio.current_task()
        assert task is not None
        slots = asyncio.Semaphore(source.concurrency)
        finished = asyncio.Event()
        in_flight: set[asyncio.Task[Any]] = set()

        def done(batch: asyncio.Task[Any]) -> None:
            in_flight.discard(batch)
            slots.release()
            finished.set()

        try:
            while not self._stopping:
                await slots.acquire()
                finished.clear()
                wait_seconds = 0 if in_flight else LONG_POLL_SECONDS
                self._receiving.add(task)
                try:
                    answer = await _in_daemon_thread(
                        lambda wait_seconds=wait_seconds: sqs.receive_message(
                            QueueUrl=url,
                            MaxNumberOfMessages=min(RECEIVE_MAX, source.batch_size),
                            WaitTimeSeconds=wait_seconds,
                            AttributeNames=["All"],
                            MessageSystemAttributeNames=["All"],
                            MessageAttributeNames=["All"],
                        )
                    )
                except asyncio.CancelledError:
                    return
                except Exception as error:  # moto unreachable or the queue gone: try again
                    slots.release()
                    if not self._stopping:
                        logger.warning("SQS %s: receiving failed (%s); retrying", source.queue.name, error)
                        await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    continue
                finally:
                    self._receiving.discard(task)
                messages = answer.get("Messages") or []
                if not messages or self._stopping:
                    slots.release()
                    if in_flight and not self._stopping:
                        # Nothing free now: look again once a batch finishes (or a second passes).
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(finished.wait(), timeout=1.0)
                    continue
                batch = asyncio.create_task(self._deliver(sqs, url, source, messages))
                in_flight.add(batch)
                batch.add_done_callback(done)
        finally:
            if in_flight:
                await asyncio.wait(list(in_flight), timeout=STOP_GRACE_SECONDS)

    async def _poll(self, source: SqsEventSource) -> None:
        sqs = self._sqs_client()
        url = self._urls[source.queue.logical_id]
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:
            self._receiving.add(task)
            try:
                messages = await self._receive_batch(sqs, url, source)
            except asyncio.CancelledError:
                return
            except Exception as error:  # moto unreachable or the queue gone: try again
                if not self._stopping:
                    logger.warning("SQS %s: receiving failed (%s); retrying", source.queue.name, error)
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            finally:
                self._receiving.discard(task)
            if messages and not self._stopping:
                await self._deliver(sqs, url, source, messages)

    async def _receive_batch(self, sqs: Any, url: str, source: SqsEventSource) -> list[dict[str, Any]]:
        """Long-polls for a first message, then gathers up to BatchSize within the batching window."""
        loop = asyncio.get_running_loop()
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while len(messages) < source.batch_size:
            if deadline is None:
                wait_seconds = LONG_POLL_SECONDS
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait_seconds = min(LONG_POLL_SECONDS, max(1, int(remaining)))
            wanted = min(RECEIVE_MAX, source.batch_size - len(messages))
            try:
                answer = await _in_daemon_thread(
                    lambda wanted=wanted, wait_seconds=wait_seconds: sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=wanted,
                        WaitTimeSeconds=wait_seconds,
                        AttributeNames=["All"],
                        MessageSystemAttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    )
                )
            except Exception as error:
                if not messages:
                    raise
                # The messages in hand are invisible to everyone else now: deliver them.
                logger.warning("SQS %s: receiving failed (%s); delivering the batch so far", source.queue.name, error)
                break
            received = answer.get("Messages") or []
            messages += received
            if deadline is None and messages:
                if source.batching_window_seconds == 0:
                    break
                deadline = loop.time() + source.batching_window_seconds
        return messages

    async def _deliver(self, sqs: Any, url: str, source: SqsEventSource, messages: list[dict[str, Any]]) -> None:
        from local_stack.functions import InvocationError

        event = {"Records": [sqs_record(message, source.queue.arn) for message in messages]}
        ids = [message["MessageId"] for message in messages]
        try:
            response = await self._functions.invoke(source.function_id, event)
        except InvocationError as error:
            logger.warning(
                "SQS %s: %s failed on a batch of %d (%s); the messages return after the visibility timeout",
                source.queue.name,
                source.function_id,
                len(messages),
                error,
            )
            return
        failed = failed_message_ids(response, ids) if source.report_batch_item_failures else set()
        done = [message for message in messages if message["MessageId"] not in failed]
        if failed:
            logger.warning(
                "SQS %s: %s reported %d of %d messages failed; they return after the visibility timeout",
                source.queue.name,
                source.function_id,
                len(failed),
                len(messages),
            )
        for start in range(0, len(done), RECEIVE_MAX):
            chunk = done[start : start + RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            try:
                answer = await _in_daemon_thread(
                    lambda entries=entries: sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                )
            except Exception as error:  # the messages come back; the function must be idempotent anyway
                logger.warning("SQS %s: deleting processed messages failed (%s)", source.queue.name, error)
                continue
            for failure in answer.get("Failed") or []:
                logger.warning("SQS %s: a processed message was not deleted (%s)", source.queue.name, failure)

    async def stop(self) -> None:
        """Pollers waiting for messages stop at once; batches being processed finish first."""
        self._stopping = True
        for task in list(self._receiving):
            task.cancel()
        if self._pollers:
            await asyncio.wait(self._pollers, timeout=STOP_GRACE_SECONDS)
        for task in self._pollers:
            if not task.done():
                task.cancel()
        self._pollers.clear()
