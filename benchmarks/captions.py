"""The caption scenarios of `make bench`: one speaker captioning a seated room (issue 9's "one
caption to 500 listeners over 3 languages"), and the crossover between posting a language's lines
from the sendCaption invocation and handing pages of them to CaptionFanOutQueue."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from typing import Any

import websockets

from benchmarks.figures import Figures, percentiles
from benchmarks.phones import Phone, outcome_of
from benchmarks.scenarios import (
    BenchStack,
    Measured,
    Storm,
    disconnects,
    join_storm,
    record_measured,
    suppress_cleanup_errors,
)
from local_stack.embedded_aws import SERVICE_REQUEST_COUNTS_PATH

SOURCE_LANGUAGE = "en"  # the storm's speaker speaks English; its listeners take es, fr and de
# How long every listener may take to have a line before it counts as never delivered.
DELIVERY_PATIENCE_SECONDS = 60.0
# Under the template's CAPTIONS_PER_SECOND (5): the scenario measures delivery, not the limit.
MIN_SECONDS_BETWEEN_LINES = 0.25
WARM_UP_LINES = 2


def minimum_requests(languages: int) -> dict[str, int]:
    """What one final caption cannot do with fewer requests: DynamoDB reads the speaker's
    connection (its session), counts the line against the per-second limit, numbers it, stores
    every language's line in one BatchWriteItem and queries the session's listeners once (one
    page up to about 1 MB of ids, every language at once); Translate is one TranslateText per
    language besides the source; API Gateway posts one message per listener."""
    return {"dynamodb": 5, "translate": languages}


def service_requests(stack: BenchStack) -> dict[str, Counter[str]]:
    with urllib.request.urlopen(stack.info["motoEndpoint"] + SERVICE_REQUEST_COUNTS_PATH, timeout=10) as response:
        return {service: Counter(counts) for service, counts in json.loads(response.read()).items()}


async def captions(stack: BenchStack, storm: Storm, lines: int, *, name: str = "captions") -> Figures:
    """The storm's speaker sends `lines` final captions, each once the last one has reached every
    seated listener; a caption's latency is from sending it to the last listener having it."""
    seated = [phone for phone in storm.listeners if phone.connection_id in storm.languages]
    languages = sorted({storm.languages[phone.connection_id] for phone in seated if phone.connection_id})
    figures = Figures(
        f"{name} ({len(seated)} listeners, {len(languages)} languages)",
        lines,
        0.0,
        target="send -> last listener < 0.5 s",
    )
    # The first line of a stack starts the caption functions' environments: not what is measured.
    for _ in range(WARM_UP_LINES):
        await storm.speaker.request("sendCaption", text="Warming up.")
        await asyncio.sleep(MIN_SECONDS_BETWEEN_LINES)
    each_listener_ms: list[float] = []
    accepted_ms: list[float] = []
    outcomes: Counter[str] = Counter()
    before = service_requests(stack)
    with Measured(stack) as measured:
        started = time.perf_counter()
        for index in range(lines):
            sent = time.perf_counter()
            text = f"Line {index + 1} in {storm.session_id}: grace and peace to you from God our Father."
            reply = await storm.speaker.request("sendCaption", text=text)
            accepted_ms.append((time.perf_counter() - sent) * 1000)
            if reply.get("type") != "captionAccepted":
                outcomes[f"sendCaption {outcome_of(reply)}"] += 1
                continue
            seq = reply["seq"]
            arrivals = await asyncio.gather(
                *(phone.wait_for_notice("caption", DELIVERY_PATIENCE_SECONDS, seq=seq) for phone in seated)
            )
            delivered = [arrived for arrived in arrivals if arrived is not None]
            outcomes["delivered"] += len(delivered)
            outcomes["never delivered"] += len(arrivals) - len(delivered)
            each_listener_ms += [(arrived - sent) * 1000 for arrived in delivered]
            if delivered:
                figures.latencies_ms.append((max(delivered) - sent) * 1000)
            await asyncio.sleep(max(0.0, MIN_SECONDS_BETWEEN_LINES - (time.perf_counter() - sent)))
        figures.seconds = time.perf_counter() - started
    after = service_requests(stack)
    wrong = _wrong_lines(seated, storm.languages)
    figures.outcomes = {key: n for key, n in outcomes.items() if n}
    figures.errors = {key: n for key, n in outcomes.items() if n and key != "delivered"}
    figures.errors.update({key: n for key, n in wrong.items() if n})
    minimum = minimum_requests(len(languages))
    figures.minimum_requests_per_operation = minimum["dynamodb"]
    figures.extra.update(
        each_listener_ms=percentiles(each_listener_ms),
        captionAccepted_ms=percentiles(accepted_ms),
        translate_requests_per_caption=sum((after["translate"] - before["translate"]).values()) / lines,
        # Sends only: the event source's pollers receive from the queue whether or not it is used.
        sqs_sends_per_caption=(after["sqs"] - before["sqs"])["SendMessageBatch"] / lines,
        messages_per_caption=outcomes["delivered"] / lines,
        minimum=dict(minimum, messages=len(seated)),
    )
    figures.extra["listeners"] = len(seated)
    record_measured(figures, measured)
    return figures


