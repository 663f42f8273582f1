"""A Sunday-morning join storm over real sockets against the local stack.

One speaker opens a session; N listeners connect and join within seconds, all from one IP
(church Wi-Fi NAT); we report join latency percentiles and how many got in. The figures are the
local stack's (moto on loopback, functions as local processes), not API Gateway's: they show
regressions in our own code paths and that the venue defaults admit a whole congregation.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import websockets

from local_stack.testing import running_stack

LISTENERS = int(os.environ.get("BENCH_LISTENERS", "500"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "50"))


async def _request(ws, body: dict) -> dict:
    await ws.send(json.dumps(body))
    return json.loads(await asyncio.wait_for(ws.recv(), 30))


async def _storm(stack: dict, listeners: int = LISTENERS) -> dict:
    async with websockets.connect(f"{stack['websocketUrl']}?token={stack['speakerToken']}") as speaker:
        created = await _request(speaker, {"action": "createSession", "sourceLanguage": "en"})
        session_id = created["sessionId"]
        gate = asyncio.Semaphore(CONCURRENCY)
        latencies: list[float] = []
        outcomes: dict[str, int] = {}
        sockets = []

        async def listener(index: int) -> None:
            async with gate:
                ws = await websockets.connect(stack["websocketUrl"])
                sockets.append(ws)
                started = time.perf_counter()
                reply = await _request(
                    ws,
                    {"action": "joinSession", "sessionId": session_id, "targetLanguage": ("es", "fr", "de")[index % 3]},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                key = reply["type"] if reply["type"] != "error" else reply["code"]
                outcomes[key] = outcomes.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(listener(i) for i in range(listeners)))
        elapsed = time.perf_counter() - started
        status = await _request(speaker, {"action": "getSessionStatus"})
        # Heartbeats from every joined listener, in rounds: the path that runs every 30 s.
        heartbeat_latencies: list[float] = []

        async def heartbeat(ws) -> None:
            async with gate:
                beat_started = time.perf_counter()
                await _request(ws, {"action": "heartbeat"})
                heartbeat_latencies.append((time.perf_counter() - beat_started) * 1000)

        await asyncio.gather(*(heartbeat(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()
    quantiles = statistics.quantiles(latencies, n=100)
    heartbeat_quantiles = statistics.quantiles(heartbeat_latencies, n=100)
    return {
        "heartbeat_p50": heartbeat_quantiles[49],
        "heartbeat_p95": heartbeat_quantiles[94],
        "listeners": listeners,
        "concurrency": CONCURRENCY,
        "seconds": elapsed,
        "outcomes": outcomes,
        "p50": quantiles[49],
        "p95": quantiles[94],
        "p99": quantiles[98],
        "listenerCount": status.get("listenerCount"),
    }


def _descendants(pid: int) -> list[int]:
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


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process ever had (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _worker_memory(stack_pid: int) -> list[float]:
    """Peak memory of every function execution environment (worker) of the stack."""
    peaks = []
    for pid in _descendants(stack_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "local_stack/worker.py" in command and (peak := _peak_rss_mb(pid)) is not None:
            peaks.append(peak)
    return peaks


def report() -> None:
    with running_stack() as stack:
        # A first round starts the functions' execution environments (cold starts are a
        # property of the local stack's process pool, not of the code paths measured here).
        asyncio.run(_storm(stack, listeners=max(CONCURRENCY, 10)))
        figures = asyncio.run(_storm(stack))
        memory = _worker_memory(stack["pid"])
    print(f"\n== Join storm: {figures['listeners']} listeners from one IP, {figures['concurrency']} at a time")
    print(f"outcomes: {figures['outcomes']}   listenerCount afterwards: {figures['listenerCount']}")
    print(
        f"join latency ms: p50 {figures['p50']:.0f}  p95 {figures['p95']:.0f}  p99 {figures['p99']:.0f}"
        f"   throughput {figures['listeners'] / figures['seconds']:.0f} joins/s"
    )
    print(f"heartbeat round trip ms: p50 {figures['heartbeat_p50']:.0f}  p95 {figures['heartbeat_p95']:.0f}")
    if memory:
        print(
            f"function environments: {len(memory)}, peak memory MB: max {max(memory):.0f}, "
            f"median {statistics.median(memory):.0f} (Lambda MemorySize is 256 MB, the heartbeat 192 MB)"
        )


if __name__ == "__main__":
    report()
