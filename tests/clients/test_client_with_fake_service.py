"""The Python client over real sockets against a scripted service: captions once each and in
order across overlaps and drops, make-before-break refresh, reconnect, missed heartbeat acks,
giving up, the speaker's grace reclaim, and the plain sentences of failures the real server
cannot be made to show on demand."""

from __future__ import annotations

import asyncio

import pytest
from client_event_log import EventLog
from client_fake_service import SESSION_ID, FakeConnection, FakeService, error, quick_options

from live_session_client import (
    ERROR_SENTENCES,
    ClientState,
    ConnectFailedError,
    ListenerClient,
    LiveSessionError,
    NoticeKind,
    RequestRefusedError,
    SpeakerClient,
)
from live_session_client.events import CaptionReceived
from live_session_client.sentences import HANDSHAKE_SENTENCES, STATE_SENTENCES


async def joined_listener(fake: FakeService, **options) -> tuple[ListenerClient, EventLog, FakeConnection]:
    listener = ListenerClient(fake.url, SESSION_ID, "es", quick_options(**options))
    log = EventLog(listener)
    await listener.start()
    return listener, log, await fake.connection(1)


# ---------------------------------------------------------------- captions


async def test_captions_that_cross_are_shown_in_seq_order():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake)
        # WHEN two invocations' lines cross on the wire
        for seq in (1, 3, 2, 4):
            await first.caption(seq)
        # THEN they are shown in seq order
        assert await log.captions_until(4) == [1, 2, 3, 4]
        await listener.close()


async def test_a_caption_received_twice_is_shown_once():
    async with FakeService() as fake:
        _listener, log, first = await joined_listener(fake)
        for seq in (1, 2, 2, 1, 3):
            await first.caption(seq)
        await first.send({"type": "sessionEnded", "sessionId": SESSION_ID, "reason": "speakerEnded", "message": "."})
        await log.finished()
        assert log.caption_seqs() == [1, 2, 3]


async def test_a_gap_that_is_never_filled_delays_the_next_line_only_briefly():
    # GIVEN seq 2 was a partial line for source-language listeners only
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake, reorder_window=0.2)
        await first.caption(1)
        await first.caption(3)
        # THEN line 3 still appears, after the reorder window, without an end or another caption
        assert await log.captions_until(2, timeout=5) == [1, 3]
        await listener.close()


async def test_caption_fields_reach_the_event():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake, reorder_window=0.05)
        await first.caption(7, "Bienvenidos", lineId="L7", untranslated=True)
        event = await log.wait_for(lambda e: hasattr(e, "caption"))
        caption = event.caption
        assert (caption.seq, caption.text, caption.line_id, caption.language) == (7, "Bienvenidos", "L7", "es")
        assert caption.final and caption.untranslated
        assert listener.last_seq == 7
        await listener.close()


# ---------------------------------------------------------------- refresh


async def test_refresh_opens_the_new_connection_before_closing_the_old_and_loses_no_line():
    async with FakeService() as fake:
        gate = asyncio.Event()

        async def complete_when_allowed(connection: FakeConnection, message: dict) -> None:
            await gate.wait()
            await fake._answer_refreshConnection(connection, message)
            # the server replays what came after lastSeq, including a line the old one also got
            for seq in range(message["lastSeq"] + 1, 5):
                await connection.caption(seq)

        fake.responders["refreshConnection"] = complete_when_allowed
        listener, log, old = await joined_listener(fake, reorder_window=0.3)
        await old.caption(1)
        await log.captions_until(1)
        # WHEN the server asks for a refresh
        await old.send(
            {
                "type": "connectionRefreshRequired",
                "sessionId": SESSION_ID,
                "role": "listener",
                "targetLanguage": "es",
                "message": "Refresh.",
            }
        )
        new = await fake.connection(2)
        refresh = await new.next_message("refreshConnection")
        # THEN the new connection names the session, role, language and the last line seen
        assert refresh == {
            "action": "refreshConnection",
            "sessionId": SESSION_ID,
            "role": "listener",
            "targetLanguage": "es",
            "lastSeq": 1,
        }
        # AND while the refresh is pending, the old connection is open and still delivers
        await old.caption(2)
        await log.captions_until(2)
        assert not old.closed.is_set()
        gate.set()
        await asyncio.wait_for(old.closed.wait(), 5)
        assert await log.captions_until(4) == [1, 2, 3, 4]
        assert fake.log.index("close 1") > fake.log.index("refreshConnection 2")
        assert listener.state == ClientState.LIVE and listener.refresh_count == 1
        assert [n.sentence for n in log.notices(NoticeKind.REFRESHED)] == [STATE_SENTENCES["refreshed"]]
        # AND heartbeats now go on the new connection
        await new.next_message("heartbeat")
        await listener.close()


