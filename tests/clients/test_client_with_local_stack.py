"""The Python client and CLI against the real local stack over real sockets: join and leave,
`speak` as a subprocess ended with Ctrl-C, `listen` printing what a listener sees, a listener
rejoining after the server or the network kills its socket, giving up when the network stays
down, and each error the stack can be made to answer turned into its sentence."""

from __future__ import annotations

import asyncio
import time

import pytest
from client_event_log import EventLog
from client_processes import CliProcess
from client_stacks import delete_connection, new_address, options_for, speaker_token
from client_tcp_proxy import CuttableNetwork

from live_session_client import (
    ERROR_SENTENCES,
    ClientState,
    ConnectFailedError,
    ListenerClient,
    RequestRefusedError,
    SpeakerClient,
)
from live_session_client.sentences import HANDSHAKE_SENTENCES, STATE_SENTENCES

pytestmark = pytest.mark.e2e


async def live_speaker(stack, **options) -> tuple[SpeakerClient, str]:
    speaker = SpeakerClient(stack["websocketUrl"], speaker_token(stack), options=options_for(**options))
    return speaker, await speaker.start()


async def status_when(speaker: SpeakerClient, condition, timeout: float = 20.0) -> dict:
    """Poll getSessionStatus until the condition holds ($disconnect runs after a close returns)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await speaker.status()
        if condition(status):
            return status
        assert time.monotonic() < deadline, f"status never met the condition: {status}"
        await asyncio.sleep(0.2)


async def test_a_listener_joins_with_a_typed_id_and_leaves(stack):
    speaker, session_id = await live_speaker(stack)
    # WHEN a listener types the id in capitals with spaces
    listener = ListenerClient(stack["websocketUrl"], session_id.upper().replace("-", " "), "es", options_for())
    log = EventLog(listener)
    joined = await listener.start()
    # THEN it is in the session, and the speaker sees it
    assert (joined["sessionId"], joined["targetLanguage"], joined["sourceLanguage"]) == (session_id, "es", "en")
    assert listener.state == ClientState.LIVE
    status = await speaker.status()
    assert (status["listenerCount"], status["languageDistribution"]) == (1, {"es": 1})
    # WHEN it leaves THEN its seat is free again
    await listener.leave()
    assert log.states() == [ClientState.CONNECTING, ClientState.JOINING, ClientState.LIVE, ClientState.LEFT]
    await status_when(speaker, lambda s: s["listenerCount"] == 0)
    await speaker.end()
    assert speaker.state == ClientState.ENDED


async def test_speak_cli_creates_a_session_and_ctrl_c_ends_it_for_its_listeners(stack):
    # GIVEN `speak` running as a program
    speak = await CliProcess.start("speak", "--url", stack["websocketUrl"], "--token", speaker_token(stack))
    try:
        session_id = (await speak.line_matching(r"^Session (\S+) is live"))[1]
        listener = ListenerClient(stack["websocketUrl"], session_id, "fr", options_for())
        log = EventLog(listener)
        await listener.start()
        # WHEN the person presses Ctrl-C
        speak.interrupt()
        status, lines, stderr = await speak.finish()
    finally:
        await speak.kill()
    # THEN the program ended the session and exited 0, and the listener was told
    assert status == 0, (lines, stderr)
    assert lines[-2:] == ["Ending the session ...", "The speaker ended the session."]
    ended = await log.state(ClientState.ENDED)
    assert (ended.reason, ended.sentence) == ("speakerEnded", "The speaker ended the session.")


async def test_listen_cli_prints_what_a_listener_sees(stack):
    speaker, session_id = await live_speaker(stack)
    listen = await CliProcess.start("listen", "--url", stack["websocketUrl"], "--session", session_id, "--lang", "de")
    try:
        await listen.line_matching(rf"^Listening to session {session_id} in de, spoken in en\.$")
        await status_when(speaker, lambda s: s["languageDistribution"] == {"de": 1})
        await speaker.end()
        status, lines, stderr = await listen.finish()
    finally:
        await listen.kill()
    assert status == 0, stderr
    assert lines == [
        f"Connecting to {stack['websocketUrl']} ...",
        f"Joining session {session_id} (de) ...",
        f"Listening to session {session_id} in de, spoken in en.",
        "The speaker ended the session.",
    ]


async def test_a_listener_whose_socket_the_server_closes_rejoins_the_same_session_and_language(stack):
    speaker, session_id = await live_speaker(stack)
    listener = ListenerClient(stack["websocketUrl"], session_id, "pt", options_for())
    log = EventLog(listener)
    joined = await listener.start()
    # WHEN the server closes the listener's connection (DeleteConnection on the management API)
    await delete_connection(stack, joined["connectionId"])
    # THEN the listener reconnects and joins again, and holds one seat in its language
    await log.state(ClientState.RECONNECTING)
    await listener.wait_for_state(ClientState.LIVE, timeout=30)
    assert listener.reconnect_count == 1 and listener.connection_id != joined["connectionId"]
    await status_when(speaker, lambda s: (s["listenerCount"], s["languageDistribution"]) == (1, {"pt": 1}))
    # AND the session's end reaches it once
    await speaker.end()
    await log.finished()
    assert log.states().count(ClientState.ENDED) == 1


async def test_a_listener_cut_off_by_the_network_rejoins_by_itself(stack):
    speaker, session_id = await live_speaker(stack)
    async with CuttableNetwork("127.0.0.1", stack["port"], source_address=new_address()) as network:
        listener = ListenerClient(network.url_for(stack["websocketUrl"]), session_id, "es", options_for())
        log = EventLog(listener)
        await listener.start()
        # WHEN the network drops every connection without a close on either side
        network.cut()
        # THEN the listener rejoins through the network once it carries again
        await log.state(ClientState.RECONNECTING)
        await listener.wait_for_state(ClientState.LIVE, timeout=30)
        assert network.connections_made == 2 and listener.reconnect_count == 1
        await status_when(speaker, lambda s: s["listenerCount"] == 1)
        await listener.leave()
    await speaker.end()


async def test_a_listener_gives_up_with_a_clear_state_when_the_network_stays_down(stack):
    speaker, session_id = await live_speaker(stack)
    async with CuttableNetwork("127.0.0.1", stack["port"], source_address=new_address()) as network:
        listener = ListenerClient(
            network.url_for(stack["websocketUrl"]), session_id, "es", options_for(give_up_after=2.0)
        )
        log = EventLog(listener)
        await listener.start()
        # WHEN the network goes down for longer than the client is allowed to try
        await network.down()
        gave_up = await log.state(ClientState.GAVE_UP, timeout=30)
    # THEN it stops in GAVE_UP with a sentence saying what to do, after trying more than once
    assert gave_up.sentence == STATE_SENTENCES["gaveUp"].format(seconds="2")
    assert log.states().count(ClientState.RECONNECTING) >= 2
    assert listener.state == ClientState.GAVE_UP
    await speaker.end()


async def test_a_dropped_speaker_without_a_grace_period_learns_the_session_ended(stack):
    # The shared stack runs the template's default grace; this test holds whichever way it is set
    # only for the client's part: it either reclaims the session or says it ended while away.
    token = speaker_token(stack)
    async with CuttableNetwork("127.0.0.1", stack["port"], source_address=new_address()) as network:
        speaker = SpeakerClient(network.url_for(stack["websocketUrl"]), token, options=options_for())
        log = EventLog(speaker)
        await speaker.start()
        network.cut()
        await log.state(ClientState.RECONNECTING)
        final = await speaker.wait_for_state(ClientState.LIVE, ClientState.ENDED, timeout=30)
        if final == ClientState.ENDED:
            assert log.events[-1].sentence == STATE_SENTENCES["endedWhileAway"]
        else:
            await speaker.end()


# ---------------------------------------------------------------- errors as sentences


async def refused_join(stack, session_id: str, language: str = "es", address: str | None = None):
    listener = ListenerClient(stack["websocketUrl"], session_id, language, options_for(address=address))
    log = EventLog(listener)
    with pytest.raises(RequestRefusedError) as refused:
        await listener.start()
    failed = await log.state(ClientState.FAILED)
    assert failed.sentence == refused.value.sentence
    return refused.value


async def test_an_unknown_session_id_is_told_in_its_sentence(stack):
    refused = await refused_join(stack, "unheard-nowhere-101")
    assert (refused.code, refused.sentence) == ("SESSION_NOT_FOUND", ERROR_SENTENCES["SESSION_NOT_FOUND"])


async def test_a_malformed_session_id_is_told_in_its_sentence(stack):
    refused = await refused_join(stack, "shepherd427")
    assert (refused.code, refused.sentence) == ("INVALID_SESSION_ID", ERROR_SENTENCES["INVALID_SESSION_ID"])


async def test_a_language_without_a_voice_is_told_in_its_sentence(stack):
    _, session_id = await live_speaker(stack)
    refused = await refused_join(stack, session_id, "sw")
    assert (refused.code, refused.sentence) == ("UNSUPPORTED_LANGUAGE", ERROR_SENTENCES["UNSUPPORTED_LANGUAGE"])


async def test_a_full_session_is_told_in_its_sentence(stack):
    _, session_id = await live_speaker(stack)
    seated = [ListenerClient(stack["websocketUrl"], session_id, "es", options_for()) for _ in range(3)]
    for listener in seated:
        await listener.start()
    refused = await refused_join(stack, session_id)
    assert (refused.code, refused.sentence) == ("SESSION_FULL", ERROR_SENTENCES["SESSION_FULL"])
    for listener in seated:
        await listener.close()


async def test_too_many_failed_joins_are_told_with_the_wait(stack):
    address = new_address()
    for _ in range(3):
        await refused_join(stack, "unheard-nowhere-102", address=address)
    refused = await refused_join(stack, "unheard-nowhere-103", address=address)
    assert refused.code == "RATE_LIMIT_EXCEEDED" and 1 <= refused.retry_after <= 60
    assert refused.sentence == f"Too many tries from here. Wait {refused.retry_after} seconds and try again."


async def test_a_refused_speaker_token_is_told_in_its_sentence(stack):
    speaker = SpeakerClient(stack["websocketUrl"], "not-a-jwt", options=options_for())
    log = EventLog(speaker)
    with pytest.raises(ConnectFailedError) as refused:
        await speaker.start()
    assert (refused.value.status, refused.value.sentence) == (401, HANDSHAKE_SENTENCES[401])
    assert (await log.state(ClientState.FAILED)).sentence == HANDSHAKE_SENTENCES[401]


async def test_a_session_ended_by_its_speaker_cannot_be_ended_twice(stack):
    speaker, _ = await live_speaker(stack)
    assert (await speaker.end())["reason"] == "speakerEnded"
    assert await speaker.end() is None
