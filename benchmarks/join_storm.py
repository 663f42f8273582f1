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

LISTENERS = int(os.environ.get("BENCH_LISTENERS", "200"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "50"))


async def _request(ws, body: dict) -> dict:
    await ws.send(json.dumps(body))
    return json.loads(await asyncio.wait_for(ws.recv(), 30))


async def _storm(stack: dict) -> dict:
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
        await asyncio.gather(*(listener(i) for i in range(LISTENERS)))
        elapsed = time.perf_counter() - started
        status = await _request(speaker, {"action": "getSessionStatus"})
        for ws in sockets:
            await ws.close()
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "listeners": LISTENERS,
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
        figures = asyncio.run(_storm(stack))
    print(f"\n== Join storm: {figures['listeners']} listeners from one IP, {figures['concurrency']} at a time")
    print(f"outcomes: {figures['outcomes']}   listenerCount afterwards: {figures['listenerCount']}")
    print(
        f"join latency ms: p50 {figures['p50']:.0f}  p95 {figures['p95']:.0f}  p99 {figures['p99']:.0f}"
        f"   throughput {figures['listeners'] / figures['seconds']:.0f} joins/s"
    )


if __name__ == "__main__":
    report()