async def test_repeated_refresh_requests_during_a_refresh_start_one_refresh():
    async with FakeService() as fake:
        gate = asyncio.Event()

        async def slow(connection: FakeConnection, message: dict) -> None:
            await gate.wait()
            await fake._answer_refreshConnection(connection, message)

        fake.responders["refreshConnection"] = slow
        required = {
            "type": "connectionRefreshRequired",
            "sessionId": SESSION_ID,
            "role": "listener",
            "targetLanguage": "es",
            "message": "Refresh.",
        }
        listener, log, old = await joined_listener(fake)
        for _ in range(3):
            await old.send(required)
        await (await fake.connection(2)).next_message("refreshConnection")
        await asyncio.sleep(0.3)
        gate.set()
        await log.notice(NoticeKind.REFRESHED)
        assert len(fake.connections) == 2
        await listener.close()


async def test_a_refresh_answered_busy_is_retried_while_the_old_connection_lives():
    async with FakeService() as fake:
        answers = [error("SERVICE_UNAVAILABLE", 503), None]

        async def busy_then_fine(connection: FakeConnection, message: dict) -> None:
            reply = answers.pop(0)
            if reply is None:
                await fake._answer_refreshConnection(connection, message)
            else:
                await connection.send(reply)

        fake.responders["refreshConnection"] = busy_then_fine
        listener, log, old = await joined_listener(fake)
        await old.send(
            {
                "type": "connectionRefreshRequired",
                "sessionId": SESSION_ID,
                "role": "listener",
                "targetLanguage": "es",
                "message": "Refresh.",
            }
        )
        await log.notice(NoticeKind.REFRESHED)
        assert len(log.notices(NoticeKind.REFRESH_RETRY)) == 1
        assert (await fake.connection(2)).closed.is_set()
        await asyncio.wait_for(old.closed.wait(), 5)
        assert listener.state == ClientState.LIVE
        await listener.close()


async def test_speaker_refresh_presents_a_fresh_token_and_keeps_the_session():
    async with FakeService() as fake:
        tokens = iter(["fresh-1", "fresh-2"])
        speaker = SpeakerClient(fake.url, "first", options=quick_options(), token_provider=lambda: next(tokens))
        log = EventLog(speaker)
        assert await speaker.start() == SESSION_ID
        old = await fake.connection(1)
        await old.send(
            {"type": "connectionRefreshRequired", "sessionId": SESSION_ID, "role": "speaker", "message": "Refresh."}
        )
        await log.notice(NoticeKind.REFRESHED)
        new = await fake.connection(2)
        assert old.path.endswith("?token=first") and new.path.endswith("?token=fresh-1")
        assert await new.next_message("refreshConnection") == {
            "action": "refreshConnection",
            "sessionId": SESSION_ID,
            "role": "speaker",
        }
        # AND the session is spoken for from the new connection
        assert await speaker.send_caption("Hello") == 1
        assert (await new.next_message("sendCaption"))["text"] == "Hello"
        await speaker.end()
        assert speaker.state == ClientState.ENDED


# ---------------------------------------------------------------- reconnect


async def test_a_dropped_listener_rejoins_with_its_last_seq_and_shows_replayed_lines_once():
    async with FakeService() as fake:

        async def join_and_replay(connection: FakeConnection, message: dict) -> None:
            await fake._answer_joinSession(connection, message)
            for seq in range(message.get("lastSeq", 0) + 1, 4):
                await connection.caption(seq)

        listener, log, first = await joined_listener(fake)
        await first.caption(1)
        await first.caption(2)
        await log.captions_until(2)
        fake.responders["joinSession"] = join_and_replay
        # WHEN the network drops
        first.abort()
        second = await fake.connection(2)
        rejoin = await second.next_message("joinSession")
        # THEN it joins the same session and language again, naming the last line it has
        assert rejoin == {"action": "joinSession", "sessionId": SESSION_ID, "targetLanguage": "es", "lastSeq": 2}
        await second.caption(2)  # a line the old connection delivered arrives again
        assert await log.captions_until(3) == [1, 2, 3]
        await listener.wait_for_state(ClientState.LIVE, timeout=5)
        assert ClientState.RECONNECTING in log.states() and listener.reconnect_count >= 1
        await listener.close()


