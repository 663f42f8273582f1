"""What a listener-hour costs under each way of keeping heartbeats, beside the floor: the API
Gateway messages and connection minutes the protocol itself needs (docs/decisions.md has the
choice). Inputs are this run's measurements: DynamoDB requests per heartbeat and the heartbeat
function's time per invocation; prices are on-demand list prices (us-east-1, edit PRICES)."""

from __future__ import annotations

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


def options(*, writes_per_beat: float, lambda_ms: float) -> dict[str, Any]:
    """Dollars per 1,000 listener-hours per option, and the ratio to the floor (30 s heartbeats)."""
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
    return {
        "floor_per_1000_listener_hours": round(floor, 4),
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
    for name, figures in result["options"].items():
        print(f"  {name:60} ${figures['dollars']:.3f}  {figures['ratio']:.2f}x floor")
    print("  (a management API call is priced as one message: an upper bound, see docs/decisions.md)")
