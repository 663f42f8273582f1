"""The scenarios of `make bench`, over real sockets against a running local stack: concurrent session
creations, the join storm (with the truth check), simultaneous disconnects, the `sessionEnded`
fan-out, listeners heartbeating through refreshes, and sequential latencies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import websockets

from benchmarks.figures import Figures
from benchmarks.phones import HandshakeRefused, Phone, outcome_of
from local_stack.embedded_aws import REQUEST_COUNTS_PATH
from local_stack.invariants import Told, check_invariants

LANGUAGES = ("es", "fr", "de")
# What an operation cannot do with fewer DynamoDB requests (the "minimum" beside the measured):
# a listener's $connect is one PutItem and its join one transaction; a create one transaction
# (after its $connect); a heartbeat one UpdateItem; a disconnect one transaction; ending a session
# one UpdateItem plus one conditional detach per listener (decision 25).
# How long a listener may wait for `sessionEnded` before it counts as never told: generous, since a
# shared 2-core machine runs the domain's serial fan-out at a few listeners per second.
FAN_OUT_PATIENCE_SECONDS = 180.0
MINIMUM_REQUESTS = {"join": 2, "create": 1, "heartbeat": 1, "disconnect": 1, "fan-out": 1}


@dataclass
class BenchStack:
    info: dict[str, Any]

    def __post_init__(self) -> None:
        self.dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=self.info["motoEndpoint"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    @property
    def url(self) -> str:
        return self.info["websocketUrl"]

    @property
    def token(self) -> str:
        return self.info["speakerToken"]

    def dynamodb_requests(self) -> Counter[str]:
        with urllib.request.urlopen(self.info["motoEndpoint"] + REQUEST_COUNTS_PATH, timeout=10) as response:
            return Counter(json.loads(response.read()))

    def violations(self, told: dict[str, Told] | None = None, *, after_cleanup: bool = True) -> list[str]:
        found = check_invariants(self.dynamodb, self.info["tables"], told, after_cleanup=after_cleanup)
        return [str(violation) for violation in found]

    def processes(self) -> dict[int, str]:
        """The stack's process and its function environments, by pid: "stack" or the function."""
        root = int(self.info["pid"])
        found = {root: "stack"}
        for pid in descendants(root):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--function-name" in command:
                found[pid] = command[command.index(b"--function-name") + 1].decode()
        return found

    def cpu_seconds(self) -> dict[int, tuple[str, float]]:
        """CPU seconds so far of the stack's process and of each function environment, by pid."""
        found: dict[int, tuple[str, float]] = {}
        ticks = os.sysconf("SC_CLK_TCK")
        for pid, name in self.processes().items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[pid] = (name, (int(fields[11]) + int(fields[12])) / ticks)
        return found

    def peak_memory(self) -> dict[str, Any]:
        peaks = {pid: peak_rss_mb(pid) for pid in self.processes()}
        stack_peak = peaks.pop(int(self.info["pid"]), None)
        environments = [peak for peak in peaks.values() if peak is not None]
        return {
            "stack_mb": stack_peak,
            "environments": len(environments),
            "environment_max_mb": max(environments, default=None),
            "environments_total_mb": round(sum(environments), 1),
        }


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process ever had (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Measured:
    """DynamoDB requests and CPU of the stack across a block: `with Measured(stack) as m: ...`."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack

    def __enter__(self) -> Measured:
        self._requests = self.stack.dynamodb_requests()
        self._cpu = self.stack.cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.requests = dict(self.stack.dynamodb_requests() - self._requests)
        spent: Counter[str] = Counter()
        fresh: Counter[str] = Counter()
        started = 0
        for pid, (name, seconds) in self.stack.cpu_seconds().items():
            if pid in self._cpu:
                spent[name] += seconds - self._cpu[pid][1]
            else:
                # A fresh environment: its CPU is its init and then its share of the operations,
                # so it is kept apart (a pool that grew mid-scenario served some of them).
                started += 1
                fresh[name] += seconds
        self.cpu = {name: round(seconds, 2) for name, seconds in spent.items() if seconds > 0.005}
        self.cpu_fresh_environments = {name: round(seconds, 2) for name, seconds in fresh.items()}
        self.environments_started = started


def record_measured(figures: Figures, measured: Measured) -> Figures:
    figures.dynamodb_requests = measured.requests
    figures.extra["cpu_seconds"] = measured.cpu
    figures.extra["cpu_ms_per_operation"] = (
        round(sum(measured.cpu.values()) * 1000 / figures.operations, 1) if figures.operations else None
    )
    figures.extra["environments_started"] = measured.environments_started
    figures.extra["cpu_seconds_fresh_environments"] = measured.cpu_fresh_environments
    figures.extra["memory"] = measured.stack.peak_memory()
    return figures


async def _speaker(stack: BenchStack) -> tuple[Phone, str]:
    speaker = await Phone.connect(stack.url, stack.token)
    created = await speaker.request("createSession", sourceLanguage="en")
    if created.get("type") != "sessionCreated":
        raise RuntimeError(f"the speaker could not create a session: {created}")
    return speaker, str(created["sessionId"])


# ---------------------------------------------------------------- creations


async def creations(stack: BenchStack, count: int) -> Figures:
    speakers = await asyncio.gather(*(Phone.connect(stack.url, stack.token) for _ in range(count)))
    figures = Figures("creations (all at once)", count, 0.0, target="creation p95 < 2 s")
    outcomes: Counter[str] = Counter()

    async def create(phone: Phone) -> None:
        started = time.perf_counter()
        try:
            reply = await phone.request("createSession", sourceLanguage="en")
            outcome = outcome_of(reply)
        except (ConnectionError, TimeoutError) as error:
            outcome = type(error).__name__
        figures.latencies_ms.append((time.perf_counter() - started) * 1000)
        outcomes[outcome] += 1

    with Measured(stack) as measured:
        started = time.perf_counter()
        await asyncio.gather(*(create(phone) for phone in speakers))
        figures.seconds = time.perf_counter() - started
    figures.outcomes = dict(outcomes)
    figures.errors = {key: n for key, n in outcomes.items() if key != "sessionCreated"}
    figures.minimum_requests_per_operation = MINIMUM_REQUESTS["create"]
    figures.violations = stack.violations(after_cleanup=False)
    for phone in speakers:
        with suppress_cleanup_errors():
            await phone.end_session(timeout=30)
    await asyncio.gather(*(phone.close() for phone in speakers))
    return record_measured(figures, measured)


# ---------------------------------------------------------------- the join storm


@dataclass
class Storm:
    figures: Figures
    speaker: Phone
    session_id: str
    listeners: list[Phone] = field(default_factory=list)  # every phone whose handshake succeeded
    told: dict[str, Told] = field(default_factory=dict)
    languages: dict[str, str] = field(default_factory=dict)  # each seated phone's, by connection id


async def join_storm(
    stack: BenchStack,
    listeners: int,
    in_flight: int,
    *,
    name: str = "join storm",
    addresses: int = 1,
    target: str = "p95 < 1 s, >= 100 joins/s",
    on_session: Callable[[str], object] | None = None,
) -> Storm:
    """`listeners` phones connect and join one session, `in_flight` at a time, from one IP (a
    church NAT) or from `addresses` loopback addresses; then the truth check: what each phone was
    told against the tables. `on_session` hears the session id before the first phone connects."""
    speaker, session_id = await _speaker(stack)
    if on_session is not None:
        on_session(session_id)
    figures = Figures(f"{name} ({listeners}, {in_flight} in flight)", listeners, 0.0, target=target)
    storm = Storm(figures, speaker, session_id)
    gate = asyncio.Semaphore(in_flight)
    outcomes: Counter[str] = Counter()

    async def listener(index: int) -> None:
        async with gate:
            started = time.perf_counter()
            source = f"127.30.{index % addresses // 250}.{index % addresses % 250 + 1}" if addresses > 1 else None
            try:
                phone = await Phone.connect(stack.url, source_address=source)
            except HandshakeRefused as refused:
                outcomes[f"handshake HTTP {refused.status}"] += 1
                storm.told[f"unidentified-{index}"] = Told.error(f"HTTP {refused.status}")
                return
            except (OSError, TimeoutError) as error:
                outcomes[f"handshake {type(error).__name__}"] += 1
                return
            storm.listeners.append(phone)
            language = LANGUAGES[index % len(LANGUAGES)]
            try:
                reply = await phone.request("joinSession", sessionId=session_id, targetLanguage=language)
            except (ConnectionError, TimeoutError) as error:
                outcomes[type(error).__name__] += 1  # told nothing: no claim either way
                return
            figures.latencies_ms.append((time.perf_counter() - started) * 1000)
            outcome = outcome_of(reply)
            outcomes[outcome] += 1
            if outcome == "sessionJoined" and phone.connection_id:
                storm.told[phone.connection_id] = Told.joined(session_id)
                storm.languages[phone.connection_id] = language
            else:
                storm.told[phone.connection_id or f"unidentified-{index}"] = Told.error(outcome)

    with Measured(stack) as measured:
        started = time.perf_counter()
        await asyncio.gather(*(listener(index) for index in range(listeners)))
        figures.seconds = time.perf_counter() - started
    status = await speaker.request("getSessionStatus")
    figures.outcomes = dict(outcomes)
    figures.errors = {key: n for key, n in outcomes.items() if key not in ("sessionJoined", "SESSION_FULL")}
    figures.minimum_requests_per_operation = MINIMUM_REQUESTS["join"]
    figures.extra["listenerCount"] = status.get("listenerCount")
    figures.extra["told_sessionJoined"] = outcomes.get("sessionJoined", 0)
    figures.violations = stack.violations(storm.told, after_cleanup=False)
    record_measured(figures, measured)
    return storm


# ---------------------------------------------------------------- the race for the last seats


async def seat_race(stack: BenchStack, joiners: int, addresses: int, in_flight: int, capacity: int) -> Storm:
    """More phones than seats, from many addresses: exactly `capacity` seated, every other one
    told SESSION_FULL, and the count, read straight from the table while they join, never above
    the capacity nor below zero (issue 12's 1,000 joins into 500 seats)."""
    seen: list[int] = []
    done = asyncio.Event()
    watchers: list[asyncio.Task[None]] = []

    async def watch(session_id: str) -> None:
        table = stack.info["tables"]["SessionsTable"]
        key = {"sessionId": {"S": session_id}}
        while not done.is_set():
            item = await asyncio.to_thread(
                lambda: stack.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
            )
            seen.append(int(item.get("listenerCount", {}).get("N", 0)))
            await asyncio.sleep(0.02)

    try:
        storm = await join_storm(
            stack,
            joiners,
            in_flight,
            name=f"seat race into {capacity} seats from {addresses} addresses",
            addresses=addresses,
            target=f"exactly {capacity} seated, never above",
            on_session=lambda session_id: watchers.append(asyncio.create_task(watch(session_id))),
        )
    finally:
        done.set()
        await asyncio.gather(*watchers, return_exceptions=True)
    figures = storm.figures
    joined, full = figures.outcomes.get("sessionJoined", 0), figures.outcomes.get("SESSION_FULL", 0)
    figures.extra.update(count_seen_max=max(seen, default=None), count_seen_min=min(seen, default=None))
    figures.extra["count_reads"] = len(seen)
    if joined != capacity:
        figures.errors["seated, not the capacity"] = joined
    if full != joiners - capacity:
        figures.errors["told SESSION_FULL, not the rest"] = full
    if seen and (max(seen) > capacity or min(seen) < 0):
        figures.errors["count seen out of bounds"] = 1
    return storm


# ---------------------------------------------------------------- disconnects


async def disconnects(stack: BenchStack, storm: Storm) -> Figures:
    """Every listener of the storm leaves at once, half with a close frame and half vanishing;
    latencies are the times at which the seats came free (the k-th release, from the start)."""
    phones = storm.listeners
    figures = Figures(f"disconnects ({len(phones)} at once)", len(phones), 0.0, target="count 0, never negative")
    seated = (await storm.speaker.request("getSessionStatus")).get("listenerCount", 0)
    with Measured(stack) as measured:
        started = time.perf_counter()
        for index, phone in enumerate(phones):
            if index % 2:
                phone.vanish()
        await asyncio.gather(*(phone.close() for index, phone in enumerate(phones) if not index % 2))
        remaining, lowest = seated, seated
        deadline = started + 120
        while remaining > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            status = await storm.speaker.request("getSessionStatus")
            count = int(status.get("listenerCount", 0))
            lowest = min(lowest, count)
            now_ms = (time.perf_counter() - started) * 1000
            figures.latencies_ms += [now_ms] * max(0, remaining - count)
            remaining = count
        figures.seconds = time.perf_counter() - started
    await asyncio.gather(*(phone.close() for phone in phones))
    figures.minimum_requests_per_operation = MINIMUM_REQUESTS["disconnect"]
    figures.outcomes = {"released": seated - remaining, "still seated": remaining}
    if remaining or lowest < 0:
        figures.errors = {"seats not released in 120 s": remaining} if remaining else {"count below zero": 1}
    await _settled(stack, lambda: not _records_of(stack, {p.connection_id for p in phones if p.connection_id}))
    figures.violations = stack.violations(after_cleanup=False)
    return record_measured(figures, measured)


def _records_of(stack: BenchStack, connection_ids: set[str]) -> bool:
    table = stack.info["tables"]["ConnectionsTable"]
    for page in stack.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        if any(item["connectionId"]["S"] in connection_ids for item in page["Items"]):
            return True
    return False


async def _settled(stack: BenchStack, condition: Any, timeout: float = 60.0) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(0.2)
    return False


# ---------------------------------------------------------------- fan-out


async def fan_out(stack: BenchStack, storm: Storm) -> Figures:
    """The speaker ends the session: how long until each listener has `sessionEnded`."""
    joined = [
        phone
        for phone in storm.listeners
        if phone.connection_id and (storm.told.get(phone.connection_id) or Told()).joined_session_id
    ]
    figures = Figures(f"sessionEnded fan-out ({len(joined)})", len(joined), 0.0, target="last < 0.5 s")
    with Measured(stack) as measured:
        started = time.perf_counter()
        reply = await storm.speaker.end_session(timeout=FAN_OUT_PATIENCE_SECONDS)
        arrivals = await asyncio.gather(
            *(phone.wait_for_notice("sessionEnded", FAN_OUT_PATIENCE_SECONDS) for phone in joined)
        )
        figures.seconds = time.perf_counter() - started
    figures.latencies_ms = [(arrived - started) * 1000 for arrived in arrivals if arrived is not None]
    missing = sum(arrived is None for arrived in arrivals)
    duplicates = sum(sum(message.get("type") == "sessionEnded" for _, message in phone.notices) > 1 for phone in joined)
    figures.outcomes = {"told once": len(joined) - missing - duplicates, "speaker reply": outcome_of(reply)}
    figures.errors = {name: n for name, n in (("never told", missing), ("told twice", duplicates)) if n}
    figures.extra["last_ms"] = max(figures.latencies_ms, default=None)
    figures.minimum_requests_per_operation = MINIMUM_REQUESTS["fan-out"]
    figures.violations = stack.violations()
    await storm.speaker.close()
    return record_measured(figures, measured)


# ---------------------------------------------------------------- heartbeats under refreshes

REFRESH_ATTEMPTS = 3
REFRESH_OPEN_TIMEOUT_SECONDS = 20.0


async def _connect_again(url: str, outcomes: Counter[str], stop: asyncio.Event) -> Phone | None:
    """A refresh's new link, tried again after a failed connect with a pause of full jitter, as the
    clients do: a room told to refresh at once is a herd of $connects that the 2-core stack may not
    take in time, and each failure is counted (an error in the table), not a crashed run. Bounded:
    a few tries, none once the run is stopping."""
    for attempt in range(REFRESH_ATTEMPTS):
        if stop.is_set():
            break
        try:
            return await Phone.connect(url, open_timeout=REFRESH_OPEN_TIMEOUT_SECONDS)
        except (HandshakeRefused, websockets.InvalidHandshake, OSError, TimeoutError) as error:
            outcomes[f"refresh connect {type(error).__name__}"] += 1
            await asyncio.sleep(random.uniform(0, 2**attempt))
    return None


async def _refresh(
    stack: BenchStack,
    outcomes: Counter[str],
    refreshed: list[float],
    roll: _RefreshRoll,
    stop: asyncio.Event,
    phone: Phone,
    session_id: str,
    language: str,
    phone_number: int,
) -> Phone:
    """Make-before-break: a new link, refreshConnection on it, then the old one closed."""
    started = time.perf_counter()
    fresh = await _connect_again(stack.url, outcomes, stop)
    if fresh is None:
        return phone  # the old link heartbeats on; the run ends without this phone's refresh
    reply = await fresh.request("refreshConnection", sessionId=session_id, role="listener", targetLanguage=language)
    outcomes[f"refresh {outcome_of(reply)}"] += 1
    refreshed.append((time.perf_counter() - started) * 1000)
    roll.refreshed(phone_number)
    await phone.close()
    return fresh


async def heartbeats(
    stack: BenchStack, sessions: int, listeners_per_session: int, seconds: float, interval: float
) -> Figures:
    """`sessions` x `listeners_per_session` listeners heartbeat every `interval` for `seconds`;
    the stack's refresh thresholds are lowered, so each listener also refreshes under load."""
    rooms: list[tuple[Phone, str]] = [await _speaker(stack) for _ in range(sessions)]
    gate = asyncio.Semaphore(50)
    figures = Figures(
        f"heartbeats ({sessions}x{listeners_per_session}, {seconds:.0f} s)", 0, 0.0, target="p95 < 10 ms sequential"
    )
    outcomes: Counter[str] = Counter()
    refreshed: list[float] = []
    everyone_seated = asyncio.Event()
    roll = _RefreshRoll()
    stop = asyncio.Event()
    holder: list[Phone] = []
    arrived = 0
    total = sessions * listeners_per_session

    def arrive() -> None:
        nonlocal arrived
        arrived += 1
        if arrived == total:
            everyone_seated.set()

    async def refresh(phone: Phone, session_id: str, language: str, phone_number: int) -> Phone:
        return await _refresh(stack, outcomes, refreshed, roll, stop, phone, session_id, language, phone_number)

    async def listener(session_id: str, index: int) -> None:
        """Seats itself, then heartbeats (through refreshes) until the run stops: a phone keeps
        beating while the rest of the room is still arriving, so the sweeper never takes it for dead."""
        language = LANGUAGES[index % len(LANGUAGES)]
        try:
            async with gate:
                phone = await Phone.connect(stack.url)
                reply = await phone.request("joinSession", sessionId=session_id, targetLanguage=language)
        except (HandshakeRefused, OSError, TimeoutError, ConnectionError) as error:
            outcomes[f"setup {type(error).__name__}"] += 1
            arrive()
            return
        arrive()
        if reply.get("type") != "sessionJoined":
            outcomes[f"setup {outcome_of(reply)}"] += 1
            holder.append(phone)
            return
        phone_number = roll.seated()
        await asyncio.sleep(random.uniform(0, interval))
        while not stop.is_set():
            if any(message.get("type") == "connectionRefreshRequired" for _, message in phone.notices):
                phone = await refresh(phone, session_id, language, phone_number)
            started = time.perf_counter()
            try:
                reply = await phone.request("heartbeat", timeout=30)
            except (ConnectionError, TimeoutError) as error:
                outcomes[type(error).__name__] += 1
                break
            if everyone_seated.is_set():  # timed only once the whole room is in
                figures.latencies_ms.append((time.perf_counter() - started) * 1000)
            outcomes[outcome_of(reply)] += 1
            with suppress_cleanup_errors():
                await asyncio.wait_for(stop.wait(), interval)
        holder.append(phone)

    with Measured(stack) as measured:
        started = time.perf_counter()
        phones = [listener(session_id, i) for _, session_id in rooms for i in range(listeners_per_session)]
        await asyncio.gather(roll.stop_after(seconds, everyone_seated, stop), *phones)
        figures.seconds = time.perf_counter() - started
    figures.operations = len(figures.latencies_ms)
    figures.outcomes = dict(outcomes)
    good = {"heartbeatAck", "refresh connectionRefreshComplete"}
    figures.errors = {key: n for key, n in outcomes.items() if key not in good}
    figures.extra["refresh_latency_ms"] = _summary(refreshed)
    figures.minimum_requests_per_operation = MINIMUM_REQUESTS["heartbeat"]
    figures.violations = stack.violations(after_cleanup=False)
    for speaker, _ in rooms:
        with suppress_cleanup_errors():
            await speaker.end_session(timeout=30)
    await asyncio.gather(*(phone.close() for phone in holder), *(speaker.close() for speaker, _ in rooms))
    return record_measured(figures, measured)


class _RefreshRoll:
    """Which seated phones have refreshed. The heartbeat run is "through refreshes": on a loaded
    machine a short run's heartbeats are slow enough for it to end before a phone acts on its
    connectionRefreshRequired, so it goes on until every seated phone has refreshed once (the
    caller bounds the wait: a refresh that never comes shows as no "refresh" outcome)."""

    def __init__(self) -> None:
        self._seated = 0
        self._refreshed: set[int] = set()
        self._changed = asyncio.Event()

    def seated(self) -> int:
        """A number for the phone just seated."""
        self._seated += 1
        return self._seated - 1

    def refreshed(self, phone: int) -> None:
        self._refreshed.add(phone)
        self._changed.set()

    async def everyone_refreshed(self) -> None:
        while len(self._refreshed) < self._seated:
            self._changed.clear()
            await self._changed.wait()

    async def stop_after(self, seconds: float, everyone_seated: asyncio.Event, stop: asyncio.Event) -> None:
        """Sets `stop` `seconds` after the whole room is seated, once every seated phone refreshed."""
        with suppress_cleanup_errors():
            await asyncio.wait_for(everyone_seated.wait(), 1800)
        await asyncio.sleep(seconds)
        with suppress_cleanup_errors():
            await asyncio.wait_for(self.everyone_refreshed(), max(60.0, seconds * 5))
        stop.set()


def _summary(samples: list[float]) -> dict[str, Any]:
    from benchmarks.figures import percentiles

    return {"count": len(samples), **percentiles(samples)}


# ---------------------------------------------------------------- sequential


async def sequential(stack: BenchStack, repeats: int) -> list[Figures]:
    """One request at a time: the latency of heartbeat, join and create on a warm, idle stack."""
    speaker, session_id = await _speaker(stack)
    results = []
    heartbeat = Figures("sequential heartbeat", repeats, 0.0, target="p95 < 10 ms")
    join = Figures("sequential join", repeats, 0.0, target="p95 < 30 ms")
    create = Figures("sequential create", repeats, 0.0, target="p95 < 50 ms")
    listener = await Phone.connect(stack.url)
    await listener.request("joinSession", sessionId=session_id, targetLanguage="es")
    with Measured(stack) as measured:
        started = time.perf_counter()
        for _ in range(repeats):
            beat_started = time.perf_counter()
            reply = await listener.request("heartbeat")
            heartbeat.latencies_ms.append((time.perf_counter() - beat_started) * 1000)
            _count(heartbeat, outcome_of(reply), "heartbeatAck")
        heartbeat.seconds = time.perf_counter() - started
    heartbeat.minimum_requests_per_operation = MINIMUM_REQUESTS["heartbeat"]
    results.append(record_measured(heartbeat, measured))
    phones = [await Phone.connect(stack.url) for _ in range(repeats)]
    with Measured(stack) as measured:
        started = time.perf_counter()
        for phone in phones:
            join_started = time.perf_counter()
            reply = await phone.request("joinSession", sessionId=session_id, targetLanguage="fr")
            join.latencies_ms.append((time.perf_counter() - join_started) * 1000)
            _count(join, outcome_of(reply), "sessionJoined")
        join.seconds = time.perf_counter() - started
    join.minimum_requests_per_operation = 1  # the transaction ($connect happened before)
    results.append(record_measured(join, measured))
    creators = [await Phone.connect(stack.url, stack.token) for _ in range(repeats)]
    with Measured(stack) as measured:
        started = time.perf_counter()
        for phone in creators:
            create_started = time.perf_counter()
            reply = await phone.request("createSession", sourceLanguage="en")
            create.latencies_ms.append((time.perf_counter() - create_started) * 1000)
            _count(create, outcome_of(reply), "sessionCreated")
        create.seconds = time.perf_counter() - started
    create.minimum_requests_per_operation = MINIMUM_REQUESTS["create"]
    results.append(record_measured(create, measured))
    for phone in creators:
        with suppress_cleanup_errors():
            await phone.end_session(timeout=30)
    with suppress_cleanup_errors():
        await speaker.end_session(timeout=30)
    await asyncio.gather(*(phone.close() for phone in [*phones, *creators, listener, speaker]))
    return results


def _count(figures: Figures, outcome: str, good: str) -> None:
    figures.outcomes[outcome] = figures.outcomes.get(outcome, 0) + 1
    if outcome != good:
        figures.errors[outcome] = figures.errors.get(outcome, 0) + 1


def suppress_cleanup_errors() -> contextlib.suppress:
    """Cleanup that must not hide the figures: a failed endSession at the end is ignored."""
    return contextlib.suppress(Exception)
