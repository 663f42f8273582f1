"""Frames that are not protocol messages, frame and message size limits, heartbeat limits."""

from __future__ import annotations

import json

import pytest

from .client import Stack, assert_error, assert_message

pytestmark = pytest.mark.e2e

KB = 1024

NOT_PROTOCOL_MESSAGES = {
    "not-json": "hello there",
    "json-array": '[{"action": "heartbeat"}]',
    "json-string": '"heartbeat"',
    "json-number": "42",
    "no-action": "{}",
    "unknown-action": '{"action": "dance"}',
    "action-not-string": '{"action": 5}',
    "action-null": '{"action": null}',
    "truncated-json": '{"action": "heartbeat"',
    "binary-frame": b'{"action": "heartbeat"}',  # the protocol speaks JSON text frames
}


@pytest.mark.parametrize("frame", NOT_PROTOCOL_MESSAGES.values(), ids=NOT_PROTOCOL_MESSAGES.keys())
async def test_frame_that_is_not_a_known_action_is_invalid_action_and_connection_stays_open(
    stack: Stack, frame: str | bytes
):
    client = await stack.connect()
    # WHEN the client sends something that is not a JSON object with a known action
    await client.send_raw(frame)
    # THEN it gets INVALID_ACTION...
    assert_error(await client.receive(), "INVALID_ACTION", 400)
    # ...and the connection still works
    assert_message(await client.request("heartbeat"), "heartbeatAck")


async def test_message_over_128_kb_closes_connection_with_1009(stack: Stack):
    client = await stack.connect()
    await client.send_raw(json.dumps({"action": "heartbeat", "padding": "x" * (130 * KB)}))
    closed = await client.wait_closed(timeout=5)
    assert closed.code == 1009, closed


async def test_fragmented_message_over_128_kb_closes_connection_with_1009(stack: Stack):
    client = await stack.connect()
    text = json.dumps({"action": "heartbeat", "padding": "x" * (130 * KB)})
    await client.send_raw([text[i : i + 16 * KB] for i in range(0, len(text), 16 * KB)])
    closed = await client.wait_closed(timeout=5)
    assert closed.code == 1009, closed


async def test_frame_over_32_kb_closes_connection_with_1009(stack: Stack):
    client = await stack.connect()
    await client.send_raw(json.dumps({"action": "heartbeat", "padding": "x" * (40 * KB)}))
    closed = await client.wait_closed(timeout=5)
    assert closed.code == 1009, closed


async def test_message_of_100_kb_in_frames_of_16_kb_is_accepted(stack: Stack):
    client = await stack.connect()
    text = json.dumps({"action": "heartbeat", "padding": "x" * (100 * KB)})
    await client.send_raw([text[i : i + 16 * KB] for i in range(0, len(text), 16 * KB)])
    assert_message(await client.receive(), "heartbeatAck")


async def test_heartbeats_beyond_the_per_connection_limit_are_rate_limited(stack: Stack):
    # GIVEN the default limit of 6 heartbeats a minute per connection
    client = await stack.connect()
    replies = [await client.request("heartbeat") for _ in range(13)]
    # THEN the first 6 are acknowledged, and within 13 (a minute boundary may fall between)
    # one is refused with 429 and a retryAfter
    assert all(reply["type"] == "heartbeatAck" for reply in replies[:6]), replies[:6]
    refused = [reply for reply in replies if reply["type"] == "error"]
    assert refused, "no heartbeat was rate limited"
    assert_error(refused[0], "RATE_LIMIT_EXCEEDED", 429)
    assert refused[0]["retryAfter"] <= 60, refused[0]
