"""`python -m benchmarks` (`make bench`): every scenario against a fresh local stack, beside its floor
and target, as a table and a JSON file. `--help` lists the sizes; `--tiny` is the test suite's run."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import captions, cold_start, heartbeat_cost
from benchmarks.figures import Figures, print_table, save
from benchmarks.floors import echo_floor, moto_floors
from benchmarks.scenarios import (
    BenchStack,
    creations,
    disconnects,
    fan_out,
    heartbeats,
    join_storm,
    seat_race,
    sequential,
)
from local_stack.testing import running_stack

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / ".local-stack" / "bench-results.json"
# Generous limits: every phone of a benchmark comes from 127.0.0.1 (one church NAT), and the
# scenarios measure the paths, not the limits. Capacity stays the template's 500.
BENCH_PARAMETERS = {
    "RATE_LIMIT_SESSIONS_PER_HOUR": "10000",
    "RATE_LIMIT_LISTENER_JOINS_PER_MIN": "100000",
    "RATE_LIMIT_FAILED_JOINS_PER_MIN": "100000",
    "RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN": "100000",
    "RATE_LIMIT_HEARTBEATS_PER_MIN": "1000",
    "SPEAKER_RECONNECT_GRACE_SECONDS": "0",
}
TEMPLATE_CAPACITY = 500  # MaxListenersPerSession's default, which BENCH_PARAMETERS leaves alone


@dataclass(frozen=True)
class Sizes:
    creations: int = 100
    listeners: int = 500
    in_flight: int = 50
    heartbeat_sessions: int = 50
    heartbeat_listeners: int = 50
    heartbeat_seconds: float = 60.0
    heartbeat_interval: float = 5.0
    sequential: int = 30
    storm_runs: int = 1
    cold_start: bool = True
    caption_lines: int = 20
    crossover_rooms: tuple[int, ...] = (50, 200, 500)
    race_joiners: int = 1000  # into TEMPLATE_CAPACITY seats; 0 skips the race
    race_addresses: int = 100


TINY = Sizes(
    creations=5,
    listeners=20,
    in_flight=5,
    heartbeat_sessions=2,
    heartbeat_listeners=3,
    heartbeat_seconds=4.0,
    heartbeat_interval=1.0,
    sequential=3,
    cold_start=False,
    caption_lines=3,
    crossover_rooms=(6,),
    race_joiners=0,  # tests/reliability/test_races.py runs the race small in make test
)


def heartbeat_parameters(sizes: Sizes) -> dict[str, str]:
    """Refresh due a third of the way into the heartbeat run, so every listener refreshes under load."""
    refresh_minutes = max(0.01, sizes.heartbeat_seconds / 3 / 60)
    return {
        **BENCH_PARAMETERS,
        "HEARTBEAT_INTERVAL_SECONDS": str(max(1, int(sizes.heartbeat_interval))),
        "HEARTBEAT_TIMEOUT_SECONDS": str(max(90, int(sizes.heartbeat_interval * 6))),
        "CONNECTION_REFRESH_MINUTES": f"{refresh_minutes:.3f}",
        "CONNECTION_WARNING_MINUTES": f"{refresh_minutes * 1.5:.3f}",
    }


def _floor_of(figures: Figures, floor: dict[str, Any], echo: dict[str, Any], what: str) -> None:
    """The floor is the direct DynamoDB requests plus one bare WebSocket round trip."""
    figures.floor_ms = {q: (floor.get(q) or 0) + (echo.get(q) or 0) for q in ("p50", "p95")}
    figures.floor_what = what


async def _warm_up(stack: BenchStack, in_flight: int) -> None:
    """One small storm, so every function has warm environments before anything is timed."""
    storm = await join_storm(stack, max(in_flight, 10), in_flight, name="warm-up")
    await disconnects(stack, storm)
    await storm.speaker.close()


async def _main_stack_scenarios(
    info: dict[str, Any], sizes: Sizes, results: list[Figures], context: dict[str, Any]
) -> None:
    stack = BenchStack(info)
    await _warm_up(stack, sizes.in_flight)
    floors = await asyncio.to_thread(
        moto_floors,
        info["motoEndpoint"],
        listeners=sizes.listeners,
        in_flight=sizes.in_flight,
        sequential=sizes.sequential,
    )
    echo = await echo_floor(round_trips=sizes.listeners, in_flight=sizes.in_flight)
    echo_sequential = await echo_floor(round_trips=sizes.sequential * 3, in_flight=1)
    context["floors"] = {"moto": floors, "echo": echo, "echo_sequential": echo_sequential}
    for figures in await sequential(stack, sizes.sequential):
        operation = figures.scenario.split()[-1]
        _floor_of(figures, floors[f"sequential {operation}"], echo_sequential, "direct moto requests + echo")
        results.append(figures)
    created = await creations(stack, sizes.creations)
    _floor_of(created, floors["creations"], echo, "100 create transactions at once + echo")
    results.append(created)
    storm_runs: list[dict[str, Any]] = context.setdefault("storm_runs", [])
    storm = None
    for run in range(sizes.storm_runs):
        storm = await join_storm(stack, sizes.listeners, sizes.in_flight)
        _floor_of(storm.figures, floors["join storm"], echo, "PutItem + join transaction + echo")
        results.append(storm.figures)
        storm_runs.append(
            {
                "run": run + 1,
                "errors": storm.figures.errors,
                "violations": len(storm.figures.violations),
                "p95_ms": storm.figures.as_json()["latency_ms"]["p95"],
            }
        )
        if run < sizes.storm_runs - 1:
            gone = await disconnects(stack, storm)
            _floor_of(gone, floors["disconnects"], {}, "leave transactions, direct")
            results.append(gone)
            await storm.speaker.close()
    assert storm is not None
    captioned = await captions.captions(stack, storm, sizes.caption_lines)
    room = await captions.broadcast_floor(captioned.extra["listeners"], sizes.caption_lines)
    minimum = captioned.minimum_requests_per_operation or 0
    one_request = floors["sequential heartbeat"]
    captioned.floor_ms = {q: minimum * (one_request.get(q) or 0) + (room.get(q) or 0) for q in ("p50", "p95")}
    captioned.floor_what = f"{minimum:g} sequential DynamoDB requests + a bare broadcast to the room"
    results.append(captioned)
    ended = await fan_out(stack, storm)
    _floor_of(ended, floors["fan-out"], echo, "conditional detaches + echo")
    results.append(ended)
    # Told the session ended, the phones hang up, as the page does: left open and silent, the
    # sweep would close them in the middle of a later scenario and its requests be counted there.
    await asyncio.gather(*(phone.close() for phone in storm.listeners))
    second = await join_storm(stack, sizes.listeners, sizes.in_flight, name="join storm again")
    _floor_of(second.figures, floors["join storm"], echo, "PutItem + join transaction + echo")
    results.append(second.figures)
    gone = await disconnects(stack, second)
    _floor_of(gone, floors["disconnects"], {}, "leave transactions, direct")
    results.append(gone)
    await second.speaker.close()
    # The template's CAPTION_QUEUE_THRESHOLD (1,000 per language) is above every room here: direct.
    context["crossover_direct"] = await captions.crossover(
        stack, sizes.crossover_rooms, sizes.in_flight, sizes.caption_lines, "direct"
    )
    results.extend(context["crossover_direct"])
    if sizes.race_joiners:
        race = await seat_race(stack, sizes.race_joiners, sizes.race_addresses, sizes.in_flight, TEMPLATE_CAPACITY)
        results.append(race.figures)
        await disconnects(stack, race)
        await race.speaker.close()
    if sizes.cold_start:
        context["cold_start"] = await asyncio.to_thread(
            cold_start.measure, cold_start.environments_of(stack.processes())
        )
    heartbeat = next(figures for figures in results if figures.scenario == "sequential heartbeat")
    context["heartbeat_inputs"] = {
        "writes": heartbeat.requests_per_operation or 1.0,
        "lambda_ms": heartbeat.extra.get("cpu_seconds", {}).get("HeartbeatFunction", 0) * 1000 / heartbeat.operations,
    }


def _caption_crossover(sizes: Sizes, results: list[Figures], context: dict[str, Any]) -> None:
    """The caption rooms again on a stack that pages every language through the queue, beside
    the main stack's (which posts them from sendCaption)."""
    direct: list[Figures] = context.pop("crossover_direct", [])
    parameters = {**BENCH_PARAMETERS, "CAPTION_QUEUE_THRESHOLD": "1"}
    with running_stack(env_vars={"Parameters": parameters}) as info:
        queued = asyncio.run(
            captions.crossover(BenchStack(info), sizes.crossover_rooms, sizes.in_flight, sizes.caption_lines, "queued")
        )
    results.extend(queued)
    context["caption_crossover"] = {
        path: [{"listeners": f.extra.get("listeners"), **f.as_json()["latency_ms"]} for f in figures]
        for path, figures in (("direct", direct), ("queued", queued))
    }
    captions.print_crossover(direct, queued)


