"""What one listener costs: AWS requests per operation, and per listener-hour.

Runs the real domain over moto (in-process) with a client wrapper that counts every DynamoDB
request and its kind, then prices a listener-hour from the counts with on-demand list prices
(us-east-1, as published in 2025; edit PRICES when they change).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers/session_manager/python"), str(ROOT / "tests"), str(ROOT / "tests/unit")]
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

PRICES = {
    "dynamodb_write": 0.625 / 1e6,  # per write request unit (transactions cost 2 per item)
    "dynamodb_read": 0.125 / 1e6,  # per read request unit (strongly consistent: 1 per 4 KB)
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,  # arm64
    "websocket_message": 1.00 / 1e6,  # per 32 KB message, in or out
    "websocket_connection_minute": 0.25 / 1e6,
}
WRITE_OPERATIONS = {"put_item", "update_item", "delete_item"}
READ_OPERATIONS = {"get_item", "query", "scan"}


class CountingClient:
    """Wraps a boto3 DynamoDB client and counts request units by kind."""

    def __init__(self, client) -> None:
        self._client = client
        self.units: Counter[str] = Counter()

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def counted(**kwargs):
            if name in WRITE_OPERATIONS:
                self.units["write"] += 1
            elif name in READ_OPERATIONS:
                self.units["read"] += 1
            elif name == "transact_write_items":
                self.units["write"] += 2 * len(kwargs["TransactItems"])
            elif name == "batch_write_item":
                self.units["write"] += sum(len(v) for v in kwargs["RequestItems"].values())
            return method(**kwargs)

        return counted


def measure() -> dict[str, Counter[str]]:
    import boto3
    from conftest import RecordingManagementApi, create_tables
    from harness import build, connect
    from moto import mock_aws

    from session_manager.protocol import parse_create_session, parse_join_session

    costs: dict[str, Counter[str]] = {}
    with mock_aws():
        raw = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(raw)
        client = CountingClient(raw)
        api = RecordingManagementApi()
        services = build(client, api)

        def step(name, action):
            before, posts = client.units.copy(), len(api.posts)
            replies = action()
            costs[name] = client.units - before
            # Replies are posted by the handler wrapper, broadcasts by the domain itself.
            replied = len(replies) if isinstance(replies, list) else int(isinstance(replies, dict))
            costs[name]["messages_out"] = len(api.posts) - posts + replied

        speaker = connect(services, user_id="speaker-1")
        created = {}

        def create():
            created.update(
                services.sessions.create_session(speaker.caller, parse_create_session({"sourceLanguage": "en"}))
            )
            return created

        step("createSession", create)
        holder = {}
        step("$connect (listener)", lambda: holder.update(listener=connect(services)))
        listener = holder["listener"]
        step(
            "joinSession",
            lambda: services.sessions.join_session(
                listener.caller, parse_join_session({"sessionId": created["sessionId"], "targetLanguage": "es"})
            ),
        )
        step("heartbeat", lambda: services.connections.heartbeat(listener.caller))
        step("$disconnect (listener)", lambda: services.connections.disconnect(listener.connection_id))
    return costs


def report() -> None:
    started = time.perf_counter()
    costs = measure()
    print("== DynamoDB request units and messages per operation (real domain over moto)")
    print(f"{'operation':26} {'writes':>7} {'reads':>6} {'msgs out':>9}")
    for name, units in costs.items():
        print(f"{name:26} {units['write']:7} {units['read']:6} {units['messages_out']:9}")
    heartbeats_per_hour = 3600 / 30
    hb = costs["heartbeat"]
    lambda_seconds = 0.02  # a warm heartbeat invocation: ~20 ms at 256 MB (estimate, not measured here)
    hourly = {
        "DynamoDB (heartbeats)": heartbeats_per_hour
        * (hb["write"] * PRICES["dynamodb_write"] + hb["read"] * PRICES["dynamodb_read"]),
        "Lambda (heartbeats)": heartbeats_per_hour
        * (PRICES["lambda_request"] + lambda_seconds * 0.25 * PRICES["lambda_gb_second"]),
        "API Gateway messages": heartbeats_per_hour * (1 + hb["messages_out"]) * PRICES["websocket_message"],
        "API Gateway connection minutes": 60 * PRICES["websocket_connection_minute"],
    }
    join_cost = sum(
        costs[name]["write"] * PRICES["dynamodb_write"] + costs[name]["read"] * PRICES["dynamodb_read"]
        for name in ("$connect (listener)", "joinSession", "$disconnect (listener)")
    )
    print("\n== Estimated cost of one listener-hour (on-demand list prices, heartbeat every 30 s)")
    for name, dollars in hourly.items():
        print(f"{name:32} ${dollars * 1e6:9.2f} per million listener-hours")
    total = sum(hourly.values())
    print(f"{'total per listener-hour':32} ${total:.8f}  (${total * 1e6:,.2f} per million)")
    print(f"{'join + leave, DynamoDB, once':32} ${join_cost:.8f}")
    print(f"(measured in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    report()
