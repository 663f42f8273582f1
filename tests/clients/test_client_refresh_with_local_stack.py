"""Forced refreshes on a stack whose connections need one every couple of seconds: the client's
make-before-break moves speaker and listener to new connections again and again while captions
are fanned out to the listener's connections, and the listener shows every line exactly once, in
order, without ever reconnecting."""

from __future__ import annotations

import asyncio
import time

import pytest
from client_event_log import EventLog
from client_stacks import CaptionFanOut, options_for, speaker_token

from live_session_client import ClientState, ListenerClient, NoticeKind, SpeakerClient

pytestmark = pytest.mark.e2e

REFRESHES = 3


def short_options(**overrides):
    return options_for(heartbeat=1.0, ack_timeout=10.0, **overrides)


async def test_repeated_forced_refreshes_lose_no_caption_and_show_none_twice(short_stack):
    url = short_stack["websocketUrl"]
    speaker = SpeakerClient(url, speaker_token(short_stack), options=short_options())
    speaker_log = EventLog(speaker)
    session_id = await speaker.start()
    listener = ListenerClient(url, session_id, "es", short_options(reorder_window=0.5))
    listener_log = EventLog(listener)
    await listener.start()
    # GIVEN captions fanned out to every listener connection of the session, 20 a second
    fan_out = CaptionFanOut(short_stack, session_id)
    stop = asyncio.Event()
    posting = asyncio.create_task(fan_out.run(stop, every=0.05))
    # WHEN both connections are told to refresh, several times over, while lines keep coming
    deadline = time.monotonic() + 60
    while listener.refresh_count < REFRESHES or speaker.refresh_count < REFRESHES or len(fan_out.delivered) < 20:
        assert time.monotonic() < deadline, (listener.refresh_count, speaker.refresh_count)
        assert not posting.done(), posting
        await asyncio.sleep(0.1)
    stop.set()
    await posting
    # THEN the listener showed every line that reached it, once each, in order
    assert len(fan_out.delivered) >= 20
    await listener_log.captions_until(len(fan_out.delivered))
    await asyncio.sleep(1.0)  # room for a duplicate to show up, if one were coming
    assert listener_log.caption_seqs() == fan_out.delivered
    # AND neither client ever dropped out of the session or saw an error
    for log in (listener_log, speaker_log):
        assert ClientState.RECONNECTING not in log.states(), log.describe()
        assert not log.notices(NoticeKind.ERROR), log.describe()
        assert len(log.notices(NoticeKind.REFRESHED)) >= REFRESHES
    # AND the speaker, now on its newest connection, ends the session for the listener once. It
    # ends just after one of the listener's refreshes completes, while its next is not yet due, so
    # that this test sees the plain End; an End that meets a refresh in flight has a test of its
    # own (test_client_refresh_meets_end_with_local_stack.py).
    completed = listener.refresh_count
    deadline = time.monotonic() + 30
    while listener.refresh_count == completed:
        assert time.monotonic() < deadline, "no refresh completed within 30 s"
        await asyncio.sleep(0.02)
    await speaker.end()
    await listener_log.finished()
    assert listener_log.states().count(ClientState.ENDED) == 1
    assert listener_log.events[-1].sentence == "The speaker ended the session."
