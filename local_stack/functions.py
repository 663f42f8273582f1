"""Functions run like Lambda: per function, a pool of worker processes (execution environments),
each warm between invocations; a busy pool grows so a slow invocation never stalls another, and
an invocation past the function's Timeout kills its worker.

Where this differs from Lambda (docs/local-stack.md, "Execution environments under load"): on
one machine, environments share its cores, so they are started ahead of demand (a warm pool,
grown when the last idle one is taken) a few at a time through one gate, and the 10-second init
limit counts only the time an init could run: time spent waiting for a core, or for the gate,
while other environments start, is not charged to it. A function's Timeout is charged the same
way (runnable but waiting for a core does not count), up to six times the Timeout in all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from local_stack import worker as worker_protocol
from local_stack.errors import LocalStackError
from local_stack.template import FunctionDefinition, function_arn

logger = logging.getLogger(__name__)

WORKER_SCRIPT = Path(worker_protocol.__file__).resolve()
MAX_WORKERS_PER_FUNCTION = 10
INIT_TIMEOUT_SECONDS = 10.0  # Lambda's limit for the init phase, which does not count against Timeout
# However busy the machine, an init that has not finished after this long is stuck, not slow.
INIT_WALL_LIMIT_SECONDS = 120.0
INIT_POLL_SECONDS = 0.25
# An invocation's Timeout is charged the same way, up to this many times the Timeout in all.
INVOKE_WALL_FACTOR = 6
SHUTDOWN_GRACE_SECONDS = 2.0
WARM_ENVIRONMENTS_VARIABLE = "LOCAL_STACK_WARM_ENVIRONMENTS"
DEFAULT_WARM_ENVIRONMENTS = 1


class InitGate:
    """At most `slots` inits at once, machine-wide: inits are CPU-bound (imports), and more at once
    than there are cores only makes each slower. A start a request is waiting for goes ahead of
    warm-pool starts nobody is waiting for yet."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting_for_demand = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def admitted(self, *, for_demand: bool) -> Iterator[None]:
        with self._changed:
            self._waiting_for_demand += int(for_demand)
            try:
                while self._free == 0 or (not for_demand and self._waiting_for_demand):
                    self._changed.wait()
            finally:
                self._waiting_for_demand -= int(for_demand)
            self._free -= 1
        try:
            yield
        finally:
            with self._changed:
                self._free += 1
                self._changed.notify_all()


INIT_GATE = InitGate(max(1, os.cpu_count() or 1))


