"""A tiny run of every `make bench` scenario: the figures are printed, never asserted; what is
asserted is that each scenario ran without an error and left the tables in a promised state."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import TINY, run


# Every scenario on three stacks: about 60 s alone, 119 s beside the suite's heaviest files,
# 174-190 s beside two copies of itself, and once past the suite's 300 s in a clean make test
# (2026-12-07); the bound is for a run that hangs, not for a busy machine.
@pytest.mark.timeout(600)
def test_a_tiny_run_of_every_benchmark_scenario(capsys, monkeypatch):
    # The scenarios run on stacks with warm pools, as `make bench` does (tests/conftest.py turns them off).
    monkeypatch.setenv("LOCAL_STACK_WARM_ENVIRONMENTS", "1")
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
        "captions",
        "captions direct",
        "captions queued",
    }
    for figures in results:
        assert figures.errors == {}, figures.scenario
        assert figures.violations == [], figures.scenario
        assert figures.operations > 0, figures.scenario
    refreshed = next(figures for figures in results if figures.scenario.startswith("heartbeats")).outcomes
    assert refreshed.get("refresh connectionRefreshComplete", 0) > 0  # refreshes did happen under load
    assert context["failures"] == []
    for figures in (figures for figures in results if figures.scenario.startswith("captions")):
        # Every seated listener had every line, once, in its language; the queue path was taken.
        assert figures.outcomes["delivered"] == figures.operations * figures.extra["listeners"], figures.scenario
        assert figures.extra["translate_requests_per_caption"] == 3, figures.scenario
    queued = next(figures for figures in results if figures.scenario.startswith("captions queued"))
    assert queued.extra["sqs_sends_per_caption"] > 0
    direct = next(figures for figures in results if figures.scenario.startswith("captions direct"))
    assert direct.extra["sqs_sends_per_caption"] == 0
    assert context["cost"]["options"]
    # Decision 44's mode, measured on its own stack: the MOCK route answers every beat, no DynamoDB.
    gateway = context["cost"]["gateway"]
    assert gateway["heartbeats"] > 0 and gateway["acks"] == gateway["heartbeats"], gateway
    # None per beat; the bound is below one (a beat that wrote) because on a starved machine a
    # $connect's request that botocore gave up on may still land inside the measured window.
    assert gateway["dynamodb_requests_per_heartbeat"] < 0.5, gateway


def test_the_loadtest_runs_bounded_against_a_stage(capsys):
    """`make loadtest` against the local stack standing in for a deployed stage."""
    from benchmarks.__main__ import BENCH_PARAMETERS
    from benchmarks.loadtest import main
    from local_stack.testing import running_stack

    with running_stack(env_vars={"Parameters": BENCH_PARAMETERS}, warm_environments=1) as info:
        status = main(["--url", info["websocketUrl"], "--token", info["speakerToken"], "--listeners", "6"])
    report = capsys.readouterr().out
    assert status == 0, report
    assert '"sessionJoined": 6' in report
    assert '"sessionEnded_missing": 0' in report
