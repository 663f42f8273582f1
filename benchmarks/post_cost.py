"""`python -m benchmarks.post_cost`: what one PostToConnection costs in CPU, on each side, through
the production fan-out path (session_manager.delivery.NoticeDelivery with the messenger and the
management API client of store/clients.py) against a running local stack's management API.

N phones connect (no session: a connection is all a post needs); a separate poster process
fans one caption-sized message out to all of them, `--rounds` times, and reports its own CPU
(getrusage: every thread) and the stack process's CPU (/proc) per post, with the machine's load.
`--cprofile` adds a single-threaded pass under cProfile, grouped by component, to show where the
client's CPU goes per post. No storm, no Lambda worker: the two processes that a caption's fan-out
is made of, measured on their own."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = {
    "type": "caption",
    "timestamp": 1767600000123,
    "sessionId": "faithful-shepherd-427",
    "seq": 7,
    "lineId": "line-7",
    "language": "es",
    "text": "[es] Line 7: grace and peace to you from God our Father and the Lord Jesus Christ.",
    "final": True,
}
# What a function's environment has that a post needs (local_stack/environment.py).
POSTER_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
# cProfile's cumulative time of these functions, per post: what each stage of botocore costs.
STAGES = (
    ("the whole post (client._make_api_call)", "botocore/client.py", "_make_api_call"),
    ("parameter validation", "botocore/validate.py", "validate_parameters"),
    ("serialising", "botocore/serialize.py", "serialize_to_request"),
    ("endpoint resolution", "botocore/client.py", "_resolve_endpoint_ruleset"),
    ("event hooks (emit, all)", "botocore/hooks.py", "emit"),
    ("signing", "botocore/signers.py", "sign"),
    ("sending (urllib3 urlopen)", "urllib3/connectionpool.py", "urlopen"),
    ("parsing the answer", "botocore/parsers.py", "parse"),
    ("retry handler", "botocore/retries/standard.py", "needs_retry"),
)


def _poster(arguments: argparse.Namespace) -> int:
    """The poster process: the layer's code on sys.path, as a Lambda environment has it."""
    sys.path[0:0] = [str(ROOT / "layers" / "session_manager" / "python")]
    from session_manager.delivery import NoticeDelivery
    from session_manager.outcomes import Notice
    from session_manager.store.clients import management_api_client
    from session_manager.store.messenger import ManagementApiNotifier

    spec = json.loads(sys.stdin.read())
    ids = tuple(spec["ids"])
    client = management_api_client(spec["endpoint"])
    if spec.get("config"):  # a variant to compare against the production client's config
        import boto3
        from botocore.config import Config

        merged = client.meta.config.merge(Config(**spec["config"]))
        client = boto3.client("apigatewaymanagementapi", endpoint_url=spec["endpoint"], config=merged)
    delivery = NoticeDelivery(ManagementApiNotifier(client), connections=None, concurrency=spec["concurrency"])
    notice = Notice(ids, MESSAGE)
    delivery.carry_out([Notice(ids[:20], MESSAGE)])  # the client's first use (its lazy setup) is not a post
    report: dict[str, Any] = {"rounds": []}
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(spec["rounds"]):
        round_started = time.perf_counter()
        outcome = delivery.carry_out([notice])
        report["rounds"].append({"wall_ms": round((time.perf_counter() - round_started) * 1000, 1), **outcome.counts()})
    after = resource.getrusage(resource.RUSAGE_SELF)
    posts = len(ids) * spec["rounds"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report.update(
        posts=posts,
        wall_seconds=round(time.perf_counter() - started, 3),
        client_cpu_ms_per_post=round(cpu * 1000 / posts, 3),
        client_user_ms_per_post=round((after.ru_utime - before.ru_utime) * 1000 / posts, 3),
        client_sys_ms_per_post=round((after.ru_stime - before.ru_stime) * 1000 / posts, 3),
    )
    if spec["cprofile"]:
        profile = cProfile.Profile(timer=time.thread_time)  # CPU time: waits for the stack are not the client's
        # In this thread, not the pool's: since Python 3.12 cProfile sees every thread, and a
        # thread's CPU clock read from another thread would be nonsense.
        notifier = ManagementApiNotifier(client)
        profile.enable()
        for connection_id in ids:
            notifier.send(connection_id, MESSAGE)
        profile.disable()
        stats = pstats.Stats(profile).stats
        per_post = {}
        for label, filename, function in STAGES:
            total = sum(
                cumulative
                for (file, _, name), (_, _, _, cumulative, _) in stats.items()
                if file.endswith(filename) and name == function
            )
            per_post[label] = round(total * 1000 / len(ids), 3)
        report["cprofile_ms_per_post"] = per_post
        own: dict[str, float] = {}
        for (file, line, name), (_, _, own_time, _, _) in stats.items():
            own[f"{name} ({file.split('site-packages/')[-1]}:{line})"] = own_time
        report["cprofile_top_own_ms_per_post"] = {
            key: round(value * 1000 / len(ids), 4) for key, value in sorted(own.items(), key=lambda kv: -kv[1])[:40]
        }
    print(json.dumps(report))
    return 0


def _stack_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(arguments: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.fanout import PARAMETERS
    from benchmarks.phones import Phone
    from benchmarks.scenarios import BenchStack
    from local_stack.testing import running_stack

    with running_stack(env_vars={"Parameters": PARAMETERS}) as info:
        stack = BenchStack(info)
        gate = asyncio.Semaphore(25)

        async def connect() -> Phone:
            async with gate:
                return await Phone.connect(stack.url)

        phones = await asyncio.gather(*(connect() for _ in range(arguments.listeners)))
        table = info["tables"]["ConnectionsTable"]
        ids: list[str] = []
        for page in stack.dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="connectionId"):
            ids += [item["connectionId"]["S"] for item in page["Items"]]
        reports = []
        for concurrency in arguments.concurrency:
            spec = {
                "endpoint": info["managementEndpoint"],
                "ids": ids,
                "rounds": arguments.rounds,
                "concurrency": concurrency,
                "cprofile": arguments.cprofile,
                "config": json.loads(arguments.config) if arguments.config else None,
            }
            load_before = os.getloadavg()
            stack_before = _stack_cpu(int(info["pid"]))
            poster = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.post_cost",
                "--poster",
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, **POSTER_ENVIRONMENT},
            )
            output, _ = await poster.communicate(json.dumps(spec).encode())
            stack_spent = _stack_cpu(int(info["pid"])) - stack_before
            report = json.loads(output)
            profiled_posts = len(ids) if arguments.cprofile else 0
            report.update(
                listeners=len(ids),
                concurrency=concurrency,
                config=arguments.config or "production",
                crt_signing=os.environ.get("BOTO_DISABLE_CRT", "").lower() != "true",
                load_before=[round(load, 2) for load in load_before],
                load_after=[round(load, 2) for load in os.getloadavg()],
                # The warm-up's 20 posts and a profiled pass land on the stack too.
                stack_cpu_ms_per_post=round(stack_spent * 1000 / (report["posts"] + 20 + profiled_posts), 3),
            )
            reports.append(report)
        await asyncio.gather(*(phone.close() for phone in phones))
        return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.post_cost", description=__doc__)
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[16],
        help="the fan-out's pool (NoticeDelivery), or several: 1,4,16",
    )
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument(
        "--config", default="", help='botocore Config overrides as JSON: {"parameter_validation": false}'
    )
    parser.add_argument("--poster", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.poster:
        return _poster(arguments)
    for report in asyncio.run(_measure(arguments)):
        wall = [entry["wall_ms"] for entry in report.pop("rounds")]
        print(json.dumps({**report, "round_wall_ms": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
