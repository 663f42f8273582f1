"""The DynamoDB repositories: atomic counts, capacity under races, error mapping, TTLs in
epoch seconds, lazy-TTL reads, batch deletes and exactly-once seat release."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from botocore.exceptions import ReadTimeoutError

from session_manager import rules
from session_manager.captions import caption_message
from session_manager.errors import InvalidActionError, SessionFullError, SessionNotFoundError
from session_manager.outcomes import Outcome, Refusal
from session_manager.protocol import JoinSessionRequest, Role, SendCaptionRequest
from tests.unit.harness import (
    FakeClock,
    SerializedClient,
    build,
    connect,
    connection_item,
    create_session,
    join,
    run_in_threads,
    session_item,
    set_listener_count,
    use_clock,
)


def _join(services, session_id):
    def attempt(listener):
        return services.sessions.join_session(listener.caller, JoinSessionRequest(session_id, "es"))

    return attempt


def _listener_items(dynamodb_client, session_id):
    items = dynamodb_client.scan(TableName="ConnectionsTable")["Items"]
    return [i for i in items if i.get("sessionId", {}).get("S") == session_id and i["role"]["S"] == "listener"]


# ---------------------------------------------------------------- concurrency


def test_concurrent_joins_all_land_exactly(services, dynamodb_client):
    # GIVEN a 500-seat session and 40 connected listeners
    _, session_id = create_session(services)
    listeners = [connect(services) for _ in range(40)]

    # WHEN they all join at once
    results = run_in_threads(_join(services, session_id), listeners)

    # THEN every join succeeded, the count is exactly 40 and there are 40 listener items
    assert [r["type"] for r in results] == ["sessionJoined"] * 40
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 40
    assert len(_listener_items(dynamodb_client, session_id)) == 40


def test_racing_joins_never_exceed_the_capacity(dynamodb_client, management_api):
    # GIVEN a 20-seat session and 30 connected listeners
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=20)
    _, session_id = create_session(services)
    listeners = [connect(services) for _ in range(30)]

    # WHEN they all join at once
    results = run_in_threads(_join(services, session_id), listeners)

    # THEN exactly 20 got a seat, 10 were told the session is full, and the count is 20
    joined = [r for r in results if isinstance(r, dict) and r["type"] == "sessionJoined"]
    full = [r for r in results if isinstance(r, SessionFullError)]
    assert (len(joined), len(full)) == (20, 10)
    assert all(e.session_id == session_id for e in full)
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 20
    assert len(_listener_items(dynamodb_client, session_id)) == 20


def test_two_joins_for_the_last_seat_seat_exactly_one(dynamodb_client, management_api):
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=3)
    _, session_id = create_session(services)
    join(services, session_id)
    join(services, session_id)
    contenders = [connect(services), connect(services)]

    results = run_in_threads(_join(services, session_id), contenders)

    assert sorted(type(r).__name__ for r in results) == ["SessionFullError", "dict"]
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 3


def test_a_join_succeeds_again_once_a_listener_leaves(dynamodb_client, management_api):
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=1)
    _, session_id = create_session(services)
    first = join(services, session_id)
    waiting = connect(services)
    with pytest.raises(SessionFullError):
        _join(services, session_id)(waiting)

    services.sessions.leave_session(first.caller)

    assert _join(services, session_id)(waiting)["type"] == "sessionJoined"
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1


# ---------------------------------------------------------------- error mapping


def test_joining_a_missing_session_is_session_not_found(services):
    listener = connect(services)

    with pytest.raises(SessionNotFoundError) as raised:
        _join(services, "nowhere-lamb-123")(listener)

    assert raised.value.session_id == "nowhere-lamb-123"


def test_joining_an_ended_session_is_session_not_found(services):
    speaker, session_id = create_session(services)
    services.sessions.end_session(speaker.caller)

    with pytest.raises(SessionNotFoundError):
        _join(services, session_id)(connect(services))


def test_joining_a_session_past_expires_at_but_not_yet_deleted_is_session_not_found(services, dynamodb_client):
    # GIVEN an active session whose expiresAt has passed (TTL deletion is lazy)
    _, session_id = create_session(services)
    dynamodb_client.update_item(
        TableName="SessionsTable",
        Key={"sessionId": {"S": session_id}},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )

    # WHEN a listener joins THEN it is told the session does not exist
    with pytest.raises(SessionNotFoundError):
        _join(services, session_id)(connect(services))
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0


def test_joining_a_full_session_is_session_full(dynamodb_client, management_api):
    services = build(SerializedClient(dynamodb_client), management_api, max_listeners_per_session=1)
    _, session_id = create_session(services)
    join(services, session_id)

    with pytest.raises(SessionFullError) as raised:
        _join(services, session_id)(connect(services))

    assert raised.value.session_id == session_id


def test_a_repeated_join_for_the_seat_the_connection_holds_is_told_it_is_seated_once(services, dynamodb_client):
    # A retried join (botocore repeats a request whose answer timed out) finds the seat taken by
    # its own first attempt: the client is told the truth, and the seat is counted once.
    _, session_id = create_session(services)
    listener = join(services, session_id)

    reply = _join(services, session_id)(listener)

    assert (reply["type"], reply["sessionId"], reply["targetLanguage"]) == ("sessionJoined", session_id, "es")
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1


def test_a_join_for_another_seat_on_a_seated_connection_is_an_invalid_action(services, dynamodb_client):
    _, session_id = create_session(services)
    listener = join(services, session_id)

    with pytest.raises(InvalidActionError) as raised:
        services.sessions.join_session(listener.caller, JoinSessionRequest(session_id, "fr"))

    assert raised.value.session_id == session_id
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1


def test_the_store_refuses_a_seat_to_a_connection_that_holds_one(services, dynamodb_client):
    # GIVEN a listener of one session
    _, first = create_session(services, user_id="a")
    _, second = create_session(services, user_id="b")
    listener = join(services, first)

    # WHEN the store is asked to seat it in another session
    outcome = services.stores.sessions.add_listener(
        second, listener.connection_id, "fr", int(time.time() * 1000), capacity=500
    )

    # THEN it is refused with the connection as it was, which the domain reads as busy, and
    # nothing was counted
    assert isinstance(outcome, Refusal) and outcome.connection_failed and not outcome.session_failed
    assert outcome.connection.session_id == first
    seat = services.listener.seat_outcome(outcome, second, "fr", 500, int(time.time() * 1000))
    assert seat is Outcome.CONNECTION_BUSY
    assert session_item(dynamodb_client, second)["listenerCount"] == 0
    assert connection_item(dynamodb_client, listener.connection_id)["sessionId"] == first


# ---------------------------------------------------------------- retried writes


class LoseFirstAnswer:
    """A read timeout after DynamoDB applied the write: the SDK's retry sends it again. Registered
    last on the general event, after moto's own before-send handler (botocore calls handlers of a
    more specific event name first), so the first attempt has landed when this raises."""

    def __init__(self, client, operation: str, naming: str) -> None:
        self.lost = 0
        self._event = f"before-send.dynamodb.{operation}"
        self._naming = naming.encode()
        client.meta.events.register_last("before-send", self)

    def __call__(self, request, event_name: str, **_):
        if event_name == self._event and self._naming in request.body and self.lost == 0:
            self.lost += 1
            raise ReadTimeoutError(endpoint_url=request.url)
        return None


def test_a_caption_whose_numbering_answer_was_lost_is_numbered_once(services, dynamodb_client):
    # GIVEN a speaker whose first numbering write lands but whose answer never arrives
    speaker, session_id = create_session(services)
    lost = LoseFirstAnswer(dynamodb_client, "UpdateItem", naming="captionSeq")
    # WHEN it sends two captions (the SDK retries the first)
    captions = services.services.captions
    first = captions.send_caption(speaker.caller, SendCaptionRequest("In the beg", False, "l1"))
    second = captions.send_caption(speaker.caller, SendCaptionRequest("In the beginning", False, "l1"))
    # THEN the retry did not number the line again: 1 then 2, and the session's count is 2
    assert lost.lost == 1
    assert [first.first["seq"], second.first["seq"]] == [1, 2]
    assert session_item(dynamodb_client, session_id)["captionSeq"] == 2


def test_a_final_line_names_the_final_line_before_it_across_partials_and_a_lost_answer(dynamodb_client, management_api):
    # GIVEN a speaker who dictates: a final line, two partials of the next, then its final
    services = build(SerializedClient(dynamodb_client), management_api, captions_table="CaptionsTable")
    speaker, session_id = create_session(services)
    captions = services.services.captions

    def send(text: str, final: bool, line: str):
        return captions.send_caption(speaker.caller, SendCaptionRequest(text, final, line))

    send("In the beginning.", True, "l1")
    send("God", False, "l2")
    send("God created", False, "l2")
    fourth = send("God created the heavens.", True, "l2")
    # AND a final line whose numbering answer is lost (the SDK retries the write)
    lost = LoseFirstAnswer(dynamodb_client, "UpdateItem", naming="lastFinalSeq")
    fifth = send("And the earth.", True, "l3")
    # THEN each final line's caption names the final line before it, partials skipped
    assert lost.lost == 1
    assert [fourth.first["seq"], fifth.first["seq"]] == [4, 5]
    assert [caption_message(line)["previousSeq"] for line in captions.captions.since(session_id, "en", 0, 0)] == [
        0,
        1,
        4,
    ]
    item = session_item(dynamodb_client, session_id)
    assert (item["captionSeq"], item["lastFinalSeq"], item["previousFinalSeq"]) == (5, 5, 4)


# ---------------------------------------------------------------- TTLs in epoch seconds


def test_a_session_expires_two_hours_after_creation_in_epoch_seconds(services, dynamodb_client):
    _, session_id = create_session(services)

    expires_at = int(session_item(dynamodb_client, session_id)["expiresAt"])

    assert abs(expires_at - (time.time() + 7200)) < 5


def test_a_connection_ttl_is_the_session_duration_plus_an_hour_in_epoch_seconds(services, dynamodb_client):
    listener = connect(services)

    ttl = int(connection_item(dynamodb_client, listener.connection_id)["ttl"])

    assert abs(ttl - (time.time() + 7200 + 3600)) < 5


def test_a_rate_limit_window_expires_at_its_end_in_epoch_seconds(services, dynamodb_client):
    clock = FakeClock(time.time() // 60 * 60 + 17)
    use_clock(services, clock)

    connect(services)

    items = dynamodb_client.scan(TableName="RateLimitsTable")["Items"]
    assert [int(item["expiresAt"]["N"]) for item in items] == [int(clock.now) - 17 + 60]


def test_a_session_creation_window_expires_at_the_end_of_its_hour(services, dynamodb_client):
    clock = FakeClock(time.time() // 3600 * 3600 + 5)
    use_clock(services, clock)
    create_session(services)

    items = dynamodb_client.scan(TableName="RateLimitsTable")["Items"]

    assert sorted(int(item["expiresAt"]["N"]) for item in items) == sorted(
        [int(clock.now) - 5 + 60, int(clock.now) - 5 + 3600]
    )


# ---------------------------------------------------------------- lazy TTL


def test_a_connection_item_past_its_ttl_does_not_count(services, dynamodb_client):
    dynamodb_client.put_item(
        TableName="ConnectionsTable",
        Item={
            "connectionId": {"S": "stale="},
            "connectedAt": {"N": str(int(time.time() * 1000) - 4 * 3600 * 1000)},
            "ttl": {"N": str(int(time.time()) - 1)},
        },
    )

    # The store returns it as stored (TTL deletion is lazy); the domain's rule says it is gone.
    stale = services.stores.connections.get("stale=")
    assert stale is not None
    assert not rules.counts(stale, time.time())
    with pytest.raises(InvalidActionError):
        services.sessions.leave_session(replace(connect(services).caller, connection_id="stale="))


def test_a_session_item_past_expires_at_reads_as_not_live(services, dynamodb_client):
    _, session_id = create_session(services)
    now = time.time()

    session = services.stores.sessions.get(session_id)
    assert not rules.is_live(session, now + 7200 + 1)
    assert rules.is_live(session, now)


# ---------------------------------------------------------------- batch delete


def test_releasing_a_seat_twice_decrements_once(services, dynamodb_client):
    _, session_id = create_session(services)
    listener = join(services, session_id)
    join(services, session_id)
    now_ms = int(time.time() * 1000)

    first = services.stores.sessions.remove_listener(
        listener.connection_id, session_id, "es", now_ms, delete_connection=True
    )
    second = services.stores.sessions.remove_listener(
        listener.connection_id, session_id, "es", now_ms, delete_connection=True
    )

    assert (first, second) == (Outcome.DONE, Outcome.ALREADY_DONE)
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1
    assert connection_item(dynamodb_client, listener.connection_id) is None


def test_releasing_a_seat_from_two_threads_decrements_once(services, dynamodb_client):
    _, session_id = create_session(services)
    listener = join(services, session_id)
    join(services, session_id)
    now_ms = int(time.time() * 1000)

    outcomes = run_in_threads(
        lambda _: services.stores.sessions.remove_listener(
            listener.connection_id, session_id, "es", now_ms, delete_connection=True
        ),
        [1, 2],
    )

    assert sorted(outcomes) == sorted([Outcome.DONE, Outcome.ALREADY_DONE])
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 1


def test_releasing_a_seat_never_takes_the_count_below_zero(services, dynamodb_client):
    # GIVEN a listener of a session whose count has drifted to 0
    _, session_id = create_session(services)
    listener = join(services, session_id)
    set_listener_count(dynamodb_client, session_id, 0)

    # WHEN its seat is released
    outcome = services.stores.sessions.remove_listener(
        listener.connection_id, session_id, "es", int(time.time() * 1000), delete_connection=True
    )

    # THEN the count stays 0 and the connection item is still removed
    assert outcome is Outcome.DONE
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0
    assert connection_item(dynamodb_client, listener.connection_id) is None


def test_leaving_keeps_the_connection_but_detaches_it(services, dynamodb_client):
    _, session_id = create_session(services)
    listener = join(services, session_id)

    reply = services.sessions.leave_session(listener.caller)

    assert reply["type"] == "sessionLeft"
    assert reply["sessionId"] == session_id
    item = connection_item(dynamodb_client, listener.connection_id)
    assert item is not None
    assert {"sessionId", "role", "targetLanguage"}.isdisjoint(item)
    assert session_item(dynamodb_client, session_id)["listenerCount"] == 0


def test_a_listener_item_records_its_role_and_language(services, dynamodb_client):
    _, session_id = create_session(services)

    listener = join(services, session_id, "fr")

    item = connection_item(dynamodb_client, listener.connection_id)
    assert (item["sessionId"], item["role"], item["targetLanguage"]) == (session_id, Role.LISTENER.value, "fr")
