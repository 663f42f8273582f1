"""The command line as a real subprocess: read what it prints as it prints it, press Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30.0


class CliProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *arguments: str, env: dict[str, str] | None = None) -> CliProcess:
        environment = {**os.environ, **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "clients" / "python"), environment.get("PYTHONPATH", "")]
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "live_session_client",
            *arguments,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            cwd=ROOT,
        )
        return cls(process)

    async def line_matching(self, pattern: str, timeout: float = WAIT_SECONDS) -> re.Match[str]:
        """The first stdout line (from the start) matching the pattern."""
        expression = re.compile(pattern)
        for line in self.lines:
            if match := expression.search(line):
                return match
        assert self.process.stdout is not None
        while True:
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            except TimeoutError:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s: {self.lines}") from None
            if not raw:
                stderr = await self.process.stderr.read() if self.process.stderr else b""
                raise AssertionError(f"exited without {pattern!r}: {self.lines} / {stderr.decode()}")
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            if match := expression.search(line):
                return match

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    async def finish(self, timeout: float = WAIT_SECONDS) -> tuple[int, list[str], str]:
        """Exit status, every stdout line, stderr."""
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), timeout)
        self.lines += stdout.decode().splitlines()
        return self.process.returncode, self.lines, stderr.decode()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
