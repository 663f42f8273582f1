"""The command line against the scripted service: `speak --captions-from FILE --pace`, Ctrl-C,
and what `listen` prints for captions, partial lines and a speaker's absence."""

from __future__ import annotations

import asyncio
from pathlib import Path

from client_fake_service import SESSION_ID, FakeService
from client_processes import CliProcess


async def test_speak_sends_each_line_of_the_file_in_order_and_ends_the_session_on_ctrl_c(tmp_path: Path):
    script = tmp_path / "sermon.txt"
    script.write_text("Welcome, everyone.\n\nLet us pray.\n  Amen.  \n", encoding="utf-8")
    async with FakeService() as fake:
        speak = await CliProcess.start(
            "speak", "--url", fake.url, "--token", "t0k3n", "--captions-from", str(script), "--pace", "50ms"
        )
        try:
            created = await speak.line_matching(r"^Session (\S+) is live")
            assert created[1] == SESSION_ID
            await speak.line_matching(r"^All 3 lines sent")
            speaker = await fake.connection(1)
            sent = [m for m in speaker.received if m["action"] == "sendCaption"]
            assert [(m["text"], m["final"]) for m in sent] == [
                ("Welcome, everyone.", True),
                ("Let us pray.", True),
                ("Amen.", True),
            ]
            speak.interrupt()
            status, lines, stderr = await speak.finish()
        finally:
            await speak.kill()
    assert status == 0, (lines, stderr)
    assert [m["action"] for m in speaker.received if m["action"] != "heartbeat"][-1] == "endSession"
    assert lines[-1] == "The speaker ended the session."
    assert [line for line in lines if line.startswith("Sent #")] == [
        "Sent #1: Welcome, everyone.",
        "Sent #2: Let us pray.",
        "Sent #3: Amen.",
    ]
    assert "t0k3n" not in "\n".join(lines) + stderr


async def speak_until(fake: FakeService, script: Path, pattern: str) -> tuple[list[dict], int, list[str], str]:
    """`speak` the file at 50 ms a line until it prints `pattern`, then Ctrl-C: every sendCaption
    the service received, the exit status, the lines printed and stderr."""
    speak = await CliProcess.start(
        "speak", "--url", fake.url, "--token", "t", "--captions-from", str(script), "--pace", "50ms"
    )  # fmt: skip
    try:
        await speak.line_matching(pattern)
        sent = [m for c in fake.connections for m in c.received if m["action"] == "sendCaption"]
        speak.interrupt()
        status, lines, stderr = await speak.finish()
    finally:
        await speak.kill()
    return sent, status, lines, stderr


async def test_speak_sends_a_line_again_under_its_line_id_when_the_link_dropped_before_the_answer(tmp_path: Path):
    script = tmp_path / "lines.txt"
    script.write_text("one\ntwo\n", encoding="utf-8")
    async with FakeService() as fake:
        answer = fake._answer_sendCaption

        async def numbered_then_dropped(connection, message):
            if fake.seq == 0:  # the first line is numbered (it went out), then the link drops
                fake.seq += 1
                connection.abort()
                return
            await answer(connection, message)

        fake.responders["sendCaption"] = numbered_then_dropped
        sent, status, lines, _stderr = await speak_until(fake, script, r"^All 2 lines sent")
    assert status == 0
    # THEN the first line went out twice under one lineId, the second once under its own
    assert [m["text"] for m in sent] == ["one", "one", "two"]
    assert sent[0]["lineId"] == sent[1]["lineId"] != sent[2]["lineId"]
    assert [line for line in lines if line.startswith("Sent #")] == ["Sent #2: one", "Sent #3: two"]


async def test_speak_stops_sending_after_five_unanswered_sends_of_a_line_and_says_which(tmp_path: Path):
    script = tmp_path / "lines.txt"
    script.write_text("one\ntwo\n", encoding="utf-8")
    async with FakeService() as fake:

        async def always_dropped(connection, message):
            connection.abort()

        fake.responders["sendCaption"] = always_dropped
        sent, status, _lines, stderr = await speak_until(fake, script, r"^Stopped sending captions; the session stays")
    assert [m["text"] for m in sent] == ["one"] * 5
    assert len({m["lineId"] for m in sent}) == 1
    assert "Line 1 was not sent: no answer after 5 sends." in stderr.splitlines()
    assert status == 0


