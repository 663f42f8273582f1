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
    assert json.loads(result.stdout) == {"statusCode": 200, "delivered": False}


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