async def drop_and_rejoin_with_kept_final_lines(fake: FakeService, first: FakeConnection) -> int:
    """Drop the listener's connection; its rejoin is answered, then sent the kept final lines after
    its lastSeq, each naming the one before it: 4 (after partials 2-3), 7 (after 5-6), 8. The
    lastSeq the rejoin sent."""

    async def join_and_replay(connection: FakeConnection, message: dict) -> None:
        await fake._answer_joinSession(connection, message)
        for seq, previous in ((4, 1), (7, 4), (8, 7)):
            if seq > message["lastSeq"]:
                await connection.caption(seq, previousSeq=previous)

    fake.responders["joinSession"] = join_and_replay
    first.abort()
    second = await fake.connection(2)
    return (await second.next_message("joinSession"))["lastSeq"]


async def test_a_dictated_line_is_shown_at_once_and_a_line_held_at_a_drop_comes_back_with_the_replay():
    async with FakeService() as fake:
        # GIVEN a translated-language listener whose reorder window is far longer than any wait here
        listener, log, first = await joined_listener(fake, reorder_window=30.0)
        await first.caption(1, previousSeq=0)
        await log.captions_until(1)  # the session's first final line: nothing can come before it
        # WHEN a dictated line comes after partial lines it never gets (seqs 2-3)
        await first.caption(4, previousSeq=1)
        # THEN it is shown at once: it names line 1 as the line before it
        assert await log.captions_until(2, timeout=10) == [1, 4]
        # AND WHEN line 8 names 7, which is on its way on the connection that then drops
        await first.caption(8, previousSeq=7)
        # THEN the rejoin asks for what followed 4, the last line before the one still missing
        assert await drop_and_rejoin_with_kept_final_lines(fake, first) == 4
        # AND 7 and 8 are shown once each, in order
        assert await log.captions_until(4) == [1, 4, 7, 8]
        await asyncio.sleep(0.3)
        assert log.caption_seqs() == [1, 4, 7, 8]
        await listener.close()


async def test_a_final_line_found_missing_just_before_a_drop_is_asked_for_again_and_shown_late_once():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake, reorder_window=0.2)
        await first.caption(1, previousSeq=0)
        await first.caption(4, previousSeq=1)
        # GIVEN line 7's invocation is slow: 8, which names it, is shown without it after the window
        await first.caption(8, previousSeq=7)
        assert await log.captions_until(3) == [1, 4, 8]
        # WHEN the connection drops before 7 arrives
        # THEN the rejoin asks for what followed 6, just before the missing line
        assert await drop_and_rejoin_with_kept_final_lines(fake, first) == 6
        # AND 7 is shown (late, for its place), and 8 is not shown again
        assert await log.captions_until(4) == [1, 4, 8, 7]
        await asyncio.sleep(0.3)
        shown = [event.caption for event in log.events if isinstance(event, CaptionReceived)]
        assert [(c.seq, c.late) for c in shown] == [(1, False), (4, False), (8, False), (7, True)]
        await listener.close()


async def test_unanswered_heartbeats_count_as_a_drop():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake, heartbeat=0.1, ack_timeout=0.3)
        # WHEN the server stops answering heartbeats (the TCP connection itself looks fine)
        fake.ack_heartbeats = False
        second = await fake.connection(2)
        fake.ack_heartbeats = True
        # THEN the client gave up on the silent connection and joined again on a new one
        await second.next_message("joinSession")
        await log.state(ClientState.RECONNECTING)
        await listener.wait_for_state(ClientState.LIVE, timeout=5)
        assert first.closed.is_set()
        await listener.close()


