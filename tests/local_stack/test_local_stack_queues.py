"""The SQS event source on moto's SQS: the template's queues exist with their intrinsics resolved,
functions get the event Lambda sends, successes are deleted, failures come back (whole batches,
or the items a ReportBatchItemFailures answer names), and pollers are bounded per event."""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import REPO_ROOT

from local_stack.errors import TemplateError
from local_stack.queues import discover, failed_message_ids, record_existing_queues
from local_stack.template import load_template
from local_stack.testing import running_stack

SQS_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "sqs_template.yaml"
WAIT_SECONDS = 40.0
ARN_PREFIX = "arn:aws:sqs:us-east-1:123456789012:"


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    with running_stack(template=SQS_TEMPLATE) as ready:
        yield ready


def _client(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack["motoEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture(scope="module")
def sqs(stack: dict[str, Any]) -> Any:
    return _client(stack, "sqs")


@pytest.fixture(scope="module")
def received(stack: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """The record the consumer kept of message `id` on its `count`th receive, waiting for it."""
    dynamodb = _client(stack, "dynamodb")
    table = stack["tables"]["RecordsTable"]

    def get(kind: str, key: str) -> dict[str, Any] | None:
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"{kind}#{key}"}}).get("Item")
        return None if item is None else json.loads(item["event"]["S"])

    def wait(message_id: str, count: int = 1, kind: str = "sqs") -> dict[str, Any]:
        key = f"{message_id}#{count}" if kind == "sqs" else message_id
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = get(kind, key)
            if found is not None:
                return found
            time.sleep(0.05)
        log = Path(stack["logFile"]).read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AssertionError(f"no {kind} record for {key} within {WAIT_SECONDS} s; the stack said:\n{log}")

    wait.get = get  # type: ignore[attr-defined]
    return wait


def _wait_until_empty(sqs: Any, url: str) -> None:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if all(attributes[name] == "0" for name in names):
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} still holds messages: {attributes}")


