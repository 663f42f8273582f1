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


def report() -> None:
    with running_stack() as stack:
        # A first round starts the functions' execution environments (cold starts are a
        # property of the local stack's process pool, not of the code paths measured here).
        asyncio.run(_storm(stack, listeners=max(CONCURRENCY, 10)))
        figures = asyncio.run(_storm(stack))
    print(f"\n== Join storm: {figures['listeners']} listeners from one IP, {figures['concurrency']} at a time")
    print(f"outcomes: {figures['outcomes']}   listenerCount afterwards: {figures['listenerCount']}")
    print(
        f"join latency ms: p50 {figures['p50']:.0f}  p95 {figures['p95']:.0f}  p99 {figures['p99']:.0f}"
        f"   throughput {figures['listeners'] / figures['seconds']:.0f} joins/s"
    )
    print(f"heartbeat round trip ms: p50 {figures['heartbeat_p50']:.0f}  p95 {figures['heartbeat_p95']:.0f}")


if __name__ == "__main__":
    report()