async def test_heartbeats_follow_the_interval_while_acknowledged():
    async with FakeService() as fake:
        listener, _, first = await joined_listener(fake, heartbeat=0.05)
        await fake.logged("heartbeat 1")
        while sum(m.get("action") == "heartbeat" for m in first.received) < 3:
            await asyncio.sleep(0.05)
        assert listener.state == ClientState.LIVE and len(fake.connections) == 1
        await listener.close()


async def test_reconnect_gives_up_after_the_time_allowed_with_a_clear_state():
    async with FakeService() as fake:
        listener, log, _ = await joined_listener(fake, give_up_after=0.5)
        # WHEN the service goes away for good
        await fake.stop()
        gave_up = await log.state(ClientState.GAVE_UP)
        # THEN the client says so in a sentence and stops
        assert gave_up.sentence == STATE_SENTENCES["gaveUp"].format(seconds="0.5")
        await log.finished()
        await listener.leave()
        assert listener.state == ClientState.GAVE_UP


async def test_a_listener_whose_session_ended_while_away_stops_with_that_sentence():
    async with FakeService() as fake:
        _listener, log, first = await joined_listener(fake)

        async def gone(connection: FakeConnection, message: dict) -> None:
            await connection.send(error("SESSION_NOT_FOUND", 404, sessionId=SESSION_ID))

        fake.responders["joinSession"] = gone
        first.abort()
        ended = await log.state(ClientState.ENDED)
        assert (ended.sentence, ended.reason) == (STATE_SENTENCES["endedWhileAway"], "endedWhileAway")


async def test_a_rate_limited_rejoin_waits_and_tries_again():
    async with FakeService() as fake:
        listener, _log, first = await joined_listener(fake)
        answers = [error("RATE_LIMIT_EXCEEDED", 429, retryAfter=1), None]

        async def limited_then_fine(connection: FakeConnection, message: dict) -> None:
            if answers.pop(0) is None:
                await fake._answer_joinSession(connection, message)
            else:
                await connection.send(error("RATE_LIMIT_EXCEEDED", 429, retryAfter=1))

        fake.responders["joinSession"] = limited_then_fine
        first.abort()
        await fake.connection(3)
        await listener.wait_for_state(ClientState.LIVE, timeout=10)
        assert listener.reconnect_count == 1
        await listener.close()


# ---------------------------------------------------------------- speaker away and back


async def test_listener_is_told_when_the_speaker_is_away_and_back():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake)
        away = {"type": "speakerAway", "sessionId": SESSION_ID, "reconnectGraceSeconds": 30, "message": "Away."}
        await first.send(away)
        await first.send(away)
        await first.send({"type": "speakerReturned", "sessionId": SESSION_ID})
        returned = await log.notice(NoticeKind.SPEAKER_RETURNED)
        assert returned.sentence == "The speaker is back."
        notices = log.notices(NoticeKind.SPEAKER_AWAY)
        assert [n.sentence for n in notices] == [
            "The speaker's connection dropped. Waiting up to 30 seconds for them to come back."
        ]
        assert listener.state == ClientState.LIVE and not listener.speaker_away
        await listener.close()


def refresh_required() -> dict:
    return {
        "type": "connectionRefreshRequired",
        "sessionId": SESSION_ID,
        "role": "listener",
        "targetLanguage": "es",
        "message": "Refresh.",
    }


async def test_a_slow_close_of_the_old_connection_does_not_make_the_next_refresh_notice_go_unheard():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake, heartbeat=60.0)
        # GIVEN the old connection will not answer its closing handshake (the client waits up to
        # its open timeout, 5 s here, before it drops it)
        first.socket.transport.pause_reading()
        await first.send(refresh_required())
        second = await fake.connection(2)
        await log.notice(NoticeKind.REFRESHED)
        # WHEN the next refresh notice comes while the old connection is still closing
        await second.send(refresh_required())
        # THEN the client refreshes again at once
        third = await fake.connection(3, timeout=3.0)
        await third.next_message("refreshConnection", timeout=3.0)
        assert not first.closed.is_set()
        first.socket.transport.resume_reading()
        await listener.close()


