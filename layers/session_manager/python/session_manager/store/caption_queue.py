"""Big fan-outs through SQS: pages of connection ids for the caption fan-out function."""

from __future__ import annotations

import json
from collections.abc import Iterable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from session_manager.errors import ServiceUnavailableError
from session_manager.outcomes import Message

SQS_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=1, read_timeout=3)
PAGE_SIZE = 100  # connection ids per SQS message: well inside its 256 KB with a 2,000-character line
BATCH_SIZE = 10  # messages per SendMessageBatch


class SqsCaptionQueue:
    def __init__(self, queue_url: str, client=None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = boto3.client("sqs", config=SQS_CONFIG)
        return self._client

    def enqueue(self, connection_ids: Iterable[str], message: Message) -> int:
        ids = list(connection_ids)
        bodies = [
            json.dumps({"connectionIds": ids[start : start + PAGE_SIZE], "message": message}, separators=(",", ":"))
            for start in range(0, len(ids), PAGE_SIZE)
        ]
        for start in range(0, len(bodies), BATCH_SIZE):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + BATCH_SIZE])]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise ServiceUnavailableError() from error
            if response.get("Failed"):
                raise ServiceUnavailableError()
        return len(bodies)