def test_queues_exist_and_intrinsics_resolve(stack, sqs, received):
    urls = stack["queues"]
    assert set(urls) == {
        "InboxQueue", "PoisonQueue", "DeadLetterQueue", "PartialQueue", "SlowQueue", "OutboxQueue", "OrderedQueue",
    }  # fmt: skip
    assert urls["OrderedQueue"].endswith("/OrderedQueue.fifo")
    # `make invoke` beside this stack names the same URLs without creating anything.
    template = load_template(SQS_TEMPLATE, {}, api_id="abcdefghij")
    record_existing_queues(discover(template), template.resolver, stack["motoEndpoint"])
    assert {logical_id: template.resolver.ref(logical_id) for logical_id in urls} == urls
    assert urls["PoisonQueue"].endswith("/123456789012/probe-poison")
    for logical_id, url in urls.items():
        assert sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"] == url, logical_id
    attributes = sqs.get_queue_attributes(QueueUrl=urls["PoisonQueue"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "10"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": f"{ARN_PREFIX}DeadLetterQueue",
        "maxReceiveCount": 3,
    }
    message_id = sqs.send_message(QueueUrl=urls["InboxQueue"], MessageBody="ok")["MessageId"]
    environment = received(message_id)["environment"]
    assert environment == {
        "OUTBOX_URL": urls["OutboxQueue"],
        "INBOX_ARN": f"{ARN_PREFIX}InboxQueue",
        "INBOX_NAME": "InboxQueue",
    }


def test_the_event_is_lambdas_sqs_event(stack, sqs, received):
    url = stack["queues"]["InboxQueue"]
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="ok",
        MessageAttributes={
            "language": {"DataType": "String", "StringValue": "es"},
            "seq": {"DataType": "Number", "StringValue": "42"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    record = received(sent["MessageId"])["record"]
    assert set(record) == {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
        "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == "ok"
    assert record["md5OfBody"] == hashlib.md5(b"ok").hexdigest() == sent["MD5OfMessageBody"]
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == f"{ARN_PREFIX}InboxQueue"
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"]
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(attributes)
    assert record["messageAttributes"] == {
        "language": {"stringValue": "es", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "seq": {"stringValue": "42", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }


def test_processed_messages_are_deleted(stack, sqs, received):
    url = stack["queues"]["InboxQueue"]
    entries = [{"Id": str(index), "MessageBody": "ok"} for index in range(7)]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]
    for message in sent:
        received(message["MessageId"])
    _wait_until_empty(sqs, url)
    # Deleted, not merely in flight: none was handed over a second time.
    assert all(received.get("sqs", f"{message['MessageId']}#2") is None for message in sent)


def test_a_failed_batch_is_delivered_again(stack, sqs, received):
    url = stack["queues"]["InboxQueue"]
    message_id = sqs.send_message(QueueUrl=url, MessageBody="raise-once")["MessageId"]
    assert received(message_id, 1)["record"]["attributes"]["ApproximateReceiveCount"] == "1"
    assert received(message_id, 2)["record"]["attributes"]["ApproximateReceiveCount"] == "2"
    _wait_until_empty(sqs, url)
    assert received.get("sqs", f"{message_id}#3") is None


def test_the_function_reaches_sqs_through_the_embedded_endpoint(stack, sqs, received):
    message_id = sqs.send_message(QueueUrl=stack["queues"]["InboxQueue"], MessageBody="forward")["MessageId"]
    received(message_id)
    answer = sqs.receive_message(QueueUrl=stack["queues"]["OutboxQueue"], WaitTimeSeconds=10)
    assert [message["Body"] for message in answer["Messages"]] == [f"forwarded {message_id}"]


def test_a_message_that_always_fails_reaches_the_dead_letter_queue(stack, sqs, received):
    message_id = sqs.send_message(QueueUrl=stack["queues"]["PoisonQueue"], MessageBody="always-raise")["MessageId"]
    for count in (1, 2, 3):
        received(message_id, count)
    answer = sqs.receive_message(QueueUrl=stack["queues"]["DeadLetterQueue"], WaitTimeSeconds=20)
    assert [message["MessageId"] for message in answer["Messages"]] == [message_id]
    assert received.get("sqs", f"{message_id}#4") is None


def test_batch_item_failures_redeliver_only_the_named_messages(stack, sqs, received):
    url = stack["queues"]["PartialQueue"]
    bodies = ["ok", "fail-item-once", "ok", "fail-item-once", "ok", "ok", "ok", "ok", "ok", "ok"]
    entries = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]
    by_id = {message["MessageId"]: bodies[int(message["Id"])] for message in sent}
    batch_sizes = []
    for message_id, body in by_id.items():
        batch_sizes.append(received(message_id, 1)["batchSize"])
        if body == "fail-item-once":
            received(message_id, 2)
    _wait_until_empty(sqs, url)
    for message_id, body in by_id.items():
        again = received.get("sqs", f"{message_id}#2")
        assert (again is not None) == (body == "fail-item-once"), body
    assert max(batch_sizes) <= 5


def test_pollers_per_event_are_bounded_by_maximum_concurrency(stack, sqs, received):
    url = stack["queues"]["SlowQueue"]
    entries = [{"Id": str(index), "MessageBody": "slow"} for index in range(8)]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]
    seen = [received(message["MessageId"], kind="slow")["inflight"] for message in sent]
    _wait_until_empty(sqs, url)
    assert 1 <= max(seen) <= 2


def test_a_fifo_group_is_handled_in_order_one_batch_at_a_time(stack, sqs, received):
    url = stack["queues"]["OrderedQueue"]
    entries = [{"Id": str(index), "MessageBody": f"line {index}", "MessageGroupId": "session-1"} for index in range(6)]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]
    handled = [received(message["MessageId"], kind="ordered") for message in sent]
    assert [item["record"]["body"] for item in sorted(handled, key=lambda item: item["position"])] == [
        f"line {index}" for index in range(6)
    ]
    attributes = handled[0]["record"]["attributes"]
    assert attributes["MessageGroupId"] == "session-1"
    assert "MessageDeduplicationId" in attributes  # moto gives no SequenceNumber (docs/local-stack.md)
    assert handled[0]["record"]["eventSourceARN"] == f"{ARN_PREFIX}OrderedQueue.fifo"
    _wait_until_empty(sqs, url)


def test_the_console_has_no_moto_backend_warning(stack):
    # Function inits ask Translate for its languages; the console shows no moto complaint.
    translate = _client(stack, "translate")
    translate.translate_text(Text="Hello", SourceLanguageCode="en", TargetLanguageCode="es")
    log = Path(stack["logFile"]).read_text(encoding="utf-8", errors="replace")
    assert "Unable to find appropriate backend" not in log


# ---------------------------------------------------------------- reading the template


def test_partial_batch_responses_follow_lambdas_rules():
    ids = ["a", "b", "c"]
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({}, ids) == set()
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids({"batchItemFailures": None}, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    for broken in (
        {"batchItemFailures": [{"itemIdentifier": "zzz"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"messageId": "b"}]},
        {"batchItemFailures": "b"},
        "not a mapping",
    ):
        assert failed_message_ids(broken, ids) == set(ids), broken


def test_fixture_sources_are_read_with_their_settings():
    setup = discover(load_template(SQS_TEMPLATE, {}, api_id="abcdefghij"))
    sources = {(source.function_id, source.event_name): source for source in setup.sources}
    assert set(sources) == {
        ("ConsumerFunction", "Inbox"), ("ConsumerFunction", "Poison"),
        ("PartialFunction", "Partial"), ("SlowFunction", "Slow"), ("OrderedFunction", "Ordered"),
    }  # fmt: skip
    partial = sources[("PartialFunction", "Partial")]
    assert (partial.batch_size, partial.batching_window_seconds, partial.report_batch_item_failures) == (5, 1, True)
    assert sources[("SlowFunction", "Slow")].concurrency == 2
    assert sources[("ConsumerFunction", "Inbox")].report_batch_item_failures is False


def test_the_real_template_loads_with_or_without_sqs_events():
    template = load_template(REPO_ROOT / "template.yaml", {}, api_id="abcdefghij")
    setup = discover(template)
    for source in setup.sources:
        assert source.function_id in template.functions
        assert source.queue.logical_id in setup.queues


def _template_with_event(tmp_path: Path, event_properties: str) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("def handler(event, context):\n    return None\n")
    template = tmp_path / "template.yaml"
    template.write_text(
        textwrap.dedent(
            """\
            Transform: AWS::Serverless-2016-10-31
            Resources:
              Queue:
                Type: AWS::SQS::Queue
              ShortQueue:
                Type: AWS::SQS::Queue
                Properties:
                  VisibilityTimeout: 2
              FifoQueue:
                Type: AWS::SQS::Queue
                Properties:
                  FifoQueue: true
              Consumer:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: code/
                  Handler: app.handler
                  Runtime: python3.13
                  Events:
                    Work:
                      Type: SQS
                      Properties:
            """
        )
        + textwrap.indent(textwrap.dedent(event_properties), " " * 12)
    )
    return template


@pytest.mark.parametrize(
    ("properties", "complaint"),
    [
        ("Queue: arn:aws:sqs:us-east-1:123456789012:elsewhere\n", "not the Arn of an AWS::SQS::Queue"),
        ("Queue: !GetAtt Queue.Arn\nBatchSize: 0\n", "BatchSize must be a whole number from 1 to 10000"),
        ("Queue: !GetAtt Queue.Arn\nBatchSize: 100\n", "needs MaximumBatchingWindowInSeconds"),
        (
            "Queue: !GetAtt FifoQueue.Arn\nBatchSize: 11\nMaximumBatchingWindowInSeconds: 1\n",
            "BatchSize must be a whole number from 1 to 10,",
        ),
        ("Queue: !GetAtt Queue.Arn\nFunctionResponseTypes: [Everything]\n", "FunctionResponseTypes"),
        ("Queue: !GetAtt Queue.Arn\nScalingConfig: {MaximumConcurrency: 1}\n", "MaximumConcurrency"),
        (
            "Queue: !GetAtt ShortQueue.Arn\n",
            "VisibilityTimeout \\(2 s\\) is less than the function's Timeout \\(3 s\\)",
        ),
    ],
)
def test_an_event_the_local_stack_cannot_serve_fails_loudly(tmp_path, properties, complaint):
    template = load_template(_template_with_event(tmp_path, properties), {}, api_id="abcdefghij")
    with pytest.raises(TemplateError, match=complaint):
        discover(template)


def test_a_fifo_queue_without_a_name_is_named_for_its_logical_id(tmp_path):
    template = load_template(_template_with_event(tmp_path, "Queue: !GetAtt FifoQueue.Arn\n"), {}, api_id="x")
    (source,) = discover(template).sources
    assert source.queue.name == "FifoQueue.fifo"
    assert source.queue.attributes == {"FifoQueue": "true"}