async def test_a_refresh_answer_tells_the_listener_how_the_speaker_is_when_the_notice_missed_it():
    async with FakeService() as fake:
        away = {"speakerAway": True}

        async def complete_with_the_speaker_state(connection: FakeConnection, message: dict) -> None:
            connection.role = "listener"
            await connection.send(
                {"type": "connectionRefreshComplete", "sessionId": SESSION_ID, "role": "listener", **away}
            )

        fake.responders["refreshConnection"] = complete_with_the_speaker_state
        listener, log, first = await joined_listener(fake)
        # WHEN the speaker dropped while the listener refreshed, and only the answer says so
        await first.send(refresh_required())
        # THEN the listener is told the speaker is away
        told = await log.notice(NoticeKind.SPEAKER_AWAY)
        assert told.sentence == "The speaker is reconnecting; the service continues when they are back."
        assert listener.speaker_away
        # AND WHEN the speaker came back during the next refresh, which only its answer says
        await asyncio.wait_for(first.closed.wait(), 5)
        away.clear()
        await (await fake.connection(2)).send(refresh_required())
        # THEN the listener is told the speaker is back, once
        returned = await log.notice(NoticeKind.SPEAKER_RETURNED)
        assert returned.sentence == "The speaker is back."
        assert listener.refresh_count == 2 and not listener.speaker_away
        assert len(log.notices(NoticeKind.SPEAKER_AWAY)) == len(log.notices(NoticeKind.SPEAKER_RETURNED)) == 1
        await listener.close()


async def test_a_speaker_notice_that_came_on_the_new_connection_before_its_answer_wins_over_it():
    async with FakeService() as fake:

        async def returned_overtakes_a_stale_answer(connection: FakeConnection, message: dict) -> None:
            # The speaker came back after the refresh read the session: its speakerReturned
            # (which found the new seat) overtakes the answer, which still says away.
            connection.role = "listener"
            await connection.send({"type": "speakerReturned", "sessionId": SESSION_ID, "message": "Back."})
            await connection.send(
                {"type": "connectionRefreshComplete", "sessionId": SESSION_ID, "role": "listener", "speakerAway": True}
            )

        fake.responders["refreshConnection"] = returned_overtakes_a_stale_answer
        listener, log, first = await joined_listener(fake)
        await first.send({"type": "speakerAway", "sessionId": SESSION_ID, "reconnectGraceSeconds": 30})
        await log.notice(NoticeKind.SPEAKER_AWAY)
        # WHEN the listener refreshes as the speaker comes back
        await first.send(refresh_required())
        await log.notice(NoticeKind.REFRESHED)
        # THEN it is told the speaker is back, and the stale answer does not say otherwise
        assert not listener.speaker_away
        await asyncio.sleep(0.3)  # any notice the answer wrongly caused is in the log by now
        assert len(log.notices(NoticeKind.SPEAKER_AWAY)) == len(log.notices(NoticeKind.SPEAKER_RETURNED)) == 1
        await listener.close()


async def test_a_rejoin_after_a_drop_tells_the_listener_the_speaker_came_back_meanwhile():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake)
        await first.send({"type": "speakerAway", "sessionId": SESSION_ID, "reconnectGraceSeconds": 30})
        await log.notice(NoticeKind.SPEAKER_AWAY)
        # WHEN the listener's connection drops, and the speaker returns before it rejoins
        first.abort()
        # THEN the rejoin's answer (no speakerAway) tells it the speaker is back
        returned = await log.notice(NoticeKind.SPEAKER_RETURNED)
        assert returned.sentence == "The speaker is back."
        assert listener.state == ClientState.LIVE and not listener.speaker_away
        await listener.close()


async def test_a_dropped_speaker_reclaims_its_session_from_a_new_connection():
    async with FakeService() as fake:
        speaker = SpeakerClient(fake.url, "token", options=quick_options())
        log = EventLog(speaker)
        await speaker.start()
        first = await fake.connection(1)
        first.abort()
        second = await fake.connection(2)
        assert await second.next_message("refreshConnection") == {
            "action": "refreshConnection",
            "sessionId": SESSION_ID,
            "role": "speaker",
        }
        await log.wait_for(lambda e: getattr(e, "sentence", "") == f"Reconnected; back in session {SESSION_ID}.")
        assert speaker.state == ClientState.LIVE and speaker.reconnect_count == 1
        await speaker.end()


