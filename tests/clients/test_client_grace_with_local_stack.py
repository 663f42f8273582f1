"""The speaker reconnect grace through the Python client, on the real local stack: a speaker
whose network drops reclaims its session and the listeners only see a notice; one that stays
away too long learns the session ended, and so do its listeners."""

from __future__ import annotations

import pytest
from client_event_log import EventLog
from client_stacks import new_address, options_for, speaker_token
from client_tcp_proxy import CuttableNetwork

from live_session_client import ClientState, ListenerClient, NoticeKind, SpeakerClient
from live_session_client.sentences import STATE_SENTENCES

pytestmark = pytest.mark.e2e


async def test_a_speaker_whose_network_drops_reclaims_the_session_and_listeners_only_see_a_notice(stack):
    url = stack["websocketUrl"]
    async with CuttableNetwork("127.0.0.1", stack["port"], source_address=new_address()) as network:
        # GIVEN a speaker on a network that can fail, and a listener
        speaker = SpeakerClient(network.url_for(url), speaker_token(stack), options=options_for())
        speaker_log = EventLog(speaker)
        session_id = await speaker.start()
        listener = ListenerClient(url, session_id, "es", options_for())
        listener_log = EventLog(listener)
        await listener.start()
        # WHEN the speaker's network goes down
        await network.down()
        # THEN the listener is told the speaker is away, for the grace the server allows
        away = await listener_log.notice(NoticeKind.SPEAKER_AWAY)
        assert away.sentence == STATE_SENTENCES["speakerAway"].format(reconnectGraceSeconds=30)
        # AND someone arriving meanwhile may still join, and is told too
        latecomer = ListenerClient(url, session_id, "fr", options_for())
        latecomer_log = EventLog(latecomer)
        joined = await latecomer.start()
        assert joined.get("speakerAway") is True
        assert (await latecomer_log.notice(NoticeKind.SPEAKER_AWAY)).sentence == STATE_SENTENCES["speakerAwayOnJoin"]
        await speaker_log.state(ClientState.RECONNECTING)
        # WHEN the network comes back within the grace
        await network.up()
        # THEN the speaker reclaims the session from a new connection, and both listeners hear it
        await speaker.wait_for_state(ClientState.LIVE, timeout=30)
        assert speaker.reconnect_count == 1
        for log in (listener_log, latecomer_log):
            assert (await log.notice(NoticeKind.SPEAKER_RETURNED)).sentence == STATE_SENTENCES["speakerReturned"]
        assert listener_log.states() == [ClientState.CONNECTING, ClientState.JOINING, ClientState.LIVE]
        # AND the reclaimed session is the speaker's to run and end
        status = await speaker.status()
        assert (status["listenerCount"], status["languageDistribution"]) == (2, {"es": 1, "fr": 1})
        await speaker.end()
    for log in (listener_log, latecomer_log):
        ended = await log.state(ClientState.ENDED)
        assert ended.reason == "speakerEnded"


async def test_a_speaker_away_past_the_grace_finds_the_session_ended_and_so_do_its_listeners(short_stack):
    url = short_stack["websocketUrl"]
    quick = {"heartbeat": 1.0, "ack_timeout": 10.0}
    async with CuttableNetwork("127.0.0.1", short_stack["port"], source_address=new_address()) as network:
        speaker = SpeakerClient(network.url_for(url), speaker_token(short_stack), options=options_for(**quick))
        speaker_log = EventLog(speaker)
        session_id = await speaker.start()
        listener = ListenerClient(url, session_id, "es", options_for(**quick))
        listener_log = EventLog(listener)
        await listener.start()
        # WHEN the speaker's network stays down longer than the 2 s grace
        await network.down()
        away = await listener_log.notice(NoticeKind.SPEAKER_AWAY)
        assert away.message["reconnectGraceSeconds"] == 2
        # THEN the sweep ends the session for the listener
        ended = await listener_log.state(ClientState.ENDED, timeout=30)
        if ClientState.RECONNECTING in listener_log.states():
            # the loaded test machine dropped the listener too; its rejoin found the session gone
            assert (ended.reason, ended.sentence) == ("endedWhileAway", STATE_SENTENCES["endedWhileAway"])
        else:
            assert (ended.reason, ended.sentence) == (
                "speakerDisconnected",
                "The speaker disconnected and did not come back, so the session has ended.",
            )
        assert not listener_log.notices(NoticeKind.SPEAKER_RETURNED)
        # AND the speaker, back on the network, is told it ended while it was away
        await network.up()
        speaker_ended = await speaker_log.state(ClientState.ENDED, timeout=30)
        assert (speaker_ended.reason, speaker_ended.sentence) == ("endedWhileAway", STATE_SENTENCES["endedWhileAway"])
