"""What the fuzzers send: client frames that are wrong in every way a phone, a browser or an
attacker can make them wrong (wrong types, huge strings, unicode, deep nesting, missing and extra
fields), and the rules every answer to them must keep."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ACTIONS = (
    "createSession",
    "joinSession",
    "heartbeat",
    "refreshConnection",
    "getSessionStatus",
    "endSession",
    "leaveSession",
)
FIELDS = ("sessionId", "targetLanguage", "sourceLanguage", "qualityTier", "role")
REPLY_TYPES = {
    "sessionCreated",
    "sessionJoined",
    "heartbeatAck",
    "connectionRefreshRequired",
    "connectionWarning",
    "connectionRefreshComplete",
    "sessionStatus",
    "sessionEnded",
    "sessionLeft",
    "speakerAway",
    "speakerReturned",
    "error",
}
# What must never reach a client: a trace, a module, an AWS error or a table.
LEAKS = (
    "Traceback",
    'File "',
    "session_manager",
    "botocore",
    "boto3",
    "ClientError",
    "Exception",
    "dynamodb",
    "SessionsTable",
    "ConnectionsTable",
    "RateLimitsTable",
    "line ",
    ".py",
)
MAX_REPLY_BYTES = 128 * 1024

# `make test` runs a few hundred examples across the fuzzers; FUZZ_EXAMPLES=2000 for a long run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=EXAMPLES is None,  # the same examples on every `make test`: a failure is reproducible
        database=None,
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=16,
)
huge_strings = st.sampled_from(
    [
        "x" * 30_000,
        "é" * 10_000,
        "🙏" * 7_000,
        "\u0000" * 1000,
        "\u202e" + "a" * 100,  # right-to-left override
        "faithful-shepherd-427" * 1000,
    ]
)


def plausible_strings(session_ids: list[str]) -> st.SearchStrategy[str]:
    """Near misses of valid values: they reach the checks past the type checks."""
    near = ["es", "en", "EN", "zz", "e1", "eng", "", " ", "standard", "premium", "PREMIUM", "speaker", "listener"]
    near += ["faithful-shepherd-427", "faithful-shepherd-99", "a-b-100", "../../etc/passwd", "' OR 1=1 --"]
    for session_id in session_ids:
        near += [session_id, f"  {session_id.upper()}  ", session_id + "\u0000", session_id[:-1]]
    return st.sampled_from(near)


def field_values(session_ids: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(json_values, huge_strings, plausible_strings(session_ids))


def message_bodies(session_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects with a known action, any subset of the known fields, and extra ones."""
    values = field_values(session_ids)
    return st.builds(
        lambda action, known, extra: {"action": action, **extra, **known},
        st.sampled_from(ACTIONS),
        st.fixed_dictionaries({}, optional={name: values for name in FIELDS}),
        st.dictionaries(st.text(max_size=20), values, max_size=3),
    )


def deeply_nested(depth: int) -> list[str]:
    """Nesting past any recursion limit, still inside one 32 KB frame (kept out of `frames`:
    see the tests that send it, which say why)."""
    return [
        "[" * depth + "]" * depth,
        '{"action": "joinSession", "sessionId": ' + "[" * depth + "]" * depth + "}",
        '{"action": "heartbeat", "extra": ' + '{"a":' * depth + "1" + "}" * depth + "}",
    ]


def frames(session_ids: list[str]) -> st.SearchStrategy[str]:
    """Whole text frames: mostly objects with a known action, and everything else."""
    return st.one_of(
        message_bodies(session_ids).map(json.dumps),
        message_bodies(session_ids).map(lambda body: json.dumps(body, ensure_ascii=False)),
        json_values.map(json.dumps),
        st.text(max_size=200),
        st.sampled_from(['{"action": "joinSession"', "{'action': 'heartbeat'}", "null", "NaN", '{"action": NaN}']),
    )


def assert_safe_reply(reply: Any, frame: str = "") -> None:
    """A reply to anything: a known message type, never a 5xx, never a leak (of what the frame
    did not itself carry: messages may quote what was sent), never too large."""
    assert isinstance(reply, dict), reply
    encoded = json.dumps(reply)
    assert len(encoded.encode()) <= MAX_REPLY_BYTES, f"reply of {len(encoded)} bytes"
    assert "message" not in reply or reply.get("type"), f"a gateway error, not a reply: {reply}"
    assert reply.get("type") in REPLY_TYPES, reply
    if reply["type"] == "error":
        assert reply.get("code") != "INTERNAL_ERROR" and int(reply.get("status", 0)) < 500, reply
        text = json.dumps({key: reply.get(key) for key in ("message", "details", "code")})
        for leak in LEAKS:
            assert leak not in text or leak in frame, f"{leak!r} leaked in {reply}"