async def test_a_speaker_back_after_the_grace_learns_the_session_ended():
    async with FakeService() as fake:
        speaker = SpeakerClient(fake.url, "token", options=quick_options())
        log = EventLog(speaker)
        await speaker.start()

        async def gone(connection: FakeConnection, message: dict) -> None:
            await connection.send(error("SESSION_NOT_FOUND", 404, sessionId=SESSION_ID))

        fake.responders["refreshConnection"] = gone
        (await fake.connection(1)).abort()
        ended = await log.state(ClientState.ENDED)
        assert ended.sentence == "The session ended while this client was disconnected."


# ---------------------------------------------------------------- refusals as sentences


@pytest.mark.parametrize("status", [401, 429, 503, 500])
async def test_a_refused_handshake_is_told_in_its_sentence(status: int):
    async with FakeService() as fake:
        fake.refuse_status = status
        listener = ListenerClient(fake.url, SESSION_ID, "es", quick_options(give_up_after=0.3))
        log = EventLog(listener)
        with pytest.raises(ConnectFailedError) as refused:
            await listener.start()
        assert refused.value.sentence == HANDSHAKE_SENTENCES[status]
        assert (await log.state(ClientState.FAILED)).sentence == HANDSHAKE_SENTENCES[status]


@pytest.mark.parametrize("code", ["SERVICE_UNAVAILABLE", "INTERNAL_ERROR", "SESSION_FULL", "FORBIDDEN"])
async def test_a_refused_join_is_told_in_its_sentence(code: str):
    async with FakeService() as fake:

        async def refuse(connection: FakeConnection, message: dict) -> None:
            await connection.send(error(code, 503))

        fake.responders["joinSession"] = refuse
        listener = ListenerClient(fake.url, SESSION_ID, "es", quick_options())
        with pytest.raises(RequestRefusedError) as refused:
            await listener.start()
        assert (refused.value.code, refused.value.sentence) == (code, ERROR_SENTENCES[code])
        assert listener.state == ClientState.FAILED


async def test_api_gateways_crash_reply_without_a_type_reads_as_an_internal_error():
    async with FakeService() as fake:

        async def crash(connection: FakeConnection, message: dict) -> None:
            await connection.send_raw('{"message": "Internal server error", "connectionId": "C1", "requestId": "R"}')

        fake.responders["joinSession"] = crash
        listener = ListenerClient(fake.url, SESSION_ID, "es", quick_options())
        with pytest.raises(RequestRefusedError) as refused:
            await listener.start()
        assert refused.value.sentence == ERROR_SENTENCES["INTERNAL_ERROR"]


async def test_an_unrequested_error_becomes_a_notice_and_the_client_stays():
    async with FakeService() as fake:
        listener, log, first = await joined_listener(fake)
        await first.send(error("RATE_LIMIT_EXCEEDED", 429, message="Too many heartbeats.", retryAfter=23))
        notice = await log.notice(NoticeKind.ERROR)
        assert notice.sentence == "Too many tries from here. Wait 23 seconds and try again."
        assert listener.state == ClientState.LIVE
        await listener.close()


async def test_an_unreachable_service_is_told_after_trying_for_the_time_allowed():
    async with FakeService() as fake:
        url = fake.url
    listener = ListenerClient(url, SESSION_ID, "es", quick_options(give_up_after=0.3))
    with pytest.raises(ConnectFailedError) as failed:
        await listener.start()
    assert failed.value.sentence == f"Cannot reach the server at {url}. Check the address and the network."


# ---------------------------------------------------------------- ending


async def test_leave_sends_leave_session_and_ends_in_left():
    async with FakeService() as fake:
        listener, _log, first = await joined_listener(fake)
        await listener.leave()
        assert [m["action"] for m in first.received if m["action"] != "heartbeat"] == ["joinSession", "leaveSession"]
        assert listener.state == ClientState.LEFT
        await asyncio.wait_for(first.closed.wait(), 5)


async def test_the_session_ending_is_shown_once_even_when_both_connections_of_a_refresh_hear_it():
    async with FakeService() as fake:
        gate = asyncio.Event()

        async def never(connection: FakeConnection, message: dict) -> None:
            await gate.wait()

        fake.responders["refreshConnection"] = never
        _listener, log, old = await joined_listener(fake)
        await old.send(
            {
                "type": "connectionRefreshRequired",
                "sessionId": SESSION_ID,
                "role": "listener",
                "targetLanguage": "es",
                "message": "Refresh.",
            }
        )
        new = await fake.connection(2)
        await new.next_message("refreshConnection")
        ended = {"type": "sessionEnded", "sessionId": SESSION_ID, "reason": "expired", "message": "."}
        await old.send(ended)
        await new.send(ended)
        events = await log.finished()
        assert log.states().count(ClientState.ENDED) == 1
        assert events[-1].sentence == "The session reached its time limit and has ended."
        gate.set()


