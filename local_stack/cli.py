"""`python -m local_stack run | token | invoke`: the commands behind `make run`, `make token` and
`make invoke`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from local_stack.errors import LocalStackError

if TYPE_CHECKING:
    from local_stack.management import InvokeConnection
    from local_stack.stack import LocalStack

# The stack's modules (moto, cfn-lint, aiohttp, websockets) take seconds to import on a busy
# machine: each command imports them when it needs them, so a bad option fails at once.

PROGRAM = "local_stack"
HOST = "127.0.0.1"
TOKEN_PATH = "/_local/token"  # served by local_stack/local_pages.py
STACK_INFO_PATH = "/_local/stack"  # served by local_stack/stack.py
METRICS_VARIABLE = "LOCAL_STACK_METRICS"
EMF_LINE_START = '{"_aws":'


def _optional_path(text: str) -> Path | None:
    return Path(text) if text.strip() else None


def _optional_seconds(text: str) -> float | None:
    return _seconds(text) if text.strip() else None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # nan and inf parse as floats, but a schedule every nan seconds would never stop firing.
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _optional_port(text: str) -> int | None:
    return _port(text) if text.strip() else None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535, 0 picks a free one)")
    return value


def _metrics_default() -> bool:
    return os.environ.get(METRICS_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


class _OneLineErrorParser(argparse.ArgumentParser):
    """Bad input fails loudly in one line on stderr, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROGRAM}: error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(prog=f"python -m {PROGRAM}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start the local stack in the foreground until Ctrl-C")
    run.add_argument("--template", type=Path, default=Path("template.yaml"))
    run.add_argument("--port", type=_port, default=8080, help="the WebSocket API's; 0 picks a free port")
    run.add_argument(
        "--http-port",
        type=_optional_port,
        default=None,
        help="the management API's and the page's; default: the port after --port (a free one with --port 0)",
    )
    run.add_argument("--stage", default="", help="default: the template's stage")
    run.add_argument("--env-vars", type=_optional_path, default=None, metavar="FILE")
    run.add_argument("--idle-timeout-seconds", type=_seconds, default=600.0)
    run.add_argument("--max-connection-seconds", type=_seconds, default=7200.0)
    run.add_argument("--schedule-seconds", type=_optional_seconds, default=None)
    run.add_argument("--ready-file", type=Path, default=None, help="JSON written once ready")
    _add_metrics_flag(run)

    token = commands.add_parser("token", help="print a fresh speaker token of the running stack")
    token.add_argument("--port", type=_port, default=8080)
    token.add_argument("--email", default="")

    invoke = commands.add_parser("invoke", help="run one function once with an event (no Docker)")
    invoke.add_argument("--template", type=Path, default=Path("template.yaml"))
    invoke.add_argument("--function", required=True, metavar="LOGICAL_ID")
    invoke.add_argument("--event", type=_optional_path, default=None, metavar="FILE")
    invoke.add_argument("--env-vars", type=_optional_path, default=None, metavar="FILE")
    invoke.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="a local stack running on this port lends its tables, user pool and connections",
    )
    _add_metrics_flag(invoke)
    return parser


def _add_metrics_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=_metrics_default(),
        help=f"print the functions' EMF metric lines (default: off, or ${METRICS_VARIABLE}=1)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    # stdout is the command's result (a token, a return value, the ready lines); anything else
    # printing in this process, moto included, goes to stderr.
    console, sys.stdout = sys.stdout, sys.stderr
    try:
        if arguments.command == "run":
            return _run(arguments, console)
        if arguments.command == "token":
            return _token(arguments, console)
        return _invoke(arguments, console)
    except LocalStackError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = console


def _configure_logging(level: int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format=f"{PROGRAM}: %(message)s")


def _console_sink(show_metrics: bool) -> Any:
    from local_stack.functions import LogSink

    class ConsoleLogSink(LogSink):
        """The functions' output on stderr, without Powertools' EMF lines unless asked for:
        `single_metric` prints them even with POWERTOOLS_METRICS_DISABLED."""

        def write_line(self, function_id: str, line: str) -> None:
            if show_metrics or not line.startswith(EMF_LINE_START):
                super().write_line(function_id, line)

    return ConsoleLogSink(sys.stderr)


def _run(arguments: argparse.Namespace, console: TextIO) -> int:
    from local_stack.stack import LocalStack, StackOptions

    _configure_logging(logging.INFO)
    stack = LocalStack(
        StackOptions(
            template_path=arguments.template,
            port=arguments.port,
            http_port=arguments.http_port,
            stage=arguments.stage or None,
            env_vars_path=arguments.env_vars,
            idle_timeout_seconds=arguments.idle_timeout_seconds,
            max_connection_seconds=arguments.max_connection_seconds,
            schedule_seconds=arguments.schedule_seconds,
            emit_metrics=arguments.metrics,
        ),
        _console_sink(arguments.metrics),
    )
    asyncio.run(_serve(stack, arguments.ready_file, console))
    return 0


