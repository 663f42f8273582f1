"""Each function starts with exactly the environment template.yaml gives it. Only the functions
that keep rate limits get RATE_LIMIT_KEY_SECRET_ARN (and the permission to read it): the others
must serve without any rate-limit key."""

from __future__ import annotations

from tests.monitoring.conftest import _refresh_per_environment_caches
from tests.monitoring.test_metrics import SPEAKER, create_session, join


def without_rate_limit_key(monkeypatch) -> None:
    monkeypatch.delenv("RATE_LIMIT_KEY_SECRET", raising=False)
    monkeypatch.delenv("RATE_LIMIT_KEY_SECRET_ARN", raising=False)
    _refresh_per_environment_caches()


def test_functions_without_rate_limits_serve_without_the_key(stack, monkeypatch):
    session_id = create_session(stack)
    join(stack, session_id, "listener-1=")
    without_rate_limit_key(monkeypatch)

    stack.send("heartbeat", "listener-1=", "heartbeat", {"action": "heartbeat"})
    assert stack.messages_to("listener-1=")[-1]["type"] == "heartbeatAck"
    stack.send(
        "get_session_status", "speaker-conn=", "getSessionStatus", {"action": "getSessionStatus"}, user_id=SPEAKER
    )
    assert stack.messages_to("speaker-conn=")[-1]["type"] == "sessionStatus"
    stack.send("leave_session", "listener-1=", "leaveSession", {"action": "leaveSession"})
    assert stack.messages_to("listener-1=")[-1]["type"] != "error"
    stack.send("default_route", "listener-1=", "$default", {"action": "nope"})
    assert stack.messages_to("listener-1=")[-1]["code"] == "INVALID_ACTION"
    stack.send("end_session", "speaker-conn=", "endSession", {"action": "endSession"}, user_id=SPEAKER)
    assert stack.messages_to("speaker-conn=")[-1]["type"] == "sessionEnded"
    assert stack.send("disconnect", "listener-1=", "$disconnect") == {"statusCode": 200}
    report = stack.invoke("sweeper", {"source": "aws.events", "detail-type": "Scheduled Event"})
    assert not report.get("errors")