async def test_speak_says_why_when_the_server_refuses_captions_and_keeps_the_session(tmp_path: Path):
    script = tmp_path / "lines.txt"
    script.write_text("one\ntwo\n", encoding="utf-8")
    async with FakeService() as fake:

        async def unknown(connection, message):
            await connection.send(
                {
                    "type": "error",
                    "code": "INVALID_ACTION",
                    "status": 400,
                    "message": "Unknown action",
                    "requestId": "R",
                }
            )

        fake.responders["sendCaption"] = unknown
        speak = await CliProcess.start("speak", "--url", fake.url, "--token", "t", "--captions-from", str(script))
        try:
            await speak.line_matching(r"^Stopped sending captions; the session stays live")
            speak.interrupt()
            status, _lines, stderr = await speak.finish()
        finally:
            await speak.kill()
    assert status == 0
    assert stderr.splitlines() == [
        "Line 1 was not sent: The server did not accept that step at this moment. This is a bug in the app; "
        "please report it."
    ]


async def test_listen_prints_captions_in_order_and_the_speakers_absence(tmp_path: Path):
    async with FakeService() as fake:
        listen = await CliProcess.start(
            "listen", "--url", fake.url, "--session", "Faithful Shepherd 427", "--lang", "es", "--partials"
        )
        try:
            await listen.line_matching(rf"^Listening to session {SESSION_ID} in es, spoken in en\.$")
            listener = await fake.connection(1)
            assert (await listener.next_message("joinSession"))["sessionId"] == SESSION_ID
            await listener.caption(2, "Oremos.")
            await listener.caption(1, "Bienvenidos.", untranslated=True)
            await listener.caption(3, "Am", final=False)
            await listen.line_matching(r"^\[es #3\]")
            await listener.caption(5, "Amén.")
            await listen.line_matching(r"^\[es #5\]")  # after the reorder window: 4 is slow
            await listener.caption(4, "Demos gracias.")
            await listen.line_matching(r"^\[es #4\]")
            await listener.send(
                {"type": "speakerAway", "sessionId": SESSION_ID, "reconnectGraceSeconds": 30, "message": "."}
            )
            await listen.line_matching(r"^The speaker's connection dropped")
            await listener.send({"type": "speakerReturned", "sessionId": SESSION_ID})
            await listener.send(
                {"type": "sessionEnded", "sessionId": SESSION_ID, "reason": "speakerEnded", "message": "."}
            )
            status, lines, stderr = await listen.finish()
        finally:
            await listen.kill()
    assert status == 0, stderr
    shown = lines[lines.index(f"Listening to session {SESSION_ID} in es, spoken in en.") + 1 :]
    assert shown == [
        "[es #1] (untranslated) Bienvenidos.",
        "[es #2] Oremos.",
        "[es #3] (still speaking) Am",
        "[es #5] Amén.",
        "[es #4] (late) Demos gracias.",
        "The speaker's connection dropped. Waiting up to 30 seconds for them to come back.",
        "The speaker is back.",
        "The speaker ended the session.",
    ]


async def test_listen_ctrl_c_leaves_the_session_and_exits_0():
    async with FakeService() as fake:
        listen = await CliProcess.start("listen", "--url", fake.url, "--session", SESSION_ID, "--lang", "fr")
        try:
            await listen.line_matching(r"^Listening to session")
            listen.interrupt()
            status, lines, _ = await listen.finish()
        finally:
            await listen.kill()
        listener = await fake.connection(1)
    assert status == 0
    assert "leaveSession" in [m["action"] for m in listener.received]
    assert lines[-1] == "You left the session."


async def test_listen_exits_1_with_the_sentence_when_the_join_is_refused():
    async with FakeService() as fake:

        async def full(connection, message):
            await connection.send(
                {"type": "error", "code": "SESSION_FULL", "status": 503, "message": "Full.", "requestId": "R"}
            )

        fake.responders["joinSession"] = full
        listen = await CliProcess.start("listen", "--url", fake.url, "--session", SESSION_ID, "--lang", "es")
        try:
            status, _, stderr = await listen.finish()
        finally:
            await listen.kill()
    assert status == 1
    assert stderr.strip() == (
        "This session is full. Try again in a few minutes, when someone has left, or ask the speaker."
    )


async def test_a_second_ctrl_c_stops_at_once_even_if_the_server_never_answers():
    async with FakeService() as fake:

        async def silent(connection, message):
            await asyncio.sleep(3600)

        fake.responders["endSession"] = silent
        speak = await CliProcess.start("speak", "--url", fake.url, "--token", "t")
        try:
            await speak.line_matching(r"^Session \S+ is live")
            speak.interrupt()
            await speak.line_matching(r"^Ending the session")
            await asyncio.sleep(0.2)
            speak.interrupt()
            status, _, stderr = await speak.finish()
        finally:
            await speak.kill()
    assert status == 130
    assert stderr == "Stopped without waiting; the server will notice the connection is gone.\n"
