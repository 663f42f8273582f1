"""`python -m benchmarks.fanout`: the two fan-outs of issue 11 alone, on a fresh local stack, with
the CPU each process spent per post and the machine's load beside every figure:

- captions: the storm's speaker sends final lines to the seated room (benchmarks/captions.py);
- `sessionEnded`: the speaker ends the session (benchmarks/scenarios.py, `fan_out`).

`--profile DIR` records each fan-out with py-spy (pinned in requirements/dev.txt) on the stack's
process and on the environments of the function that fans out, as collapsed stacks
(`<scenario>-<process>-<pid>.txt`, one line per stack with its sample count) and a summary of
where the samples went (`summary.txt`): on a 2-core machine shared with others, CPU per post and
the share of samples by component are what compare from run to run, not wall time."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import captions
from benchmarks.__main__ import BENCH_PARAMETERS, _warm_up
from benchmarks.figures import Figures, percentiles
from benchmarks.scenarios import BenchStack, fan_out, join_storm
from local_stack.testing import running_stack

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = {
    **BENCH_PARAMETERS,
    # The phones send no heartbeats: on a loaded machine the storm and a profiled fan-out can
    # outlast the template's 90 s, and the sweep would close them mid-scenario.
    "HEARTBEAT_TIMEOUT_SECONDS": "600",
}
PY_SPY = Path(sys.executable).parent / "py-spy"
PROFILE_RATE = 200  # samples per second: enough for a 10-20 s scenario, little overhead

# Where a sample's innermost frames put it: the first pattern found, innermost first, names it.
COMPONENTS = (
    ("botocore: signing", r"botocore/(auth|signers)\.py"),
    ("botocore: serialising", r"botocore/(serialize|validate)\.py"),
    ("botocore: parsing", r"botocore/parsers\.py"),
    ("botocore: endpoint resolution", r"botocore/(regions|endpoint_provider)\.py"),
    ("botocore: event hooks", r"botocore/(hooks|handlers)\.py"),
    ("botocore: retries", r"botocore/retries/"),
    ("urllib3 / http.client", r"(urllib3/|http/client\.py|botocore/awsrequest\.py|botocore/httpsession\.py)"),
    ("botocore: other", r"botocore/"),
    ("json", r"json/"),
    ("logging", r"(logging/|aws_lambda_powertools/logging)"),
    ("powertools: metrics", r"aws_lambda_powertools/metrics"),
    ("websockets framing", r"websockets/"),
    ("aiohttp", r"aiohttp/"),
    ("fault / counter middlewares", r"local_stack/(faults|embedded_aws)\.py"),
    ("local stack: management API", r"local_stack/management\.py"),
    ("moto / werkzeug", r"(moto/|werkzeug/|flask/)"),
    ("asyncio", r"asyncio/"),
    ("threads / pool", r"(concurrent/futures|threading\.py|queue\.py)"),
    ("session_manager", r"session_manager/"),
)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


class Profiler:
    """py-spy record on a set of pids for the length of a `with` block (nothing if `directory` is None)."""

    def __init__(self, directory: Path | None, name: str, pids: dict[int, str]) -> None:
        self.directory, self.name, self.pids = directory, name, pids
        self._spies: list[tuple[subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> Profiler:
        if self.directory is None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        for pid, process in self.pids.items():
            output = self.directory / f"{self.name}-{process}-{pid}.txt"
            command = [str(PY_SPY), "record", "--pid", str(pid), "--format", "raw", "--rate", str(PROFILE_RATE)]
            command += ["--threads", "--nonblocking", "--output", str(output)]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._spies.append((spy, output))
        time.sleep(1.0)  # py-spy attaches before the scenario starts
        return self

    def __exit__(self, *exc: object) -> None:
        for spy, _ in self._spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for spy, _ in self._spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()

    def outputs(self) -> list[Path]:
        return [output for _, output in self._spies if output.exists()]


# A sample whose innermost frame is one of these is a thread waiting (for a socket, a lock, the
# event loop's select), not CPU: py-spy --nonblocking cannot always tell, so they are left out.
WAITING = re.compile(
    r"^(SocketIO\.readinto|.*\.select|poll_wait_for_socket|.*do_poll|Condition\.wait|Event\.wait|"
    r"_worker|.*watch|Thread\.join|.*_wait_for_tstate_lock|Connection\._recv|Connection\._poll|"
    r"BaseSelectorEventLoop\.select|time\.sleep|_SimpleQueue\.get|Queue\.get|"
    r"ThreadedWSGIServer\.serve_forever|.*serve_forever|.*\.accept|thread \()"
)


def summarise(collapsed: Path, top: int = 25) -> str:
    """Samples by component, each charged to the innermost frame that names one (so the socket
    write under websockets counts as websockets framing, not as the middleware around it), and
    the hottest own frames; waiting threads left out."""
    by_component: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if WAITING.match(frames[-1]):
            idle += count
            continue
        own[frames[-1]] += count
        for frame in reversed(frames):
            component = next((name for name, pattern in COMPONENTS if re.search(pattern, frame)), None)
            if component is not None:
                by_component[component] += count
                break
        else:
            by_component["other"] += count
    busy = total - idle
    lines = [f"{collapsed.name}: {total} samples, {busy} busy ({idle} waiting, left out)"]
    for component, count in by_component.most_common():
        lines.append(f"  {count * 100 / max(busy, 1):5.1f}%  {component}")
    lines.append("  hottest own frames:")
    for frame, count in own.most_common(top):
        lines.append(f"  {count * 100 / max(busy, 1):5.1f}%  {frame}")
    return "\n".join(lines)


def per_post(figures: Figures, posts: int, function: str) -> dict[str, Any]:
    cpu = figures.extra.get("cpu_seconds", {})
    functions = sum(seconds for name, seconds in cpu.items() if name not in ("stack",))
    return {
        "posts": posts,
        "function_ms_per_post": round(cpu.get(function, 0) * 1000 / posts, 3) if posts else None,
        "all_functions_ms_per_post": round(functions * 1000 / posts, 3) if posts else None,
        "stack_ms_per_post": round(cpu.get("stack", 0) * 1000 / posts, 3) if posts else None,
    }


def _pids_of(stack: BenchStack, *names: str) -> dict[int, str]:
    return {pid: name for pid, name in stack.processes().items() if name in names}


async def scenarios(info: dict[str, Any], args: argparse.Namespace, report: dict[str, Any]) -> None:
    stack = BenchStack(info)
    await _warm_up(stack, args.in_flight)
    storm = await join_storm(stack, args.listeners, args.in_flight)
    report["storm"] = {"errors": storm.figures.errors, "seated": len(storm.languages)}
    fan_out_function = "SendCaptionFunction" if args.queue_threshold is None else "CaptionFanOutFunction"
    # Lines first so the caption functions' pool has grown (it starts one more environment when
    # the last idle one is taken) before the profiler attaches and the CPU is counted.
    for _ in range(4):
        await storm.speaker.request("sendCaption", text="Warming up.")
        await asyncio.sleep(0.3)
    pids = _pids_of(stack, "stack", fan_out_function)
    load_before = load_average()
    with Profiler(args.profile, "captions", pids) as profiler:
        captioned = await captions.captions(stack, storm, args.caption_lines)
    report["captions"] = {
        "load_before": load_before,
        "load_after": load_average(),
        "last_listener_ms": percentiles(captioned.latencies_ms),
        "each_listener_ms": captioned.extra.get("each_listener_ms"),
        "captionAccepted_ms": captioned.extra.get("captionAccepted_ms"),
        "errors": captioned.errors,
        "dynamodb_requests_per_line": sum(captioned.dynamodb_requests.values()) / max(args.caption_lines, 1),
        "cpu_seconds": captioned.extra.get("cpu_seconds"),
        "environments_started": captioned.extra.get("environments_started"),
        "cpu_seconds_fresh_environments": captioned.extra.get("cpu_seconds_fresh_environments"),
        **per_post(captioned, int(captioned.outcomes.get("delivered", 0)), fan_out_function),
        "profiles": [str(path) for path in profiler.outputs()],
    }
    if not args.no_end:
        pids = _pids_of(stack, "stack", "EndSessionFunction")
        load_before = load_average()
        with Profiler(args.profile, "ended", pids) as profiler:
            ended = await fan_out(stack, storm)
        report["sessionEnded"] = {
            "load_before": load_before,
            "load_after": load_average(),
            "latency_ms": percentiles(ended.latencies_ms),
            "last_ms": ended.extra.get("last_ms"),
            "errors": ended.errors,
            "violations": ended.violations,
            "cpu_seconds": ended.extra.get("cpu_seconds"),
            "dynamodb_requests": ended.dynamodb_requests,
            "environments_started": ended.extra.get("environments_started"),
            "cpu_seconds_fresh_environments": ended.extra.get("cpu_seconds_fresh_environments"),
            **per_post(ended, ended.operations, "EndSessionFunction"),
            "profiles": [str(path) for path in profiler.outputs()],
        }
    await asyncio.gather(*(phone.close() for phone in storm.listeners))


def summarise_main(argv: list[str]) -> int:
    for path in argv:
        print(summarise(Path(path)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__)
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--caption-lines", type=int, default=20)
    parser.add_argument("--no-end", action="store_true", help="skip the sessionEnded fan-out")
    parser.add_argument(
        "--queue-threshold", type=int, default=None, help="CAPTION_QUEUE_THRESHOLD: pages through the queue above it"
    )
    parser.add_argument("--profile", type=Path, default=None, help="a directory for py-spy's profiles")
    parser.add_argument("--json", type=Path, default=ROOT / ".local-stack" / "fanout-results.json")
    args = parser.parse_args(argv)
    parameters = dict(PARAMETERS)
    if args.queue_threshold is not None:
        parameters["CAPTION_QUEUE_THRESHOLD"] = str(args.queue_threshold)
    report: dict[str, Any] = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args)}
    with running_stack(env_vars={"Parameters": parameters}) as info:
        asyncio.run(scenarios(info, args, report))
    report["args"] = {key: str(value) for key, value in report["args"].items()}
    if args.profile is not None:
        parts = ("captions", "sessionEnded")
        summaries = [summarise(Path(path)) for part in parts for path in report.get(part, {}).get("profiles", [])]
        (args.profile / "summary.txt").write_text("\n\n".join(summaries) + "\n")
        print("\n\n".join(summaries))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({key: value for key, value in report.items() if key != "args"}, indent=2, default=str))
    failed = report.get("captions", {}).get("errors") or report.get("sessionEnded", {}).get("errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(summarise_main(sys.argv[2:]) if sys.argv[1:2] == ["summarise"] else main())
