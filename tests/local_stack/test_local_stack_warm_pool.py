"""Execution environments are started ahead of demand, and the init limit charges an init only for
the time it could run: real worker processes, real scheduling."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack import functions
from local_stack.errors import LocalStackError
from local_stack.functions import FunctionPool, LogSink, WorkerCrashError, warm_environments
from local_stack.template import FunctionDefinition

HANDLER_SOURCE = """
import os, time
INIT_STARTED = time.time()
if os.environ.get("INIT_SLEEP_SECONDS"):
    time.sleep(float(os.environ["INIT_SLEEP_SECONDS"]))
if os.environ.get("INIT_CPU_SECONDS"):
    spent = 0.0
    while spent < float(os.environ["INIT_CPU_SECONDS"]):
        spent = time.process_time()

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("cpu"):
        until = time.process_time() + event["cpu"]
        while time.process_time() < until:
            pass
    return {"pid": os.getpid(), "initStarted": INIT_STARTED}
"""


def pool_of(
    tmp_path: Path, *, warm: int = 0, max_workers: int = 10, timeout: float = 30.0, **environment: str
) -> FunctionPool:
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "app.py").write_text(HANDLER_SOURCE, encoding="utf-8")
    definition = FunctionDefinition(
        logical_id="ProbeFunction",
        handler="app.handler",
        code_dir=code,
        layer_dirs=(),
        timeout_seconds=timeout,
        memory_mb=128,
        environment_template={},
    )
    env = {"PATH": os.environ.get("PATH", ""), **environment}
    return FunctionPool(definition, env, LogSink(io.StringIO()), max_workers=max_workers, warm_workers=warm)


@pytest.fixture
def pools() -> Iterator[list[FunctionPool]]:
    created: list[FunctionPool] = []
    yield created
    for pool in created:
        pool.close()


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_the_warm_pool_is_ready_before_the_first_request(tmp_path, pools):
    pool = pool_of(tmp_path, warm=3)
    pools.append(pool)
    pool.prewarm()
    assert pool.wait_until_warm(60)
    warm_pids = set(pool.worker_pids())
    assert len(warm_pids) == 3
    answered = {pool.invoke({})["pid"] for _ in range(3)}
    assert answered <= warm_pids  # served by environments started before it came


def test_taking_the_last_idle_environment_starts_the_next_one(tmp_path, pools):
    pool = pool_of(tmp_path, warm=1)
    pools.append(pool)
    pool.prewarm()
    assert pool.wait_until_warm(60)
    pool.invoke({})
    # No request is waiting, yet a spare is on its way: a rising load finds it warm.
    wait_for(lambda: len(pool.worker_pids()) == 2)


def test_the_pool_never_grows_past_its_cap(tmp_path, pools):
    pool = pool_of(tmp_path, warm=0, max_workers=2)
    pools.append(pool)
    threads = [threading.Thread(target=pool.invoke, args=({},)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert pool.wait_until_warm(60)
    assert len(pool.worker_pids()) == 2


def test_requests_beyond_the_idle_environments_wait_for_fresh_ones(tmp_path, pools):
    pool = pool_of(tmp_path, warm=0, INIT_SLEEP_SECONDS="0.5")
    pools.append(pool)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(pool.invoke({}))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4


def test_waiting_for_the_init_gate_is_not_charged_to_an_init(tmp_path, pools, monkeypatch):
    """One init at a time, each 1.5 s, against a 2 s limit: the fourth starts 4.5 s after it was
    asked for and must still succeed."""
    monkeypatch.setattr(functions, "INIT_GATE", functions.InitGate(1))
    monkeypatch.setattr(functions, "INIT_TIMEOUT_SECONDS", 2.0)
    pool = pool_of(tmp_path, warm=4, INIT_SLEEP_SECONDS="1.5")
    pools.append(pool)
    pool.prewarm()
    assert pool.wait_until_warm(60)
    assert len(pool.worker_pids()) == 4


def test_an_init_that_is_slow_on_its_own_is_stopped_at_the_limit(tmp_path, pools, monkeypatch):
    monkeypatch.setattr(functions, "INIT_TIMEOUT_SECONDS", 1.0)
    pool = pool_of(tmp_path, INIT_SLEEP_SECONDS="30")
    pools.append(pool)
    with pytest.raises(WorkerCrashError, match=r"init did not finish in 1\.0 s"):
        pool.invoke({})
    assert pool.worker_pids() == []


@contextlib.contextmanager
def sharing_one_core_with_three_busy_processes() -> Iterator[None]:
    """This process (and the workers it starts) pinned to one core with three busy loops."""
    core = min(os.sched_getaffinity(0))
    hog = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog, str(core)]) for _ in range(3)]
    original_affinity = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {core})
        yield
    finally:
        os.sched_setaffinity(0, original_affinity)
        for process in hogs:
            process.kill()
            process.wait()


needs_schedstat = pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="no schedstat")


@needs_schedstat
def test_an_init_starved_of_cpu_by_a_busy_machine_is_not_failed(tmp_path, pools, monkeypatch):
    """An init needing 0.8 s of CPU shares one core with three busy processes: it takes well over
    its 1.5 s limit in wall time, but the time it waited for the core is not charged to it."""
    monkeypatch.setattr(functions, "INIT_TIMEOUT_SECONDS", 1.5)
    with sharing_one_core_with_three_busy_processes():
        pool = pool_of(tmp_path, INIT_CPU_SECONDS="0.8")
        pools.append(pool)
        started = time.monotonic()
        result = pool.invoke({})
        starved_for = time.monotonic() - started
    assert result["pid"] in pool.worker_pids()
    if starved_for <= 1.5:  # the premise: the wall clock alone would have failed it
        pytest.skip(f"the busy processes did not starve the init ({starved_for:.2f} s); nothing was shown")


@needs_schedstat
def test_an_invocation_starved_of_cpu_is_not_timed_out(tmp_path, pools):
    pool = pool_of(tmp_path, timeout=1.5)
    pools.append(pool)
    pool.invoke({})  # warm, before the machine gets busy
    with sharing_one_core_with_three_busy_processes():
        started = time.monotonic()
        result = pool.invoke({"cpu": 0.8})
        starved_for = time.monotonic() - started
    assert result["pid"] in pool.worker_pids()
    if starved_for <= 1.5:  # the premise: its Timeout would have passed on the wall clock
        pytest.skip(f"the busy processes did not starve the worker ({starved_for:.2f} s); nothing was shown")


def test_an_invocation_past_its_timeout_is_stopped(tmp_path, pools):
    pool = pool_of(tmp_path, timeout=1.0)
    pools.append(pool)
    with pytest.raises(functions.FunctionTimeoutError, match=r"Task timed out after 1\.00 seconds"):
        pool.invoke({"sleep": 30})
    assert pool.invoke({})["pid"] in pool.worker_pids()  # its environment was replaced


def test_an_init_failure_reaches_the_request_that_asked(tmp_path, pools):
    pool = pool_of(tmp_path)
    pools.append(pool)
    (tmp_path / "code" / "app.py").write_text("raise RuntimeError('broken at import')\n", encoding="utf-8")
    with pytest.raises(functions.FunctionError) as failure:
        pool.invoke({})
    assert failure.value.error_type == "Runtime.ImportModuleError"
    assert "broken at import" in failure.value.error_message


def test_a_request_goes_ahead_of_the_warm_pool_at_the_init_gate(tmp_path, pools, monkeypatch):
    """Six warm-pool starts of 1 s each queue at a one-slot gate; a request arriving behind them is
    served by the very next init, so when it is answered only the first warm one has finished."""
    monkeypatch.setattr(functions, "INIT_GATE", functions.InitGate(1))
    warm = pool_of(tmp_path / "warm", warm=6, INIT_SLEEP_SECONDS="1")
    pools.append(warm)
    warm.prewarm()
    time.sleep(0.3)  # the first warm start holds the gate, five wait behind it
    demand = pool_of(tmp_path / "demand")
    pools.append(demand)
    demand.invoke({})
    assert len(warm.worker_pids()) <= 1


@pytest.mark.parametrize(("raw", "expected"), [("", 1), ("0", 0), ("4", 4), (" 10 ", 10)])
def test_the_warm_pool_size_setting(raw, expected):
    assert warm_environments({"LOCAL_STACK_WARM_ENVIRONMENTS": raw}) == expected


@pytest.mark.parametrize("raw", ["-1", "11", "two", "1.5"])
def test_a_bad_warm_pool_size_fails_loudly(raw):
    with pytest.raises(LocalStackError, match="LOCAL_STACK_WARM_ENVIRONMENTS must be a whole number from 0 to 10"):
        warm_environments({"LOCAL_STACK_WARM_ENVIRONMENTS": raw})
