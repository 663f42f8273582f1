"""The command line: bad input fails loudly in one line, SIGTERM stops everything, `invoke` runs
one function once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import FIXTURE_TEMPLATE, REPO_ROOT, echo, open_socket
from websockets.exceptions import ConnectionClosed

from local_stack.testing import running_stack

ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def local_stack(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack", *arguments],
        cwd=REPO_ROOT,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_with(*arguments: str) -> subprocess.CompletedProcess[str]:
    return local_stack("run", "--port", "0", *arguments)


def assert_one_line_error(result: subprocess.CompletedProcess[str], culprit: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert culprit in lines[0]


def children_of(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def test_missing_template_is_one_line_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(run_with("--template", str(missing)), str(missing))


def test_unparsable_template_is_one_line_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("Resources: [unclosed\n")
    assert_one_line_error(run_with("--template", str(broken)), str(broken))


def test_missing_env_vars_file_is_one_line_error(tmp_path):
    missing = tmp_path / "env.json"
    assert_one_line_error(run_with("--template", str(FIXTURE_TEMPLATE), "--env-vars", str(missing)), str(missing))


def test_env_vars_file_that_is_not_json_is_one_line_error(tmp_path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text("{not json")
    result = run_with("--template", str(FIXTURE_TEMPLATE), "--env-vars", str(env_vars))
    assert_one_line_error(result, str(env_vars))
    assert "not JSON" in result.stderr


def test_env_vars_naming_an_unknown_function_is_one_line_error(tmp_path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"Parameters": {}, "NoSuchFunction": {"A": "b"}}))
    assert_one_line_error(run_with("--template", str(FIXTURE_TEMPLATE), "--env-vars", str(env_vars)), "NoSuchFunction")


def test_port_in_use_is_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = local_stack("run", "--template", str(FIXTURE_TEMPLATE), "--port", str(port))
    assert_one_line_error(result, f"port {port}")


def test_token_without_a_running_stack_is_one_line_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_one_line_error(local_stack("token", "--port", str(port)), f"port {port}")


def test_token_prints_only_a_token(tmp_path):
    with running_stack(template=FIXTURE_TEMPLATE) as stack:
        result = local_stack("token", "--port", str(stack["port"]), "--email", "other@example.org")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].count(".") == 2 and lines[0].startswith("eyJ")


def test_sigterm_closes_clients_runs_disconnect_and_leaves_nothing_behind():
    with running_stack(template=FIXTURE_TEMPLATE) as stack:
        with open_socket(stack) as client:
            echo(client)
            workers = children_of(stack["pid"])
            assert workers, "the echo invocation should have started worker processes"
            os.kill(stack["pid"], signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{stack['pid']}").exists():
            status = os.waitpid(stack["pid"], os.WNOHANG)
            if status[0]:
                exit_code = os.waitstatus_to_exitcode(status[1])
                break
            time.sleep(0.1)
        log = Path(stack["logFile"]).read_text()
    assert exit_code == 0, log
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Going away")
    assert "[DisconnectFunction] disconnect handled 1001" in log
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", stack["port"]))


def test_invoke_prints_the_return_value(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"requestContext": {"connectionId": "AAAAAAAAAAAAAAA="}, "body": "hi"}))
    result = local_stack(
        "invoke", "--template", str(FIXTURE_TEMPLATE), "--function", "EchoFunction", "--event", str(event)
    )
    assert result.returncode == 0, result.stderr
    # invoke plays the event's connection: the echo is delivered, and printed on stderr
    assert json.loads(result.stdout) == {"statusCode": 200, "delivered": True}
    (reply_line,) = [line for line in result.stderr.splitlines() if "posted to the event's connection" in line]
    assert json.loads(reply_line.split(": ", 2)[2])["event"]["body"] == "hi"


def test_invoke_of_a_raising_handler_exits_non_zero(tmp_path):
    result = local_stack("invoke", "--template", str(FIXTURE_TEMPLATE), "--function", "FailFunction")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "errorType": "ValueError",
        "errorMessage": "the fail route always fails",
    }
    assert "[FailFunction]" in result.stderr


def test_invoke_of_an_unknown_function_is_one_line_error():
    result = local_stack("invoke", "--template", str(FIXTURE_TEMPLATE), "--function", "NoSuchFunction")
    assert_one_line_error(result, "NoSuchFunction")


BAD_OPTION_VALUES = [
    ("--port", "70000"),
    ("--port", "-1"),
    ("--port", "eighty"),
    ("--schedule-seconds", "0"),
    ("--schedule-seconds", "-5"),
    ("--schedule-seconds", "nan"),
    ("--schedule-seconds", "inf"),
    ("--idle-timeout-seconds", "nan"),
    ("--max-connection-seconds", "0"),
]


def test_bad_option_values_are_one_line_errors():
    def attempt(flag_value: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        return local_stack("run", "--template", str(FIXTURE_TEMPLATE), *flag_value, timeout=30)

    with ThreadPoolExecutor(len(BAD_OPTION_VALUES)) as pool:
        results = list(pool.map(attempt, BAD_OPTION_VALUES))
    for (flag, value), result in zip(BAD_OPTION_VALUES, results, strict=True):
        assert_one_line_error(result, flag)
        assert value in result.stderr


def test_token_with_a_port_out_of_range_is_one_line_error():
    assert_one_line_error(local_stack("token", "--port", "65536"), "--port")


def _template_with_handler(tmp_path: Path, handler: str) -> Path:
    template = tmp_path / "template.yaml"
    code = FIXTURE_TEMPLATE.parent / "functions" / "fail"  # imports nothing
    template.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  LonelyFunction:\n"
        "    Type: AWS::Serverless::Function\n"
        f"    Properties: {{CodeUri: {code}, Handler: {handler}, Runtime: python3.11}}\n"
    )
    return template


@pytest.mark.parametrize("handler", ["nosuchmodule.handler", "handler"])
def test_a_handler_module_that_does_not_exist_fails_at_start(tmp_path, handler):
    template = _template_with_handler(tmp_path, handler)
    started = time.monotonic()
    result = run_with("--template", str(template))
    assert_one_line_error(result, "LonelyFunction")
    assert handler in result.stderr
    assert time.monotonic() - started < 20
    invoked = local_stack("invoke", "--template", str(template), "--function", "LonelyFunction")
    assert_one_line_error(invoked, "LonelyFunction")


def test_a_missing_handler_function_fails_the_first_invocation_clearly(tmp_path):
    template = _template_with_handler(tmp_path, "app.no_such_function")
    result = local_stack("invoke", "--template", str(template), "--function", "LonelyFunction")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "errorType": "Runtime.HandlerNotFound",
        "errorMessage": "Handler 'no_such_function' missing on module 'app'",
    }
