"""A tiny run of every `make bench` scenario: the figures are printed, never asserted; what is
asserted is that each scenario ran without an error and left the tables in a promised state."""

from __future__ import annotations

from benchmarks.__main__ import TINY, run


def test_a_tiny_run_of_every_benchmark_scenario(capsys):
    with capsys.disabled():  # the figures are for reading: always shown
        print()
        results, context = run(TINY, json_path=None)
    scenarios = {figures.scenario.split(" (")[0] for figures in results}
    assert scenarios >= {
        "sequential heartbeat",
        "sequential join",
        "sequential create",
        "creations",
        "join storm",
        "sessionEnded fan-out",
        "disconnects",
        "heartbeats",
    }
    for figures in results:
        assert figures.errors == {}, figures.scenario
        assert figures.violations == [], figures.scenario
        assert figures.operations > 0, figures.scenario
    refreshed = next(figures for figures in results if figures.scenario.startswith("heartbeats")).outcomes
    assert refreshed.get("refresh connectionRefreshComplete", 0) > 0  # refreshes did happen under load
    assert context["cost"]["options"]
