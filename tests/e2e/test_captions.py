"""Live captions over real sockets, through the local stack's Translate emulator (its output is
the text marked with its language: `[es] ...`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .client import Stack
from .stacks import started_stack


async def captions(client, count: int) -> list[dict]:
    return [await client.expect("caption") for _ in range(count)]


async def test_each_language_gets_its_lines_in_order_and_the_speaker_gets_their_numbers(stack: Stack):
    speaker, created = await stack.speaker_with_session(source_language="en")
    session_id = created["sessionId"]
    english = await stack.listener_in(session_id, "en")
    spanish = await stack.listener_in(session_id, "es")
    french = await stack.listener_in(session_id, "fr")

    accepted = [await speaker.request("sendCaption", text=text) for text in ("Grace and peace", "to you")]

    assert [(a["type"], a["seq"]) for a in accepted] == [("captionAccepted", 1), ("captionAccepted", 2)]
    assert [c["text"] for c in await captions(english, 2)] == ["Grace and peace", "to you"]
    assert [c["text"] for c in await captions(spanish, 2)] == ["[es] Grace and peace", "[es] to you"]
    lines = await captions(french, 2)
    assert [(c["seq"], c["language"], c["sessionId"]) for c in lines] == [(1, "fr", session_id), (2, "fr", session_id)]


async def test_a_line_in_progress_reaches_only_the_source_language(stack: Stack):
    speaker, created = await stack.speaker_with_session(source_language="en")
    session_id = created["sessionId"]
    english = await stack.listener_in(session_id, "en")
    spanish = await stack.listener_in(session_id, "es")

    await speaker.request("sendCaption", text="In the beg", final=False, lineId="l1")
    await speaker.request("sendCaption", text="In the beginning", lineId="l1")
    await speaker.request("sendCaption", text="was the", final=False, lineId="l2")
    await speaker.request("sendCaption", text="was the Word", lineId="l2")

    # (Sorted: two invocations' lines can cross on the wire; the clients put them in order.)
    english_lines = sorted(await captions(english, 4), key=lambda c: c["seq"])
    assert [(c["seq"], c["text"], c["final"], c.get("previousSeq")) for c in english_lines] == [
        (1, "In the beg", False, None),
        (2, "In the beginning", True, 0),
        (3, "was the", False, None),
        (4, "was the Word", True, 2),
    ]
    # Each final line names the final line before it: the Spanish listener, who never gets the
    # partial lines (seqs 1 and 3), can tell they are not missing lines (decision 80).
    spanish_lines = sorted(await captions(spanish, 2), key=lambda c: c["seq"])
    assert [(c["seq"], c["text"], c["previousSeq"]) for c in spanish_lines] == [
        (2, "[es] In the beginning", 0),
        (4, "[es] was the Word", 2),
    ]
    await spanish.silent_for(1)


async def test_a_listener_cut_off_resumes_with_every_missed_line_once(stack: Stack):
    speaker, created = await stack.speaker_with_session(source_language="en")
    session_id = created["sessionId"]
    listener = await stack.listener_in(session_id, "es")
    await speaker.request("sendCaption", text="one")
    (first,) = await captions(listener, 1)
    await listener.abort()  # its phone loses the network

    for text in ("two", "three"):
        await speaker.request("sendCaption", text=text)
    await asyncio.sleep(0.5)
    back = await stack.connect()
    joined = await back.request("joinSession", sessionId=session_id, targetLanguage="es", lastSeq=first["seq"])

    assert joined["type"] == "sessionJoined"
    assert [(c["seq"], c["text"]) for c in await captions(back, 2)] == [(2, "[es] two"), (3, "[es] three")]
    await speaker.request("sendCaption", text="four")
    assert [c["seq"] for c in await captions(back, 1)] == [4]


async def test_captions_from_a_listener_or_after_the_end_are_refused(stack: Stack):
    speaker, created = await stack.speaker_with_session()
    listener = await stack.listener_in(created["sessionId"], "es")

    refused = await listener.request("sendCaption", text="hello")
    assert (refused["type"], refused["code"]) == ("error", "FORBIDDEN")

    await speaker.request("endSession")
    await listener.expect("sessionEnded")
    late = await speaker.request("sendCaption", text="too late")
    assert (late["type"], late["code"]) == ("error", "SESSION_NOT_FOUND")


async def test_an_empty_or_overlong_caption_names_the_field(stack: Stack):
    speaker, _ = await stack.speaker_with_session()

    for text in ("   ", "x" * 2001):
        reply = await speaker.request("sendCaption", text=text)
        assert (reply["code"], reply["details"]["field"]) == ("INVALID_PARAMETERS", "text")


@pytest.fixture(scope="module")
def queued_stack() -> Iterator[Stack]:
    # Any language with more than one listener fans out through CaptionFanOutQueue.
    with started_stack({"CAPTION_QUEUE_THRESHOLD": "1", "SPEAKER_RECONNECT_GRACE_SECONDS": "0"}) as running:
        yield running


async def test_the_queue_path_delivers_the_same_lines_as_the_direct_path(queued_stack: Stack):
    speaker, created = await queued_stack.speaker_with_session(source_language="en")
    session_id = created["sessionId"]
    queued = [await queued_stack.listener_in(session_id, "es") for _ in range(3)]  # over the threshold
    direct = await queued_stack.listener_in(session_id, "fr")  # at it: posted directly

    for text in ("one", "two"):
        await speaker.request("sendCaption", text=text)

    # A standard queue's pages can cross (decision 60): each line arrives once with its seq, and
    # the clients put them in order (clients/js/caption-order.js).
    for listener in queued:
        assert sorted((c["seq"], c["text"]) for c in await captions(listener, 2)) == [(1, "[es] one"), (2, "[es] two")]
    for listener in queued:
        await listener.silent_for(0.5)  # and no line twice
    assert [(c["seq"], c["text"]) for c in await captions(direct, 2)] == [(1, "[fr] one"), (2, "[fr] two")]