async def _serve(stack: LocalStack, ready_file: Path | None, console: TextIO) -> None:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop_requested.is_set():
            # A second Ctrl-C: do not wait for running handlers; their workers die now.
            print(f"{PROGRAM}: stopping now: killing the workers", file=sys.stderr)
            stack.kill_workers()
        stop_requested.set()

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, on_signal)
    ready = await stack.start()
    print(banner(ready, stack.schedule_descriptions()), file=console, flush=True)
    if ready_file is not None:
        _write_atomically(ready_file, json.dumps(ready, indent=2))
    await stop_requested.wait()
    print(f"{PROGRAM}: stopping: closing connections (1001), running $disconnect", file=sys.stderr)
    await stack.stop()


def banner(ready: dict[str, Any], schedules: list[str]) -> str:
    """What `make run` prints once it serves: one short line per endpoint, the token on a line of
    its own (it is 1,000 characters), a wscat line to paste, and the page to open."""
    tables = ", ".join(ready["tables"].values()) or "none"
    lines = [
        f"{PROGRAM} ready",
        f"  WebSocket API   {ready['websocketUrl']}",
        f"  Page            {ready['pageUrl']}",
        f"  Management API  {ready['managementEndpoint']}/@connections/{{connectionId}}",
        f"  Token endpoint  {ready['tokenUrl']}  (or: make token)",
        f"  Moto            {ready['motoEndpoint']}  (tables: {tables})",
        *(f"  Schedule        {description}" for description in schedules),
        f"Speaker token of {ready['speakerEmail']} (an ID token, valid for one hour):",
        ready["speakerToken"],
        "Connect as the speaker:",
        f"wscat -c '{ready['websocketUrl']}?token={ready['speakerToken']}'",
        f"Open the page: {ready['pageUrl']}",
    ]
    return "\n".join(lines)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _token(arguments: argparse.Namespace, console: TextIO) -> int:
    query = f"?{urllib.parse.urlencode({'email': arguments.email})}" if arguments.email else ""
    # The WebSocket port redirects /_local/... to the HTTP side, wherever that listens.
    url = f"http://{HOST}:{arguments.port}{TOKEN_PATH}{query}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            token = response.read().decode()
    except urllib.error.HTTPError as error:
        raise LocalStackError(f"the local stack on port {arguments.port} refused a token ({error.code})") from None
    except (urllib.error.URLError, OSError):
        raise LocalStackError(f"no local stack answers on port {arguments.port}; start one with `make run`") from None
    print(token, file=console)
    return 0


def running_stack_info(port: int) -> dict[str, Any] | None:
    """What a local stack serving on `port` lends an invocation, or None if none answers there."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{STACK_INFO_PATH}", timeout=5) as response:
            info = json.loads(response.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return info if isinstance(info, dict) and "motoEndpoint" in info else None


def _invoke(arguments: argparse.Namespace, console: TextIO) -> int:
    from local_stack.management import InvokeConnection
    from local_stack.stack import LocalStack, StackOptions

    _configure_logging(logging.WARNING)
    event = _read_event(arguments.event)
    running = running_stack_info(arguments.port) if arguments.port else None
    connection = InvokeConnection(
        _connection_id_of(event), forward_to=running["managementEndpoint"] if running else None
    )
    stack = LocalStack(
        StackOptions(
            template_path=arguments.template,
            port=0,
            http_port=0,
            env_vars_path=arguments.env_vars,
            run_schedules=False,
            emit_metrics=arguments.metrics,
            running_stack=running,
            invoke_connection=connection,
            warm_pools=False,
        ),
        _console_sink(arguments.metrics),
    )
    if arguments.function not in stack.template.functions:
        raise LocalStackError(f"function {arguments.function} is not in template {arguments.template}")
    if running:
        print(
            f"{PROGRAM}: using the tables, user pool and connections of the local stack on port {arguments.port}",
            file=sys.stderr,
        )
    elif arguments.port:
        print(f"{PROGRAM}: no local stack on port {arguments.port}: using fresh, empty tables", file=sys.stderr)
    else:
        print(f"{PROGRAM}: using fresh, empty tables", file=sys.stderr)
    return asyncio.run(_invoke_once(stack, arguments.function, event, connection, console))


def _connection_id_of(event: Any) -> str | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    connection_id = context.get("connectionId") if isinstance(context, dict) else None
    return connection_id if isinstance(connection_id, str) and connection_id else None


def _read_event(path: Path | None) -> Any:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocalStackError(f"event file not found: {path}") from None
    except (OSError, ValueError) as error:
        raise LocalStackError(f"event file {path} is not JSON: {error}") from None


async def _invoke_once(
    stack: LocalStack, function_id: str, event: Any, connection: InvokeConnection, console: TextIO
) -> int:
    from local_stack.functions import InvocationError

    await stack.start()
    try:
        result = await stack.invoke(function_id, event)
    except InvocationError as error:
        payload = getattr(error, "payload", {})
        error_summary = {key: payload[key] for key in ("errorType", "errorMessage") if key in payload}
        print(json.dumps(error_summary), file=console)
        return 1
    finally:
        await stack.stop()
        for line in connection.describe():
            print(f"{PROGRAM}: {line}", file=sys.stderr)
    print(json.dumps(result), file=console)
    return 0
