"""What a scenario measured, as percentiles beside its floor and target, printed and saved as JSON."""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def percentiles(samples_ms: list[float]) -> dict[str, float | None]:
    if not samples_ms:
        return {"p50": None, "p95": None, "p99": None}
    if len(samples_ms) == 1:
        return {"p50": samples_ms[0], "p95": samples_ms[0], "p99": samples_ms[0]}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


@dataclass
class Figures:
    scenario: str
    operations: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    errors: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    dynamodb_requests: dict[str, int] = field(default_factory=dict)  # by operation, whole scenario
    minimum_requests_per_operation: float | None = None
    floor_ms: dict[str, float | None] = field(default_factory=dict)  # p50/p95 of the floor
    floor_what: str = ""
    target: str = ""
    violations: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.operations / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_operation(self) -> float | None:
        if not self.operations or not self.dynamodb_requests:
            return None
        return sum(self.dynamodb_requests.values()) / self.operations

    def ratio(self, quantile: str) -> float | None:
        measured = percentiles(self.latencies_ms)[quantile]
        floor = self.floor_ms.get(quantile)
        if measured is None or not floor:
            return None
        return measured / floor

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        data.update(
            latency_ms=percentiles(self.latencies_ms),
            throughput_per_second=self.throughput,
            requests_per_operation=self.requests_per_operation,
            ratio_to_floor={"p50": self.ratio("p50"), "p95": self.ratio("p95")},
        )
        return data


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def print_table(results: list[Figures]) -> None:
    header = (
        f"{'scenario':34} {'ops':>5} {'p50':>7} {'p95':>7} {'p99':>7} {'ops/s':>7} {'errors':>6} "
        f"{'floor p50/p95':>14} {'x floor p50/p95':>16} {'ddb req/op':>11} {'target':>24}"
    )
    print(header)
    print("-" * len(header))
    for figures in results:
        spread = percentiles(figures.latencies_ms)
        requests = figures.requests_per_operation
        minimum = figures.minimum_requests_per_operation
        request_text = "-" if requests is None else f"{requests:.1f}" + (f" ({minimum:g})" if minimum else "")
        floor = f"{_ms(figures.floor_ms.get('p50'))}/{_ms(figures.floor_ms.get('p95'))}"
        ratios = f"{_x(figures.ratio('p50'))}/{_x(figures.ratio('p95'))}"
        print(
            f"{figures.scenario:34} {figures.operations:5} {_ms(spread['p50']):>7} {_ms(spread['p95']):>7} "
            f"{_ms(spread['p99']):>7} {figures.throughput:7.1f} {sum(figures.errors.values()):6} "
            f"{floor:>14} {ratios:>16} {request_text:>11} {figures.target:>24}"
        )
    print("latencies in ms; ddb req/op: DynamoDB requests per operation (the minimum in brackets)")
    for figures in results:
        if figures.errors or figures.violations:
            print(f"  {figures.scenario}: errors {figures.errors or 'none'}; violations {len(figures.violations)}")
            for violation in figures.violations[:10]:
                print(f"    {violation}")


def machine() -> dict[str, Any]:
    memory_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    import os

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1) if memory_kb else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load,
    }


def save(path: Path, results: list[Figures], context: dict[str, Any]) -> None:
    document = {"machine": machine(), **context, "scenarios": [figures.as_json() for figures in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
