"""What a listener-hour costs under each way of keeping heartbeats, beside the floor: the API
Gateway messages and connection minutes the protocol itself needs (docs/decisions.md has the
choice). Inputs are this run's measurements: DynamoDB requests per heartbeat and the heartbeat
function's time per invocation; prices are on-demand list prices (us-east-1, edit PRICES).

`python -m benchmarks.heartbeat_cost` also measures both values of the template's
HeartbeatAnsweredBy on the local stack (decision 44): listeners heartbeat on a stack whose
interval, timeout and sweep are today's 30 s, 90 s and 1 min divided by 30, and the figures per
heartbeat (DynamoDB requests, heartbeat function CPU) and per connection and sweep (GetConnection
calls, from the sweeper's own report) are priced per 1,000 listener-hours."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

PRICES = {
    "dynamodb_write": 0.625 / 1e6,  # per write request unit
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,  # arm64
    "websocket_message": 1.00 / 1e6,  # per 32 KB message, in or out
    "websocket_connection_minute": 0.25 / 1e6,
}
HEARTBEAT_MEMORY_GB = 192 / 1024  # the template's HeartbeatFunction MemorySize
LISTENER_HOURS = 1000
TARGET_RATIO = 1.2  # issue 11
SWEEPS_PER_HOUR = 60  # the template's rate(1 minute)
# The time one GetConnection adds to a deployed sweep (512 MB): an assumption, not measured here
# (a loopback call says nothing about API Gateway's latency).
GET_CONNECTION_SWEEP_MS = 20.0
SWEEPER_MEMORY_GB = 512 / 1024

# Today's 30 s interval, 90 s timeout and 1-minute sweep, divided by 30.
SCALE = 30
MODE_PARAMETERS = {
    "HEARTBEAT_INTERVAL_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "3",
    "RATE_LIMIT_HEARTBEATS_PER_MIN": "100",
}
SWEEP_SECONDS = 60 / SCALE


def _per_1000_hours(
    *, heartbeat_seconds: float, lambda_ms: float | None, writes_per_beat: float, extra_calls_per_hour: float = 0.0
) -> float:
    beats = 3600 / heartbeat_seconds
    messages = beats * 2 + extra_calls_per_hour  # the heartbeat in, the ack out (and any management call)
    cost = messages * PRICES["websocket_message"] + 60 * PRICES["websocket_connection_minute"]
    if lambda_ms is not None:
        cost += beats * (PRICES["lambda_request"] + lambda_ms / 1000 * HEARTBEAT_MEMORY_GB * PRICES["lambda_gb_second"])
    cost += beats * writes_per_beat * PRICES["dynamodb_write"]
    return cost * LISTENER_HOURS


def options(*, writes_per_beat: float, lambda_ms: float, gateway: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dollars per 1,000 listener-hours per option, and the ratio to the floor (30 s heartbeats).
    With `gateway` (measure_mode("gateway")), its measured cost is a row of its own."""
    floor = _per_1000_hours(heartbeat_seconds=30, lambda_ms=None, writes_per_beat=0)
    table = {
        "now: Lambda + 1 write per 30 s heartbeat": _per_1000_hours(
            heartbeat_seconds=30, lambda_ms=lambda_ms, writes_per_beat=writes_per_beat
        ),
        "Lambda, write only every 4th beat (lastSeenAt 2 min stale)": _per_1000_hours(
            heartbeat_seconds=30, lambda_ms=lambda_ms, writes_per_beat=writes_per_beat / 4
        ),
        "60 s heartbeat, Lambda + write": _per_1000_hours(
            heartbeat_seconds=60, lambda_ms=lambda_ms, writes_per_beat=writes_per_beat
        ),
        "MOCK-answered heartbeat, sweep GetConnection every 2 min": _per_1000_hours(
            heartbeat_seconds=30, lambda_ms=None, writes_per_beat=0, extra_calls_per_hour=30
        ),
        "MOCK-answered heartbeat, idle timeout only": _per_1000_hours(
            heartbeat_seconds=30, lambda_ms=None, writes_per_beat=0
        ),
    }
    if gateway is not None:
        lookups_per_hour = gateway["get_connection_per_connection_sweep"] * SWEEPS_PER_HOUR
        sweeper_seconds = lookups_per_hour * GET_CONNECTION_SWEEP_MS / 1000
        table["measured: HeartbeatAnsweredBy=gateway (MOCK, sweep reads lastActiveAt)"] = (
            _per_1000_hours(
                heartbeat_seconds=30,
                lambda_ms=gateway["heartbeat_lambda_ms"] or None,
                writes_per_beat=gateway["dynamodb_requests_per_heartbeat"],
                extra_calls_per_hour=lookups_per_hour,
            )
            + sweeper_seconds * SWEEPER_MEMORY_GB * PRICES["lambda_gb_second"] * LISTENER_HOURS
        )
    return {
        "floor_per_1000_listener_hours": round(floor, 4),
        "target_ratio": TARGET_RATIO,
        "gateway": gateway,
        "inputs": {"writes_per_heartbeat": writes_per_beat, "heartbeat_lambda_ms": lambda_ms},
        "options": {name: {"dollars": round(cost, 4), "ratio": round(cost / floor, 2)} for name, cost in table.items()},
    }


