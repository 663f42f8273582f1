"""`python -m live_session_client listen|speak ...`: what a listener sees, and a speaker's session
kept alive from a terminal.

Exit status: 0 when the session ended or the user stopped it with Ctrl-C, 1 when the client could
not join, create or stay connected, 2 for bad arguments (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import NoReturn, TextIO

from live_session_client.backoff import ReconnectPolicy
from live_session_client.errors import LinkClosedError, LiveSessionError, NoAnswerError, RequestRefusedError
from live_session_client.events import CaptionReceived, ClientState, StateChanged
from live_session_client.link import LinkTimings, check_url
from live_session_client.listener import ListenerClient
from live_session_client.protocol import LANGUAGE_PATTERN, SESSION_ID_PATTERN, normalise_session_id
from live_session_client.session_client import ENDED_WHILE_AWAY, ClientOptions, SessionClient
from live_session_client.speaker import SpeakerClient

TOKEN_ENVIRONMENT_VARIABLE = "LIVE_SESSION_SPEAKER_TOKEN"
END_TIMEOUT_SECONDS = 15.0
LISTENER_POLL_SECONDS = 1.0
# A line whose answer never came is sent again under its lineId at most this many times in all.
SEND_ATTEMPTS = 5
PACE_PATTERN = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s)?$")


class OneLineArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _language(value: str) -> str:
    if not LANGUAGE_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a language code; use two lowercase letters, like 'es'")
    return value


def _session_id(value: str) -> str:
    normalised = normalise_session_id(value)
    if not SESSION_ID_PATTERN.fullmatch(normalised):
        raise argparse.ArgumentTypeError(f"{value!r} is not a session id; ids look like 'faithful-shepherd-427'")
    return normalised


def _url(value: str) -> str:
    try:
        return check_url(value)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def parse_pace(value: str) -> float:
    """`2s`, `1.5s`, `500ms` or a plain number of seconds; must be more than zero."""
    match = PACE_PATTERN.fullmatch(value.strip())
    seconds = None
    if match:
        seconds = float(match["number"]) / (1000 if match["unit"] == "ms" else 1)
    if not seconds:
        raise argparse.ArgumentTypeError(f"{value!r} is not a pace; use a duration like '2s' or '500ms'")
    return seconds


def _captions_file(value: str) -> list[str]:
    try:
        text = Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as failed:
        raise argparse.ArgumentTypeError(f"cannot read {value!r}: {failed.strerror or failed}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise argparse.ArgumentTypeError(f"{value!r} has no lines to send")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="live_session_client", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="listen|speak")

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("--url", required=True, type=_url, help="the WebSocket URL (ws:// or wss://)")
        command.add_argument(
            "--heartbeat-seconds",
            type=_positive_seconds,
            default=30.0,
            help="the service's HEARTBEAT_INTERVAL_SECONDS (default 30)",
        )
        command.add_argument(
            "--give-up-after",
            type=_positive_seconds,
            default=300.0,
            metavar="SECONDS",
            help="stop reconnecting this long after a drop (default 300)",
        )

    listen = commands.add_parser("listen", help="join a session and print what a listener sees")
    common(listen)
    listen.add_argument("--session", required=True, type=_session_id, help="the session id, e.g. faithful-shepherd-427")
    listen.add_argument("--lang", required=True, type=_language, help="your language, e.g. es")
    listen.add_argument("--partials", action="store_true", help="also print lines still being spoken")
    listen.add_argument("--catch-up", action="store_true", help="start with the lines the server still keeps")

    speak = commands.add_parser("speak", help="create a session, keep it alive, end it on Ctrl-C")
    common(speak)
    speak.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE),
        help=f"a speaker's Cognito token (or set {TOKEN_ENVIRONMENT_VARIABLE}, which keeps it out of `ps`)",
    )
    speak.add_argument("--source-language", type=_language, default="en", help="the language spoken (default en)")
    speak.add_argument("--quality-tier", choices=("standard", "premium"), default=None)
    speak.add_argument("--captions-from", type=_captions_file, metavar="FILE", help="send each line of FILE")
    speak.add_argument("--pace", type=parse_pace, default=2.0, help="time between lines (default 2s)")
    speak.add_argument(
        "--wait-for-listener",
        action="store_true",
        help="start sending the file's lines once the first listener has joined",
    )
    return parser


def _options(arguments: argparse.Namespace) -> ClientOptions:
    heartbeat = arguments.heartbeat_seconds
    timings = LinkTimings(
        heartbeat_interval_seconds=heartbeat,
        heartbeat_ack_timeout_seconds=max(10.0, heartbeat * 2 / 3),
    )
    return ClientOptions(timings=timings, reconnect=ReconnectPolicy(give_up_after_seconds=arguments.give_up_after))


class Console:
    """Prints events as they come: captions and plain sentences on stdout, failures on stderr."""

    def __init__(self, out: TextIO, err: TextIO, partials: bool = True) -> None:
        self.out, self.err, self.partials = out, err, partials

    async def follow(self, client: SessionClient) -> None:
        async for event in client.events():
            if isinstance(event, CaptionReceived):
                self.caption(event)
            elif isinstance(event, StateChanged) and event.state in (ClientState.FAILED, ClientState.GAVE_UP):
                self.err.write(event.sentence + "\n")
                self.err.flush()
            else:
                self.line(event.sentence)

    def caption(self, event: CaptionReceived) -> None:
        caption = event.caption
        if not caption.final and not self.partials:
            return
        marks = "" if caption.final else " (still speaking)"
        marks += " (untranslated)" if caption.untranslated else ""
        marks += " (late)" if caption.late else ""
        self.line(f"[{caption.language or '?'} #{caption.seq}]{marks} {caption.text}")

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


async def run_listen(arguments: argparse.Namespace, console: Console) -> int:
    listener = ListenerClient(
        arguments.url, arguments.session, arguments.lang, _options(arguments), catch_up=arguments.catch_up
    )
    printer = asyncio.create_task(console.follow(listener))
    interrupted = await _run(listener, printer, listener.start())
    if interrupted and not listener.state.terminal:
        with contextlib.suppress(LiveSessionError):
            await asyncio.wait_for(listener.leave(), END_TIMEOUT_SECONDS)
    await listener.close()
    await printer
    return 0 if listener.state in (ClientState.LEFT, ClientState.ENDED) else 1


async def run_speak(arguments: argparse.Namespace, console: Console) -> int:
    speaker = SpeakerClient(
        arguments.url,
        arguments.token,
        source_language=arguments.source_language,
        quality_tier=arguments.quality_tier,
        options=_options(arguments),
    )
    printer = asyncio.create_task(console.follow(speaker))
    interrupted = await _run(speaker, printer, _speak(speaker, arguments, console))
    ended_by_us = False
    if interrupted and speaker.state == ClientState.LIVE:
        console.line("Ending the session ...")
        with contextlib.suppress(LiveSessionError, TimeoutError):
            ended_by_us = await asyncio.wait_for(speaker.end(), END_TIMEOUT_SECONDS) is not None
    await speaker.close()
    await printer
    if interrupted and speaker.state in (ClientState.LEFT, ClientState.IDLE, ClientState.CONNECTING):
        return 0  # stopped before there was a session to end
    return 0 if ended_by_us or (speaker.state == ClientState.ENDED and _ended_normally(speaker)) else 1


def _ended_normally(speaker: SpeakerClient) -> bool:
    return speaker.end_reason not in ("speakerDisconnected", ENDED_WHILE_AWAY)


async def _speak(speaker: SpeakerClient, arguments: argparse.Namespace, console: Console) -> None:
    await speaker.start()
    lines: list[str] = arguments.captions_from or []
    if lines and arguments.wait_for_listener:
        console.line("Waiting for a listener before sending captions ...")
        while (await speaker.status())["listenerCount"] == 0:
            await asyncio.sleep(LISTENER_POLL_SECONDS)
    reading = os.urandom(6).hex()  # this reading's lines have ids no other reading shares
    for number, text in enumerate(lines, start=1):
        if number > 1:
            await asyncio.sleep(arguments.pace)
        try:
            seq = await _send_line(speaker, text, f"speak-{reading}-{number}")
        except (LinkClosedError, NoAnswerError):
            console.err.write(f"Line {number} was not sent: no answer after {SEND_ATTEMPTS} sends.\n")
            console.err.flush()
            console.line("Stopped sending captions; the session stays live. Press Ctrl-C to end it.")
            break
        except RequestRefusedError as refused:
            console.err.write(f"Line {number} was not sent: {refused.sentence}\n")
            console.err.flush()
            if refused.code not in ("RATE_LIMIT_EXCEEDED", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR"):
                console.line("Stopped sending captions; the session stays live. Press Ctrl-C to end it.")
                break
            continue
        console.line(f"Sent #{seq}: {text}")
    else:
        if lines:
            console.line(f"All {len(lines)} lines sent; the session stays live. Press Ctrl-C to end it.")
    await asyncio.Event().wait()


async def _send_line(speaker: SpeakerClient, text: str, line_id: str) -> int:
    """The line's seq. A line whose answer never came (the link dropped, or no answer in time)
    may have gone out: it is sent again under the same lineId, which listeners' clients show
    once (decision 78), once the client is live again."""
    attempt = 1
    while True:
        try:
            return await speaker.send_caption(text, line_id=line_id)
        except (LinkClosedError, NoAnswerError):
            if attempt == SEND_ATTEMPTS:
                raise
            attempt += 1


async def _run(client: SessionClient, printer: asyncio.Task[None], work: Awaitable[object]) -> bool:
    """Run `work` until the client stops by itself (printer done) or Ctrl-C/SIGTERM; True if interrupted."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    worker = asyncio.ensure_future(work)
    stop = asyncio.create_task(interrupted.wait())
    try:
        done, _ = await asyncio.wait({printer, stop, worker}, return_when=asyncio.FIRST_COMPLETED)
        while worker in done and not worker.cancelled() and worker.exception() is None and not stop.done():
            done, _ = await asyncio.wait({printer, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not worker.done():
            worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, LiveSessionError):
            await worker
        stop.cancel()
        # From here (leaving or ending politely) a second Ctrl-C stops at once.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _stop_now)
    return interrupted.is_set()


def _stop_now() -> NoReturn:
    sys.stderr.write("Stopped without waiting; the server will notice the connection is gone.\n")
    sys.stderr.flush()
    os._exit(130)


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.error("choose a command: listen or speak")
    if arguments.command == "speak" and not arguments.token:
        parser.error(f"speak needs --token (or {TOKEN_ENVIRONMENT_VARIABLE})")
    if arguments.command == "listen":
        console = Console(out or sys.stdout, err or sys.stderr, partials=arguments.partials)
        run = run_listen(arguments, console)
    else:
        console = Console(out or sys.stdout, err or sys.stderr)
        run = run_speak(arguments, console)
    try:
        return asyncio.run(run)
    except KeyboardInterrupt:
        return 130
