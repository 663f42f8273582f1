"""Shared fixtures: moto-backed tables built from template.yaml itself, and a recording
stand-in for the @connections API."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cfnlint.decode import decode
from hypothesis import settings

from session_manager.store.bulk_posts import DELIVERED, GONE, PostAnswer

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
# As deployed (template.yaml Globals): the domain's child loggers are named after the service
# when their modules are first imported, whichever test directory imports them first.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "session-manager")
# Test stacks start each function's environment when first invoked: the warm pool's 14 inits cost
# about 3.4 s of CPU per stack start (8.5 s against 5.1 s, measured), and the suite starts dozens.
# Stacks whose tests count seconds pass warm_environments=1 to running_stack (local_stack/testing.py).
os.environ.setdefault("LOCAL_STACK_WARM_ENVIRONMENTS", "0")

# Hypothesis's per-example deadline is a wall-clock assertion: on two cores shared by three test
# workers an example that takes 0.2 ms alone can take 270 ms. Its checks of the outcome stay.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def template_tables() -> dict[str, dict[str, Any]]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


def create_tables(client) -> dict[str, str]:
    """Create every table of the template under its logical id; returns logical id -> name."""
    names = {}
    for logical_id, props in template_tables().items():
        kwargs: dict[str, Any] = {
            "TableName": logical_id,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props["BillingMode"],
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        client.create_table(**kwargs)
        names[logical_id] = logical_id
    return names


class RecordingManagementApi:
    """Stands in for boto3's apigatewaymanagementapi client: records posts and deletes, and
    answers GoneException for connections marked gone."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.deleted: list[str] = []
        self.gone: set[str] = set()

    def _gone(self, operation: str) -> ClientError:
        return ClientError(
            {"Error": {"Code": "GoneException", "Message": "gone"}, "ResponseMetadata": {"HTTPStatusCode": 410}},
            operation,
        )

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict:
        if ConnectionId in self.gone:
            raise self._gone("PostToConnection")
        self.posts.append((ConnectionId, json.loads(Data)))
        return {}

    def post_all(self, posts) -> list[PostAnswer]:
        """The fan-out's transport (store/bulk_posts.py), over the same records."""
        answers = []
        for connection_id, body in posts:
            try:
                self.post_to_connection(ConnectionId=connection_id, Data=body)
            except ClientError:
                answers.append(PostAnswer(GONE, 410))
            else:
                answers.append(PostAnswer(DELIVERED, 200))
        return answers

    def delete_connection(self, ConnectionId: str) -> dict:
        if ConnectionId in self.gone:
            raise self._gone("DeleteConnection")
        self.deleted.append(ConnectionId)
        self.gone.add(ConnectionId)
        return {}

    def messages_to(self, connection_id: str) -> list[dict[str, Any]]:
        return [body for target, body in self.posts if target == connection_id]

    def types_to(self, connection_id: str) -> list[str]:
        return [body["type"] for body in self.messages_to(connection_id)]


@pytest.fixture
def aws():
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def dynamodb_client(aws):
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_tables(client)
    return client


@pytest.fixture
def management_api():
    return RecordingManagementApi()


# `make test` runs files on several workers (pytest-xdist, --dist loadfile), handing them out in
# collection order: a long file collected last would keep one worker busy after the rest are done.
# The longest ones (--durations, a file's tests summed) are collected first; the rest keep their order.
LONGEST_FILES_FIRST = (
    "tests/reliability/test_enumeration.py",
    "tests/e2e/test_bench_tiny.py",
    "tests/reliability/test_degradation.py",
    "tests/unit/test_rate_limits.py",
    "tests/local_stack/test_local_stack_cli.py",
    "tests/local_stack/test_local_stack_hygiene.py",
    "tests/e2e/test_status_and_end.py",
    "tests/local_stack/test_local_stack_queues.py",
    "tests/reliability/test_fuzz_socket.py",
    "tests/reliability/test_races.py",
    "tests/clients/test_client_refresh_with_local_stack.py",
    "tests/local_stack/test_sample_events.py",
    "tests/e2e/test_speaker_reconnect.py",
    "tests/e2e/test_gateway_heartbeats.py",
    "tests/clients/test_client_grace_with_local_stack.py",
    "tests/e2e/test_lifecycle.py",
    "tests/local_stack/test_local_stack_console.py",
    "tests/e2e/test_join_storm_truth.py",  # a storm: far from the bench's
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(ROOT).as_posix()
        return LONGEST_FILES_FIRST.index(path) if path in LONGEST_FILES_FIRST else len(LONGEST_FILES_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the rest, the order stays