def _wrong_lines(seated: list[Phone], languages: dict[str, str]) -> Counter[str]:
    """Each listener must have every line once, in its own language (seq order is the clients' job)."""
    wrong: Counter[str] = Counter()
    for phone in seated:
        received = [message for _, message in phone.notices if message.get("type") == "caption"]
        seqs = [message.get("seq") for message in received]
        wrong["a line twice"] += len(seqs) - len(set(seqs))
        language = languages.get(phone.connection_id or "")
        wrong["wrong language"] += sum(message.get("language") != language for message in received)
        wrong["not translated"] += sum(
            not str(message.get("text", "")).startswith(f"[{language}] ") for message in received
        )
    return wrong


async def broadcast_floor(listeners: int, messages: int) -> dict[str, Any]:
    """A bare websockets server sending one message to `listeners` clients on loopback: how long
    until the last has it, `messages` times. What any fan-out to that room costs on this machine."""
    clients: set[Any] = set()
    everyone = asyncio.Event()

    async def hold(connection: Any) -> None:
        clients.add(connection)
        if len(clients) == listeners:
            everyone.set()
        await connection.wait_closed()

    async with websockets.serve(hold, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        connections = [await websockets.connect(f"ws://127.0.0.1:{port}") for _ in range(listeners)]
        await everyone.wait()
        latencies: list[float] = []
        try:
            for index in range(messages):
                started = time.perf_counter()
                websockets.broadcast(clients, json.dumps({"type": "caption", "seq": index + 1}))
                await asyncio.gather(*(connection.recv() for connection in connections))
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            for connection in connections:
                await connection.close()
    return percentiles(latencies)


async def room_captions(stack: BenchStack, listeners: int, in_flight: int, lines: int, name: str) -> Figures:
    """A room of `listeners` seated by a storm, captioned, then emptied."""
    storm = await join_storm(stack, listeners, in_flight, name=f"{name} seating")
    try:
        return await captions(stack, storm, lines, name=name)
    finally:
        await disconnects(stack, storm)
        with suppress_cleanup_errors():
            await storm.speaker.end_session(timeout=60)
        await storm.speaker.close()


async def crossover(stack: BenchStack, rooms: tuple[int, ...], in_flight: int, lines: int, path: str) -> list[Figures]:
    """The same captions to rooms of growing size on one stack (whose CAPTION_QUEUE_THRESHOLD
    decides the path): where posting from sendCaption stops beating the queue."""
    return [await room_captions(stack, size, in_flight, lines, f"captions {path}") for size in rooms]


def print_crossover(direct: list[Figures], queued: list[Figures]) -> None:
    print("\n== caption fan-out: posted by sendCaption vs pages through CaptionFanOutQueue")
    print(f"{'listeners':>10} {'direct p50/p95 ms':>20} {'queued p50/p95 ms':>20}")
    for posted, paged in zip(direct, queued, strict=False):
        sides = []
        for figures in (posted, paged):
            spread = percentiles(figures.latencies_ms)
            sides.append("/".join("-" if spread[q] is None else f"{spread[q]:.0f}" for q in ("p50", "p95")))
        print(f"{posted.extra.get('listeners', '-'):>10} {sides[0]:>20} {sides[1]:>20}")