def run(sizes: Sizes, json_path: Path | None = DEFAULT_JSON) -> tuple[list[Figures], dict[str, Any]]:
    started = time.perf_counter()
    results: list[Figures] = []
    context: dict[str, Any] = {"storm_runs": [], "failures": []}
    try:
        with running_stack(env_vars={"Parameters": BENCH_PARAMETERS}) as info:
            asyncio.run(_main_stack_scenarios(info, sizes, results, context))
    except Exception:  # the figures so far still get printed and saved
        context["failures"].append(traceback.format_exc())
    try:
        with running_stack(env_vars={"Parameters": heartbeat_parameters(sizes)}) as info:
            beats = asyncio.run(
                heartbeats(
                    BenchStack(info),
                    sizes.heartbeat_sessions,
                    sizes.heartbeat_listeners,
                    sizes.heartbeat_seconds,
                    sizes.heartbeat_interval,
                )
            )
        reference = next((figures for figures in results if figures.scenario == "sequential heartbeat"), None)
        if reference is not None:
            beats.floor_ms, beats.floor_what = reference.floor_ms, reference.floor_what
        results.append(beats)
    except Exception:
        context["failures"].append(traceback.format_exc())
    try:
        _caption_crossover(sizes, results, context)
    except Exception:
        context["failures"].append(traceback.format_exc())
    gateway = None
    try:  # decision 44's mode, measured: its cost beside today's and the floor
        # At most 100 listeners: its beats come every second (the durations divided by 30).
        listeners = min(100, sizes.heartbeat_sessions * sizes.heartbeat_listeners)
        gateway = heartbeat_cost.measure_mode("gateway", listeners=listeners, seconds=sizes.heartbeat_seconds)
    except Exception:
        context["failures"].append(traceback.format_exc())
    inputs = context.pop("heartbeat_inputs", {"writes": 1.0, "lambda_ms": 0.0})
    context["cost"] = heartbeat_cost.options(
        writes_per_beat=inputs["writes"], lambda_ms=inputs["lambda_ms"], gateway=gateway
    )
    context["sizes"] = sizes.__dict__
    context["seconds"] = round(time.perf_counter() - started, 1)
    print_table(results)
    if "cold_start" in context:
        cold_start.print_report(context["cold_start"])
    heartbeat_cost.print_report(context["cost"])
    if len(context["storm_runs"]) > 1:
        clean = sum(not run["errors"] and not run["violations"] for run in context["storm_runs"])
        print(f"\n== {len(context['storm_runs'])} storms in a row: {clean} without an error or a falsehood")
        for storm_run in context["storm_runs"]:
            print(f"  run {storm_run['run']}: {json.dumps(storm_run)}")
    for failure in context["failures"]:
        print(f"\n== a scenario failed:\n{failure}", file=sys.stderr)
    if json_path is not None:
        save(json_path, results, context)
        print(f"\nfigures saved to {json_path}")
    return results, context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    defaults = Sizes()
    parser.add_argument("--listeners", type=int, default=defaults.listeners)
    parser.add_argument("--in-flight", type=int, default=defaults.in_flight)
    parser.add_argument("--creations", type=int, default=defaults.creations)
    parser.add_argument("--heartbeat-sessions", type=int, default=defaults.heartbeat_sessions)
    parser.add_argument("--heartbeat-listeners", type=int, default=defaults.heartbeat_listeners)
    parser.add_argument(
        "--heartbeat-seconds", type=float, default=defaults.heartbeat_seconds, help="longer runs: e.g. 600"
    )
    parser.add_argument("--storm-runs", type=int, default=1, help="the 500/50 storm N times in a row (issue 13: 10)")
    parser.add_argument("--caption-lines", type=int, default=defaults.caption_lines)
    parser.add_argument(
        "--crossover-rooms",
        type=lambda text: tuple(int(size) for size in text.split(",")),
        default=defaults.crossover_rooms,
        help="room sizes of the caption crossover, e.g. 50,200,500,1000",
    )
    parser.add_argument("--race-joiners", type=int, default=defaults.race_joiners, help="0 skips the seat race")
    parser.add_argument("--race-addresses", type=int, default=defaults.race_addresses)
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="the test suite's sizes")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    arguments = parser.parse_args(argv)
    if arguments.tiny:
        sizes = TINY
    else:
        sizes = Sizes(
            creations=arguments.creations,
            listeners=arguments.listeners,
            in_flight=arguments.in_flight,
            heartbeat_sessions=arguments.heartbeat_sessions,
            heartbeat_listeners=arguments.heartbeat_listeners,
            heartbeat_seconds=arguments.heartbeat_seconds,
            storm_runs=max(1, arguments.storm_runs),
            caption_lines=arguments.caption_lines,
            crossover_rooms=arguments.crossover_rooms,
            race_joiners=arguments.race_joiners,
            race_addresses=arguments.race_addresses,
            cold_start=not arguments.no_cold_start,
        )
    results, context = run(sizes, arguments.json)
    failed = [figures.scenario for figures in results if figures.errors or figures.violations]
    failed += ["(a scenario raised)"] if context["failures"] else []
    if failed:
        print(f"\nscenarios with errors or violations: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
