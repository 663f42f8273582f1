"""One Lambda execution environment: a long-lived process that imports a handler once (init) and
then runs it for every event the pool sends, keeping module state warm between invocations.

Runs as a script with the function's own environment and sys.path, so it imports nothing from
the local stack: only the standard library."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

READY = "ready"
INIT_ERROR = "initError"
RESULT = "result"
ERROR = "error"


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    def __init__(self, *, function_name: str, function_arn: str, memory_mb: str, request_id: str, deadline_ms: int):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error_payload(kind: str, error: BaseException) -> dict[str, Any]:
    return {
        "status": kind,
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def _log_error(request_id: str | None, error: BaseException) -> None:
    # The Lambda runtime's own format, so logs read the same as in CloudWatch.
    prefix = f"[ERROR] {type(error).__name__}: {error}"
    if request_id:
        prefix = f"[ERROR]\t{request_id}\t{type(error).__name__}: {error}"
    if str(error) == "Unauthorized":
        # An authorizer's way to have API Gateway answer 401, not a crash: the gateway logs the
        # refusal in one line (local_stack/gateway.py), no traceback per refused token.
        return
    print(prefix, file=sys.stderr)
    traceback.print_exception(error, file=sys.stderr)
    sys.stderr.flush()


class HandlerLoadError(Exception):
    """The init phase failed the way the Lambda runtime reports it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _load_handler(handler: str) -> Any:
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        raise HandlerLoadError("Runtime.MalformedHandlerName", f"Bad handler '{handler}': not module.function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        message = f"Unable to import module '{module_name}': {error}"
        raise HandlerLoadError("Runtime.ImportModuleError", message) from error
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise HandlerLoadError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        ) from None


def _exit_with_parent() -> None:
    """However the local stack ends (even SIGKILL), its workers and their children end too.

    A worker leads its own process group (start_new_session), so that group is exactly this
    worker and what its handler started."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--function-name", required=True)
    parser.add_argument("--function-arn", required=True)
    parser.add_argument("--memory-mb", required=True)
    parser.add_argument("--request-fd", type=int, required=True)
    parser.add_argument("--response-fd", type=int, required=True)
    parser.add_argument("--path", action="append", default=[])
    arguments = parser.parse_args()
    # Ctrl-C in the terminal is for the local stack, which shuts workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    # The protocol pipes are this process's alone: a subprocess the handler starts must not hold
    # them open (a crashed worker would then not read as crashed).
    for fd in (arguments.request_fd, arguments.response_fd):
        os.set_inheritable(fd, False)
    sys.path[0:0] = arguments.path
    requests = Connection(arguments.request_fd, writable=False)
    responses = Connection(arguments.response_fd, readable=False)

    try:
        handler = _load_handler(arguments.handler)
    except Exception as error:
        _log_error(None, error)
        payload = _error_payload(INIT_ERROR, error)
        if isinstance(error, HandlerLoadError):
            payload["errorType"] = error.error_type
        responses.send_bytes(json.dumps(payload).encode())
        return 1
    responses.send_bytes(json.dumps({"status": READY}).encode())

    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:
            return 0
        context = LambdaContext(
            function_name=arguments.function_name,
            function_arn=arguments.function_arn,
            memory_mb=arguments.memory_mb,
            request_id=request["requestId"],
            deadline_ms=request["deadlineMs"],
        )
        try:
            result = handler(request["event"], context)
            response = json.dumps({"status": RESULT, "result": result})
        except Exception as error:
            _log_error(context.aws_request_id, error)
            response = json.dumps(_error_payload(ERROR, error))
        sys.stdout.flush()
        sys.stderr.flush()
        responses.send_bytes(response.encode())


if __name__ == "__main__":
    sys.exit(main())
