"""What a developer sees of `make run`: the banner, a setting the domain rejects stopping the start
in one line, a busy HTTP port, and a console without Powertools' noise. Real subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURE_TEMPLATE, REPO_ROOT, echo
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local_stack.stack import LocalStack, StackOptions

ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
READY_TIMEOUT_SECONDS = 90
MAX_ENDPOINT_LINE = 100


def local_stack(*arguments: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack", *arguments],
        cwd=REPO_ROOT,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [expected], result.stderr


# ------------------------------------------------------------------ the banner


@pytest.fixture(scope="module")
def banner(tmp_path_factory):
    """The lines `run` prints on stdout, the ready file, and the running process."""
    workdir = tmp_path_factory.mktemp("banner")
    ready_file = workdir / "ready.json"
    command = [sys.executable, "-m", "local_stack", "run", "--template", str(FIXTURE_TEMPLATE), "--port", "0"]
    command += ["--ready-file", str(ready_file)]
    with open(workdir / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=stderr)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not ready_file.exists():
            assert process.poll() is None, (workdir / "stderr.log").read_text()
            assert time.monotonic() < deadline, "the stack did not get ready"
            time.sleep(0.1)
        ready = json.loads(ready_file.read_text())
        lines = []
        # The banner is flushed before the ready file is written, so these reads do not block.
        while not lines or not lines[-1].startswith("Open the page"):
            lines.append(process.stdout.readline().decode().rstrip("\n"))
        yield lines, ready
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def line_after(lines: list[str], heading: str) -> str:
    return lines[next(index for index, line in enumerate(lines) if line.startswith(heading)) + 1]


def test_banner_has_one_short_line_per_endpoint(banner):
    lines, ready = banner
    endpoints = {
        "WebSocket API": ready["websocketUrl"],
        "Page": ready["pageUrl"],
        "Management API": f"{ready['managementEndpoint']}/@connections/{{connectionId}}",
        "Token endpoint": ready["tokenUrl"],
    }
    for name, url in endpoints.items():
        (line,) = [line for line in lines if line.strip().startswith(name + " ")]
        assert line.split()[len(name.split())] == url
        assert len(line) <= MAX_ENDPOINT_LINE, line
    assert ready["port"] != ready["httpPort"]


def test_banner_shows_the_speaker_token_on_a_line_of_its_own(banner):
    lines, ready = banner
    token = line_after(lines, "Speaker token")
    assert token == ready["speakerToken"]
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    assert sum(ready["speakerToken"] in line for line in lines) == 2  # its line and the wscat line


def test_banner_wscat_line_connects_as_written(banner):
    lines, ready = banner
    wscat = line_after(lines, "Connect as the speaker")
    assert wscat == f"wscat -c '{ready['websocketUrl']}?token={ready['speakerToken']}'"
    url = wscat.split("'")[1]
    with connect(url, open_timeout=30) as client:
        reply = echo(client)
    assert reply["event"]["requestContext"]["routeKey"] == "echo"


def test_banner_ends_with_the_page_to_open(banner):
    lines, ready = banner
    assert lines[-1] == f"Open the page: {ready['pageUrl']}"
    assert all(len(line) <= MAX_ENDPOINT_LINE for line in lines if ready["speakerToken"] not in line)


# ------------------------------------------------------------------ settings the domain rejects


@pytest.mark.parametrize(
    ("env_vars", "expected"),
    [
        (
            {"JoinSessionFunction": {"MAX_LISTENERS_PER_SESSION": "-5"}},
            "MAX_LISTENERS_PER_SESSION=-5 must be at least 1 (in the environment of JoinSessionFunction)",
        ),
        (
            {"Parameters": {"HEARTBEAT_TIMEOUT_SECONDS": "3"}},
            "HEARTBEAT_TIMEOUT_SECONDS=3 must be above HEARTBEAT_INTERVAL_SECONDS=30 (in the environment of ",
        ),
        (
            {"Parameters": {"CONNECTION_REFRESH_MINUTES": "often"}},
            "CONNECTION_REFRESH_MINUTES=often must be a number (in the environment of ",
        ),
    ],
)
def test_a_setting_the_domain_rejects_stops_run_in_one_line(tmp_path, env_vars, expected):
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(env_vars))
    with socket.socket() as probe:  # a port nothing listens on, to show nothing started
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = local_stack("run", "--template", "template.yaml", "--port", str(port), "--env-vars", str(env_file))
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"local_stack: error: {expected}"), line
    assert "Traceback" not in result.stderr
    with socket.socket() as again:  # nothing was left listening
        again.bind(("127.0.0.1", port))


def test_env_example_json_is_accepted_and_reaches_the_functions():
    # GIVEN the example the docs point at
    stack = LocalStack(
        StackOptions(template_path=REPO_ROOT / "template.yaml", env_vars_path=REPO_ROOT / "env.example.json")
    )
    example = json.loads((REPO_ROOT / "env.example.json").read_text())
    # WHEN its settings are checked as `make run` checks them, THEN every function accepts them
    stack.check_settings()
    # AND each variable reaches the functions that have it
    join = stack.template.functions["JoinSessionFunction"]
    assert stack.environment_of(join)["RATE_LIMIT_FAILED_JOINS_PER_MIN"] == "20"
    for name, value in example["Parameters"].items():
        assert stack.environment_of(join)[name] == value


def test_every_function_sharing_a_rejected_setting_is_counted(tmp_path):
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"Parameters": {"HEARTBEAT_TIMEOUT_SECONDS": "3"}}))
    result = local_stack("run", "--template", "template.yaml", "--port", "0", "--env-vars", str(env_file))
    assert re.search(r"\(in the environment of \w+Function and \d+ other functions\)$", result.stderr.strip())


def test_a_busy_http_port_is_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = local_stack("run", "--template", str(FIXTURE_TEMPLATE), "--port", "0", "--http-port", str(port))
    assert_one_line_error(result, f"local_stack: error: port {port} (management API and page) is already in use")


# ------------------------------------------------------------------ a quiet console


def misbehave_metrics(stack) -> None:
    with connect(stack["websocketUrl"], open_timeout=30) as client:
        client.send(json.dumps({"action": "misbehave", "do": "metrics"}))
        assert json.loads(client.recv(timeout=30)) == {"metrics": "published"}


def test_the_console_has_no_powertools_warnings_nor_emf_lines_by_default(stack):
    misbehave_metrics(stack)
    log = Path(stack["logFile"]).read_text()
    assert "No application metrics to publish" not in log
    assert "ProbeMetric" not in log
    assert "ProbeSingleMetric" not in log
    assert '"_aws"' not in log


def test_a_refused_token_is_one_line_not_a_traceback(stack):
    log_file = Path(stack["logFile"])
    before = len(log_file.read_text().splitlines())
    with pytest.raises(InvalidStatus) as refused:
        connect(stack["websocketUrl"] + "?auth=reject&token=not.a.token", open_timeout=30)
    assert refused.value.response.status_code == 401
    time.sleep(0.5)  # the worker's output is pumped by a thread
    added = log_file.read_text().splitlines()[before:]
    assert [line for line in added if "refused" in line or "Unauthorized" in line] == [
        next(line for line in added if "refused with 401 (AuthorizerFunction answered Unauthorized)" in line)
    ]
    assert not any("Traceback" in line for line in added)
    assert "not.a.token" not in log_file.read_text()