def warm_environments(environ: Mapping[str, str] = os.environ) -> int:
    """The warm pool's size per function, from LOCAL_STACK_WARM_ENVIRONMENTS (0 to 10)."""
    raw = environ.get(WARM_ENVIRONMENTS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_WARM_ENVIRONMENTS
    if not raw.isdigit() or int(raw) > MAX_WORKERS_PER_FUNCTION:
        raise LocalStackError(
            f"{WARM_ENVIRONMENTS_VARIABLE} must be a whole number from 0 to {MAX_WORKERS_PER_FUNCTION}, got {raw!r}"
        )
    return int(raw)


def _runqueue_wait_seconds(pid: int) -> float | None:
    """How long the process's threads have waited for a core (runnable, not running), from the
    kernel's schedstat; None where the kernel does not say."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return total / 1e9


class InvocationError(Exception):
    """The invocation produced no result; API Gateway answers such failures with a 500."""


class FunctionError(InvocationError):
    """The handler raised; carries the runtime's error payload."""

    def __init__(self, function_id: str, payload: Mapping[str, Any]) -> None:
        self.error_type = str(payload.get("errorType", "Exception"))
        self.error_message = str(payload.get("errorMessage", ""))
        self.payload = dict(payload)
        super().__init__(f"{function_id} raised {self.error_type}")


class FunctionTimeoutError(InvocationError):
    def __init__(self, function_id: str, timeout_seconds: float) -> None:
        super().__init__(f"{function_id}: Task timed out after {timeout_seconds:.2f} seconds")
        self.payload = {"errorType": "Sandbox.Timedout", "errorMessage": str(self)}


class WorkerCrashError(InvocationError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.payload = {"errorType": "Runtime.ExitError", "errorMessage": message}


class LogSink:
    """Where handler output goes: every line prefixed with the function's logical id."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write_line(self, function_id: str, line: str) -> None:
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(f"[{function_id}] {line.rstrip()}\n")
            stream.flush()

    def forward(self, function_id: str, pipe: IO[bytes]) -> threading.Thread:
        def pump() -> None:
            with pipe:
                for raw_line in iter(pipe.readline, b""):
                    self.write_line(function_id, raw_line.decode("utf-8", errors="replace"))

        thread = threading.Thread(target=pump, name=f"logs-{function_id}", daemon=True)
        thread.start()
        return thread


class Worker:
    """One execution environment: a process running local_stack/worker.py."""

    def __init__(self, function: FunctionDefinition, environment: Mapping[str, str], log_sink: LogSink):
        self.function = function
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        command = [
            sys.executable,
            "-P",  # keep the local stack's own directory off the function's sys.path
            str(WORKER_SCRIPT),
            "--handler", function.handler,
            "--function-name", function.logical_id,
            "--function-arn", function_arn(function.logical_id),
            "--memory-mb", str(function.memory_mb),
            "--request-fd", str(request_read),
            "--response-fd", str(response_write),
        ]  # fmt: skip
        for directory in (function.code_dir, *function.layer_dirs):
            command += ["--path", str(directory)]
        try:
            self._process = subprocess.Popen(
                command,
                env=dict(environment),
                cwd=function.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_read, response_write),
                start_new_session=True,
            )
        finally:
            os.close(request_read)
            os.close(response_write)
        self._requests = Connection(request_write, readable=False)
        self._responses = Connection(response_read, writable=False)
        assert self._process.stdout is not None and self._process.stderr is not None
        self._log_threads = [
            log_sink.forward(function.logical_id, self._process.stdout),
            log_sink.forward(function.logical_id, self._process.stderr),
        ]

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_until_ready(self) -> None:
        """The init phase: importing the handler module, with Lambda's 10-second limit counted in
        time the init could run (see the module's docstring)."""
        response = self._receive_init()
        if response.get("status") != worker_protocol.READY:
            self.kill()
            error_type = str(response.get("errorType", ""))
            if not error_type.startswith("Runtime."):
                error_type = "Runtime.ImportModuleError"  # the module raised while being imported
            error = FunctionError(self.function.logical_id, {**response, "errorType": error_type})
            logger.error("%s: init failed: %s: %s", self.function.logical_id, error_type, error.error_message)
            raise error

    def invoke(self, event: Any, request_id: str) -> Any:
        timeout = self.function.timeout_seconds
        request = {"event": event, "requestId": request_id, "deadlineMs": int((time.time() + timeout) * 1000)}
        try:
            self._requests.send_bytes(json.dumps(request).encode())
        except OSError as error:
            self.kill()
            raise WorkerCrashError(f"{self.function.logical_id}: worker is gone ({error})") from error
        response = self._receive(timeout, what="invoke")
        if response.get("status") == worker_protocol.RESULT:
            return response.get("result")
        raise FunctionError(self.function.logical_id, response)

    def _receive_init(self) -> dict[str, Any]:
        elapsed, starved = self._wait_charged(INIT_TIMEOUT_SECONDS, INIT_WALL_LIMIT_SECONDS, what="init")
        if elapsed is not None:
            raise WorkerCrashError(
                f"{self.function.logical_id}: init did not finish in {INIT_TIMEOUT_SECONDS} s"
                f" ({elapsed:.1f} s in all, {starved:.1f} s of it waiting for a core)"
            )
        return self._read(what="init")

    def _receive(self, timeout: float, *, what: str) -> dict[str, Any]:
        """An invocation's answer within its Timeout, charged like the init (module docstring)."""
        elapsed, _ = self._wait_charged(timeout, max(timeout * INVOKE_WALL_FACTOR, timeout + 30), what=what)
        if elapsed is not None:
            raise FunctionTimeoutError(self.function.logical_id, timeout)
        return self._read(what=what)

    def _wait_charged(self, limit: float, wall_limit: float, *, what: str) -> tuple[float | None, float]:
        """Waits for the worker's next answer; (None, _) once it is there. Otherwise, when the time
        the worker could run reaches `limit` (or all the time reaches `wall_limit`), kills it and
        returns (elapsed, starved) seconds."""
        started = time.monotonic()
        waited_before = _runqueue_wait_seconds(self.pid)
        try:
            while not self._responses.poll(min(INIT_POLL_SECONDS, limit)):
                elapsed = time.monotonic() - started
                waited_now = _runqueue_wait_seconds(self.pid)
                starved = 0.0 if waited_before is None or waited_now is None else waited_now - waited_before
                if elapsed - starved >= limit or elapsed >= wall_limit:
                    self.kill()
                    return elapsed, starved
        except (EOFError, OSError) as error:
            self.kill()
            raise WorkerCrashError(f"{self.function.logical_id}: worker exited during {what}") from error
        return None, 0.0

    def _read(self, *, what: str) -> dict[str, Any]:
        try:
            return json.loads(self._responses.recv_bytes())
        except (EOFError, OSError) as error:
            self.kill()
            raise WorkerCrashError(f"{self.function.logical_id}: worker exited during {what}") from error

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        self.signal_kill()
        self._reap()

    def signal_kill(self) -> None:
        """SIGKILL to the worker's process group: whatever the handler started dies with it."""
        if self._process.poll() is None:
            # The worker leads its own session, so its group is itself and what its handler spawned.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    def stop(self) -> None:
        """Closing the request pipe lets the worker leave its loop and exit on its own."""
        self._requests.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(SHUTDOWN_GRACE_SECONDS)
        self.signal_kill()  # also the group: a handler's children must not outlive the stack
        self._reap()

    def _reap(self) -> None:
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            logger.warning("worker %s of %s did not exit", self.pid, self.function.logical_id)
        for connection in (self._requests, self._responses):
            if not connection.closed:
                connection.close()
        for thread in self._log_threads:
            thread.join(timeout=1)


class FunctionPool:
    """The execution environments of one function. Thread-safe; `invoke` blocks.

    Environments are started ahead of demand: `warm_workers` at start, and one more whenever the
    last idle one is taken, so a rising load finds a warm environment rather than a queue. Every
    start runs in the background through the machine-wide init gate; a request that finds no idle
    environment waits for whichever comes first, a released one or a fresh one it asked for."""

    def __init__(
        self,
        function: FunctionDefinition,
        environment: Mapping[str, str],
        log_sink: LogSink,
        max_workers: int = MAX_WORKERS_PER_FUNCTION,
        warm_workers: int = 0,
    ) -> None:
        self.function = function
        self.environment = dict(environment)
        self._log_sink = log_sink
        self._max_workers = max_workers
        self._warm_workers = min(warm_workers, max_workers)
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()  # ready, idle or busy
        self._booting: set[Worker] = set()
        self._starting = 0  # starts asked for and not yet finished (booting or waiting for the gate)
        self._starting_for_demand = 0
        self._waiting = 0
        self._demand_failures: list[BaseException] = []
        self._closed = False
        self._changed = threading.Condition()

    def worker_pids(self) -> list[int]:
        with self._changed:
            return [worker.pid for worker in self._all]

    def prewarm(self) -> None:
        """Starts the warm pool in the background; returns at once."""
        with self._changed:
            for _ in range(self._warm_workers - len(self._all) - self._starting):
                self._start_locked(for_demand=False)

    def wait_until_warm(self, timeout: float) -> bool:
        """True once the warm pool's environments are ready (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._starting and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        worker = self._acquire()
        try:
            return worker.invoke(event, request_id or str(uuid.uuid4()))
        finally:
            self._release(worker)

    def _acquire(self) -> Worker:
        with self._changed:
            self._waiting += 1
            try:
                while True:
                    if self._closed:
                        raise WorkerCrashError(f"{self.function.logical_id}: the local stack is stopping")
                    while self._idle:
                        worker = self._idle.pop()
                        if worker.is_alive():
                            self._grow_ahead_locked()
                            return worker
                        # Died while idle (killed, out of memory): Lambda would just start a fresh one.
                        self._all.discard(worker)
                        threading.Thread(target=worker.kill, daemon=True).start()
                    if self._demand_failures:
                        raise self._demand_failures.pop(0)
                    # Every waiter beyond those a start is already coming for asks for one.
                    if self._waiting > self._starting_for_demand and self._has_room_locked():
                        self._start_locked(for_demand=True)
                    self._changed.wait()
            finally:
                self._waiting -= 1

    def _has_room_locked(self) -> bool:
        return len(self._all) + self._starting < self._max_workers

    def _grow_ahead_locked(self) -> None:
        if not self._idle and not self._starting and self._has_room_locked():
            self._start_locked(for_demand=False)

    def _start_locked(self, *, for_demand: bool) -> None:
        self._starting += 1
        self._starting_for_demand += int(for_demand)
        name = f"start-{self.function.logical_id}"
        threading.Thread(target=self._start, args=(for_demand,), name=name, daemon=True).start()

    def _start(self, for_demand: bool) -> None:
        worker: Worker | None = None
        failure: BaseException | None = None
        try:
            with INIT_GATE.admitted(for_demand=for_demand):
                with self._changed:
                    if self._closed:
                        raise WorkerCrashError(f"{self.function.logical_id}: the local stack is stopping")
                worker = Worker(self.function, self.environment, self._log_sink)
                with self._changed:
                    self._booting.add(worker)
                    closed = self._closed
                if closed:
                    worker.kill()
                    raise WorkerCrashError(f"{self.function.logical_id}: the local stack is stopping")
                worker.wait_until_ready()
        except BaseException as error:  # handed to the request that asked for the start
            failure = error
        with self._changed:
            self._starting -= 1
            self._starting_for_demand -= int(for_demand)
            if worker is not None:
                self._booting.discard(worker)
            if failure is None and worker is not None and not self._closed:
                self._all.add(worker)
                self._idle.append(worker)
            elif failure is not None and for_demand:
                self._demand_failures.append(failure)
            elif worker is not None:
                threading.Thread(target=worker.stop, daemon=True).start()
            self._changed.notify_all()

    def _release(self, worker: Worker) -> None:
        with self._changed:
            if worker.is_alive() and not self._closed:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                if worker.is_alive():
                    threading.Thread(target=worker.stop, daemon=True).start()
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, busy = list(self._idle), [worker for worker in self._all if worker not in self._idle]
            busy += list(self._booting)
            self._idle.clear()
            self._changed.notify_all()
        # An idle worker leaves its loop when its request pipe closes; a busy one would only read
        # that after its handler returns, and the gateway has already given in-flight work its grace.
        stoppers = [threading.Thread(target=worker.stop) for worker in idle]
        stoppers += [threading.Thread(target=worker.kill) for worker in busy]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def kill_all(self) -> None:
        """A forced stop: every worker, busy or not, dies now; in-flight invocations fail."""
        with self._changed:
            self._closed = True
            workers = list(self._all) + list(self._booting)
            self._changed.notify_all()
        for worker in workers:
            worker.signal_kill()


class Functions:
    """Every function of the template, invocable from asyncio without blocking the event loop."""

    def __init__(self, pools: Mapping[str, FunctionPool]) -> None:
        self.pools = dict(pools)
        # One thread per in-flight invocation: the default executor's handful would queue them.
        self._executor = ThreadPoolExecutor(max_workers=len(self.pools) * MAX_WORKERS_PER_FUNCTION + 8)
        # Invocations beyond a function's worker cap wait here, on the event loop, not in an
        # executor thread: a flood on one slow function must not take the threads every other
        # function (the authorizer, $disconnect) needs.
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def invoke(self, function_id: str, event: Any, request_id: str | None = None) -> Any:
        pool = self.pools[function_id]
        slots = self._slots.setdefault(function_id, asyncio.Semaphore(MAX_WORKERS_PER_FUNCTION))
        async with slots:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._executor, pool.invoke, event, request_id)
            except RuntimeError as error:  # the executor is shut down: the stack is stopping
                raise WorkerCrashError(f"{function_id}: the local stack is stopping ({error})") from None

    def worker_pids(self) -> list[int]:
        return [pid for pool in self.pools.values() for pid in pool.worker_pids()]

    def prewarm(self) -> None:
        """Starts every function's warm pool in the background."""
        for pool in self.pools.values():
            pool.prewarm()

    def kill_all(self) -> None:
        for pool in self.pools.values():
            pool.kill_all()

    def close(self) -> None:
        closers = [threading.Thread(target=pool.close) for pool in self.pools.values()]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join()
        self._executor.shutdown(wait=False, cancel_futures=True)