def print_report(result: dict[str, Any]) -> None:
    inputs = result["inputs"]
    print(
        "\n== Cost per 1,000 listener-hours (floor: the protocol's messages and connection minutes, "
        f"${result['floor_per_1000_listener_hours']:.3f})"
    )
    print(
        f"  measured: {inputs['writes_per_heartbeat']:.2f} DynamoDB writes per heartbeat, "
        f"{inputs['heartbeat_lambda_ms']:.1f} ms of heartbeat function per invocation (local CPU time)"
    )
    gateway = result.get("gateway")
    if gateway:
        print(
            f"  measured in gateway mode: {gateway['dynamodb_requests_per_heartbeat']:.2f} DynamoDB requests and "
            f"{gateway['heartbeat_lambda_ms']:.2f} ms of heartbeat function CPU per heartbeat, "
            f"{gateway['get_connection_per_connection_sweep']:.2f} GetConnection per connection per sweep "
            f"({gateway['heartbeats']} heartbeats, {gateway['acks']} acks, {gateway['sweeps']} sweeps)"
        )
    for name, figures in result["options"].items():
        print(f"  {name:72} ${figures['dollars']:.3f}  {figures['ratio']:.2f}x floor")
    print(f"  target: {result.get('target_ratio', TARGET_RATIO):.2f}x floor")
    print("  (a management API call is priced as one message: an upper bound, see docs/decisions.md)")
    if gateway:
        print(f"  (gateway mode adds {GET_CONNECTION_SWEEP_MS:.0f} ms of sweeper per GetConnection: an assumption)")


def _sweep_reports(log_file: str, offset: int) -> list[dict[str, Any]]:
    """The sweeper's own reports ("sweep finished" log lines) written since `offset`."""
    reports = []
    with open(log_file, encoding="utf-8", errors="replace") as log:
        log.seek(offset)
        for line in log:
            if line.startswith("[SweeperFunction] ") and '"sweep finished"' in line:
                reports.append(json.loads(line.split("] ", 1)[1]))
    return reports


async def _heartbeat_for(
    url: str, listeners: int, rounds: int, interval: float, measured: Any = None
) -> tuple[int, int]:
    """Every listener heartbeats `rounds` times, `interval` apart; (heartbeats, acks). Only the
    heartbeats are inside `measured` (a context manager), not the connects and disconnects."""
    import websockets

    sockets = [await websockets.connect(url, ping_interval=None, open_timeout=30) for _ in range(listeners)]
    beats = acks = 0
    try:
        with measured if measured is not None else contextlib.nullcontext():
            for _ in range(rounds):
                started = time.monotonic()
                for socket in sockets:
                    await socket.send('{"action":"heartbeat"}')
                    beats += 1
                for socket in sockets:
                    reply = json.loads(await asyncio.wait_for(socket.recv(), 30))
                    acks += reply.get("type") == "heartbeatAck"
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        for socket in sockets:
            await socket.close()
    return beats, acks


def _wait_until_no_connection(stack: Any, timeout: float = 30.0) -> None:
    """Until the Connections table is empty: a busy machine runs $disconnect seconds late."""
    table = stack.info["tables"]["ConnectionsTable"]
    deadline = time.monotonic() + timeout
    while stack.dynamodb.scan(TableName=table, Select="COUNT")["Count"] and time.monotonic() < deadline:
        time.sleep(0.2)


def measure_mode(mode: str, *, listeners: int, seconds: float) -> dict[str, Any]:
    """Heartbeats on a local stack in that mode of HeartbeatAnsweredBy, measured."""
    from benchmarks.scenarios import BenchStack, Measured
    from local_stack.testing import running_stack

    parameters = {**MODE_PARAMETERS, "HeartbeatAnsweredBy": mode}
    interval = float(MODE_PARAMETERS["HEARTBEAT_INTERVAL_SECONDS"])
    with running_stack(env_vars={"Parameters": parameters}, schedule_seconds=SWEEP_SECONDS) as info:
        stack = BenchStack(info)
        asyncio.run(_heartbeat_for(stack.url, 2, 1, 0))  # every function on the path warm
        _wait_until_no_connection(stack)  # and their $disconnects done, outside the figures
        measured = Measured(stack)
        offset = Path(info["logFile"]).stat().st_size
        rounds = max(1, round(seconds / interval))
        beats, acks = asyncio.run(_heartbeat_for(stack.url, listeners, rounds, interval, measured))
        time.sleep(0.5)  # the last sweep's log line
        reports = [report for report in _sweep_reports(info["logFile"], offset) if report.get("connections_swept")]
    # The sweeper's own Scans (and its lookups' cleanups) are not the heartbeats'.
    per_beat = sum(count for operation, count in measured.requests.items() if operation != "Scan")
    lookups = sum(report.get("activity_lookups", 0) for report in reports)
    swept = sum(report.get("connections_swept", 0) for report in reports)
    return {
        "mode": mode,
        "listeners": listeners,
        "heartbeats": beats,
        "acks": acks,
        "sweeps": len(reports),
        "dynamodb_requests": measured.requests,
        "dynamodb_requests_per_heartbeat": round(per_beat / beats, 3) if beats else None,
        "heartbeat_lambda_ms": round(measured.cpu.get("HeartbeatFunction", 0) * 1000 / beats, 2),
        "get_connection_per_connection_sweep": round(lookups / swept, 3) if swept else 0.0,
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    arguments = parser.parse_args()
    function = measure_mode("function", listeners=arguments.listeners, seconds=arguments.seconds)
    gateway = measure_mode("gateway", listeners=arguments.listeners, seconds=arguments.seconds)
    result = options(
        writes_per_beat=function["dynamodb_requests_per_heartbeat"] or 1.0,
        lambda_ms=function["heartbeat_lambda_ms"],
        gateway=gateway,
    )
    result["function"] = function
    print_report(result)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
