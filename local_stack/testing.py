"""For tests: the local stack as a subprocess, exactly as `make run` starts it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local_stack.functions import WARM_ENVIRONMENTS_VARIABLE

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 90.0


class StackFailedError(RuntimeError):
    """The local stack died or did not get ready; the message carries its output."""


@contextlib.contextmanager
def running_stack(
    template: Path | str = REPO_ROOT / "template.yaml",
    env_vars: dict[str, Any] | None = None,
    schedule_seconds: float | None = None,
    idle_timeout_seconds: float | None = None,
    max_connection_seconds: float | None = None,
    stage: str | None = None,
    metrics: bool = False,
    warm_environments: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yields the ready file's dict, plus `logFile` (the stack's stdout and stderr) and `pid`.

    The ready dict has every URL: `websocketUrl`, `pageUrl`, `managementEndpoint`, `tokenUrl`,
    `motoEndpoint` (and `port`, `httpPort`, `stage`, `tables`, `userPoolId`, ...).

    `warm_environments` sets the warm pool per function (LOCAL_STACK_WARM_ENVIRONMENTS); None
    leaves the caller's environment to decide.

    On exit the stack gets SIGTERM, as from Ctrl-C, and must stop cleanly with status 0."""
    with tempfile.TemporaryDirectory(prefix="local-stack-") as workdir:
        ready_file = Path(workdir) / "ready.json"
        log_file = Path(workdir) / "stack.log"
        command = [sys.executable, "-m", "local_stack", "run", "--template", str(template), "--port", "0"]
        command += ["--ready-file", str(ready_file)]
        if env_vars is not None:
            env_vars_file = Path(workdir) / "env.json"
            env_vars_file.write_text(json.dumps(env_vars), encoding="utf-8")
            command += ["--env-vars", str(env_vars_file)]
        for flag, value in (
            ("--schedule-seconds", schedule_seconds),
            ("--idle-timeout-seconds", idle_timeout_seconds),
            ("--max-connection-seconds", max_connection_seconds),
            ("--stage", stage),
        ):
            if value is not None:
                command += [flag, str(value)]
        if metrics:
            command.append("--metrics")
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        if warm_environments is not None:
            environment[WARM_ENVIRONMENTS_VARIABLE] = str(warm_environments)
        with open(log_file, "wb") as log:
            process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = _wait_until_ready(process, ready_file, log_file)
            yield {**ready, "logFile": str(log_file), "pid": process.pid}
        finally:
            _stop(process, log_file)


def _wait_until_ready(process: subprocess.Popen[bytes], ready_file: Path, log_file: Path) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if ready_file.exists():
            return json.loads(ready_file.read_text(encoding="utf-8"))
        if process.poll() is not None:
            raise StackFailedError(f"the local stack exited with {process.returncode}:\n{_tail(log_file)}")
        time.sleep(0.1)
    raise StackFailedError(f"the local stack was not ready in {READY_TIMEOUT_SECONDS} s:\n{_tail(log_file)}")


def _stop(process: subprocess.Popen[bytes], log_file: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StackFailedError(f"the local stack ignored SIGTERM:\n{_tail(log_file)}") from None


def _tail(log_file: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