REFRESH_LISTENER = {
    "type": "connectionRefreshRequired",
    "sessionId": SESSION_ID,
    "role": "listener",
    "targetLanguage": "es",
    "message": "Refresh.",
}


async def test_a_refresh_that_finds_the_session_gone_ends_with_the_notice_the_old_connection_brings():
    async with FakeService() as fake:
        _listener, log, old = await joined_listener(fake)

        ended = {"type": "sessionEnded", "sessionId": SESSION_ID, "reason": "speakerEnded", "message": "."}

        async def notice_after(refused: FakeConnection) -> None:
            await refused.closed.wait()  # the client closes the refused connection, then acts on the answer
            await asyncio.sleep(0.2)  # not a measurement: a client that did not wait would have ended by now
            await old.send(ended)

        async def ended_meanwhile(connection: FakeConnection, message: dict) -> None:
            # The speaker's End reached the server just before this refresh did, and its notice
            # reaches the old connection only after the refresh's answer.
            await connection.send(error("SESSION_NOT_FOUND", 404, sessionId=SESSION_ID))
            telling.append(asyncio.create_task(notice_after(connection)))

        telling: list[asyncio.Task] = []
        fake.responders["refreshConnection"] = ended_meanwhile
        # WHEN a refresh is answered SESSION_NOT_FOUND while the old connection is open
        await old.send(REFRESH_LISTENER)
        events = await log.finished()
        # THEN the listener ends once, as a listener connected at the End does: with its reason
        assert log.states().count(ClientState.ENDED) == 1
        assert (events[-1].sentence, events[-1].reason) == ("The speaker ended the session.", "speakerEnded")
        await asyncio.wait_for(old.closed.wait(), 5)
        await telling[0]


async def test_a_refresh_that_finds_the_session_gone_ends_while_away_when_no_notice_follows():
    async with FakeService() as fake:
        _listener, log, old = await joined_listener(fake)

        async def gone(connection: FakeConnection, message: dict) -> None:
            await connection.send(error("SESSION_NOT_FOUND", 404, sessionId=SESSION_ID))

        fake.responders["refreshConnection"] = gone
        # WHEN a refresh is answered SESSION_NOT_FOUND and the old connection stays silent
        await old.send(REFRESH_LISTENER)
        events = await log.finished()
        # THEN after a bounded wait the listener ends with the sentence for a session that ended unseen
        assert log.states().count(ClientState.ENDED) == 1
        assert (events[-1].sentence, events[-1].reason) == (STATE_SENTENCES["endedWhileAway"], "endedWhileAway")
        # AND it closes the old connection rather than keeping it
        await asyncio.wait_for(old.closed.wait(), 5)


async def test_a_refresh_that_finds_the_session_gone_as_the_old_connection_drops_ends_while_away_without_reconnecting():
    async with FakeService() as fake:
        _listener, log, old = await joined_listener(fake)

        async def gone_and_old_dropped(connection: FakeConnection, message: dict) -> None:
            await connection.send(error("SESSION_NOT_FOUND", 404, sessionId=SESSION_ID))
            old.abort()

        fake.responders["refreshConnection"] = gone_and_old_dropped
        await old.send(REFRESH_LISTENER)
        events = await log.finished()
        assert log.states().count(ClientState.ENDED) == 1
        assert events[-1].reason == "endedWhileAway"
        # AND the drop during the wait did not start a reconnect
        assert ClientState.RECONNECTING not in log.states()
        assert len(fake.connections) == 2


REFRESH_SPEAKER = {"type": "connectionRefreshRequired", "sessionId": SESSION_ID, "role": "speaker", "message": "."}


