"""Fixtures of the unit suite: the real domain over moto, and the JSON log lines it writes."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

# As deployed (template.yaml Globals): the package's child loggers hang under this service.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "session-manager")

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from tests.unit.harness import SerializedClient, build


@pytest.fixture
def services(dynamodb_client, management_api):
    """Default settings over moto, every DynamoDB call atomic (see SerializedClient)."""
    return build(SerializedClient(dynamodb_client), management_api)


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def at(self, level: str) -> list[dict]:
        return [line for line in self.lines if line["level"] == level]

    def messages(self, level: str | None = None) -> list[str]:
        return [line["message"] for line in self.lines if level is None or line["level"] == level]


def _service_formatter() -> logging.Formatter:
    """The JSON formatter of the package's logger: it holds the keys appended per invocation
    (correlation_id, connection, ...), so captured lines read as the deployed ones do."""
    from session_manager.observability import logger

    formatter = logger.registered_formatter
    return formatter if isinstance(formatter, LambdaPowertoolsFormatter) else LambdaPowertoolsFormatter()


@pytest.fixture
def logs():
    """Every log record of the run, formatted as the Lambda functions write them (JSON lines
    with their extra keys), whichever logger wrote it."""
    captured = CapturedLogs()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(_service_formatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
