"""A deployed stack in one process: the Lambda entry points (functions/<name>/app.py) configured
from the environment exactly as template.yaml configures them, over moto, with the EMF metric
lines and JSON log lines they write captured."""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import boto3
import pytest

# As deployed (template.yaml Globals), before any module of the package makes its loggers.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "session-manager")

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

from tests.conftest import create_tables
from tests.unit.harness import LambdaContext, load_function, websocket_event

# Without the stage segment the template adds: moto's @connections API answers only there.
ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com"
FUNCTIONS = [
    "authorizer",
    "connect",
    "disconnect",
    "default_route",
    "create_session",
    "join_session",
    "heartbeat",
    "refresh_connection",
    "get_session_status",
    "end_session",
    "leave_session",
    "sweeper",
]
# As template.yaml's Globals set them (table names are the logical ids, as in tests/conftest.py).
DEPLOYED_ENVIRONMENT = {
    "SESSIONS_TABLE": "SessionsTable",
    "CONNECTIONS_TABLE": "ConnectionsTable",
    "RATE_LIMITS_TABLE": "RateLimitsTable",
    "MANAGEMENT_API_ENDPOINT": ENDPOINT,
    "USER_POOL_ID": "us-east-1_monitoring",
    "USER_POOL_CLIENT_ID": "monitoring-client",
    "POWERTOOLS_SERVICE_NAME": "session-manager",
    "LOG_LEVEL": "INFO",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # The local stand-in of the Secrets Manager secret (RateLimitKeySecret).
    "RATE_LIMIT_KEY_SECRET": "monitoring-tests-rate-limit-key",
}


@dataclass(frozen=True)
class EmittedMetric:
    name: str
    unit: str
    namespace: str
    dimensions: dict[str, str]
    values: list[float]

    @property
    def total(self) -> float:
        return sum(self.values)


def emf_metrics(text: str) -> list[EmittedMetric]:
    """Every metric of every Embedded Metric Format line in `text`."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"] or [[]]:
                dimensions = {name: document[name] for name in dimension_set}
                for metric in directive["Metrics"]:
                    found.append(
                        EmittedMetric(
                            name=metric["Name"],
                            unit=metric.get("Unit", "None"),
                            namespace=directive["Namespace"],
                            dimensions=dimensions,
                            values=list(value) if isinstance(value := document[metric["Name"]], list) else [value],
                        )
                    )
    return found


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@dataclass
class Stack:
    """The functions as API Gateway and EventBridge invoke them."""

    capfd: Any
    gone: set[str] = field(default_factory=set)
    functions: dict[str, Any] = field(default_factory=dict)
    invocations: list[tuple[str, list[EmittedMetric]]] = field(default_factory=list)

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke one function; returns its result and records the metrics it emitted."""
        self.capfd.readouterr()
        try:
            return self.functions[function].handler(event, LambdaContext())
        finally:  # an authorizer refuses by raising; its metrics count all the same
            self.invocations.append((function, emf_metrics(self.capfd.readouterr().out)))

    def metrics_of_last(self) -> list[EmittedMetric]:
        return self.invocations[-1][1]

    def send(self, function: str, connection_id: str, route: str, body=None, **event_args) -> dict[str, Any]:
        return self.invoke(function, websocket_event(connection_id, route, body, **event_args))

    def messages_to(self, connection_id: str) -> list[dict[str, Any]]:
        """What the functions posted to a connection (moto's @connections API keeps the bytes)."""
        from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

        backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
        key = quote(connection_id, safe="")  # moto keeps the id as it appears in the URL
        data = backend.connections[key].data.decode() if key in backend.connections else ""
        decoder, messages, index = json.JSONDecoder(), [], 0
        while index < len(data):
            message, index = decoder.raw_decode(data, index)
            messages.append(message)
        return messages


def _refresh_per_environment_caches() -> None:
    """A new execution environment: settings, clients and services read again."""
    from session_manager import snapstart
    from session_manager.config import get_settings

    get_settings.cache_clear()
    snapstart.refresh_after_restore()


@pytest.fixture
def deployed_environment(monkeypatch, aws):
    for name, value in DEPLOYED_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    create_tables(boto3.client("dynamodb", region_name="us-east-1"))
    from session_manager.observability import metrics

    metrics.clear_metrics()  # nothing left over from tests that ran with metrics disabled
    _refresh_per_environment_caches()
    yield
    _refresh_per_environment_caches()
    metrics.clear_metrics()


@pytest.fixture
def logs():
    """Every log record, formatted as the functions write them (JSON lines with their keys)."""
    from session_manager.observability import logger

    captured = CapturedLogs()
    handler = logging.StreamHandler(captured.stream)
    formatter = logger.registered_formatter
    handler.setFormatter(formatter if isinstance(formatter, LambdaPowertoolsFormatter) else LambdaPowertoolsFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def _answering_gone(app, gone: set[str]):
    """In front of moto's server: a post or delete to a connection in ``gone`` answers 410."""

    def answer(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "/@connections/" in path and unquote(path.split("/@connections/")[-1]) in gone:
            start_response("410 Gone", [("x-amzn-ErrorType", "GoneException"), ("Content-Length", "2")])
            return [b"{}"]
        return app(environ, start_response)

    return answer


@pytest.fixture
def stack(deployed_environment, capfd, monkeypatch):
    """The stack, with connections in `stack.gone` answering 410 like a closed socket. A fan-out
    posts over HTTP (session_manager/store/bulk_posts.py), so the @connections API is moto's
    server, in this process and over the same backends as the mock."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("MANAGEMENT_API_ENDPOINT", f"http://{host}:{port}")
    _refresh_per_environment_caches()
    built = Stack(capfd=capfd, functions={name: load_function(name) for name in FUNCTIONS})
    server._server.app = _answering_gone(server._server.app, built.gone)

    def answer_gone(params, **kwargs):
        if unquote(params.get("url_path", "").split("/@connections/")[-1]) in built.gone:
            response = AWSResponse("https://gone", 410, {}, None)
            return response, {
                "Error": {"Code": "GoneException", "Message": "gone"},
                "ResponseMetadata": {"HTTPStatusCode": 410},
            }
        return None

    boto3.DEFAULT_SESSION = None
    session = boto3._get_default_session()
    session.events.register("before-call.apigatewaymanagementapi.PostToConnection", answer_gone)
    session.events.register("before-call.apigatewaymanagementapi.DeleteConnection", answer_gone)
    yield built
    boto3.DEFAULT_SESSION = None
    server.stop()