async def test_a_request_in_flight_is_answered_on_its_connection_before_a_refresh_switches():
    async with FakeService() as fake:
        gate = asyncio.Event()

        async def slow_accept(connection: FakeConnection, message: dict) -> None:
            await gate.wait()
            await fake._answer_sendCaption(connection, message)

        fake.responders["sendCaption"] = slow_accept
        speaker = SpeakerClient(fake.url, "token", options=quick_options())
        log = EventLog(speaker)
        await speaker.start()
        old = await fake.connection(1)
        sending = asyncio.create_task(speaker.send_caption("In flight"))
        await old.next_message("sendCaption")
        # WHEN a refresh is due while the caption waits for its answer
        await old.send(REFRESH_SPEAKER)
        await fake.connection(2)
        await asyncio.sleep(0.3)
        # THEN the new connection does not take the session over until the answer is in
        assert "refreshConnection 2" not in fake.log
        gate.set()
        assert await sending == 1
        await log.notice(NoticeKind.REFRESHED)
        assert fake.log.index("refreshConnection 2") > fake.log.index("sendCaption 1")
        await speaker.end()
        assert "endSession 2" in fake.log


async def test_a_request_made_during_a_refresh_goes_out_on_the_new_connection():
    async with FakeService() as fake:
        gate = asyncio.Event()

        async def slow_refresh(connection: FakeConnection, message: dict) -> None:
            await gate.wait()
            await fake._answer_refreshConnection(connection, message)

        fake.responders["refreshConnection"] = slow_refresh
        speaker = SpeakerClient(fake.url, "token", options=quick_options())
        await speaker.start()
        old = await fake.connection(1)
        await old.send(REFRESH_SPEAKER)
        new = await fake.connection(2)
        await new.next_message("refreshConnection")
        # WHEN the speaker sends a line while the refresh is pending
        sending = asyncio.create_task(speaker.send_caption("During the switch"))
        await asyncio.sleep(0.3)
        assert not any(m["action"] == "sendCaption" for m in old.received)
        gate.set()
        # THEN it goes out once, on the connection that now holds the session
        assert await sending == 1
        assert [m["text"] for m in new.received if m["action"] == "sendCaption"] == ["During the switch"]
        assert not any(m["action"] == "sendCaption" for m in old.received)
        await speaker.end()


async def test_a_connection_lost_before_the_join_answer_is_replaced_and_the_join_sent_again():
    async with FakeService() as fake:
        dropped = []

        async def drop_first(connection: FakeConnection, message: dict) -> None:
            if not dropped:
                dropped.append(connection.index)
                connection.abort()
                return
            await fake._answer_joinSession(connection, message)

        fake.responders["joinSession"] = drop_first
        listener = ListenerClient(fake.url, SESSION_ID, "es", quick_options())
        joined = await listener.start()
        assert joined["connectionId"] == "C2" and dropped == [1]
        assert listener.state == ClientState.LIVE
        await listener.close()


async def test_a_create_whose_connection_keeps_dropping_fails_after_the_time_allowed():
    async with FakeService() as fake:

        async def drop(connection: FakeConnection, message: dict) -> None:
            connection.abort()

        fake.responders["createSession"] = drop
        speaker = SpeakerClient(fake.url, "token", options=quick_options(give_up_after=0.5))
        log = EventLog(speaker)
        with pytest.raises(LiveSessionError):
            await speaker.start()
        assert (await log.state(ClientState.FAILED)).sentence == "The connection closed before the server answered."
        assert len(fake.connections) >= 2


async def test_a_late_caption_accepted_for_an_earlier_line_does_not_answer_the_next_line():
    async with FakeService() as fake:
        unanswered: list[dict] = []

        async def answer_late(connection, message):
            if not unanswered:  # the first line's answer is lost: no answer in time
                unanswered.append(message)
                return
            # the first line's answer turns up after all, just before this line's own
            await connection.send({"type": "captionAccepted", "seq": 1, "lineId": unanswered[0]["lineId"]})
            await connection.send({"type": "captionAccepted", "seq": 2, "lineId": message["lineId"]})

        fake.responders["sendCaption"] = answer_late
        speaker = SpeakerClient(fake.url, "token", options=quick_options())
        await speaker.start()
        with pytest.raises(LiveSessionError):
            await speaker.send_caption("one", line_id="line-a")
        assert await speaker.send_caption("two", line_id="line-b") == 2
        await speaker.end()
