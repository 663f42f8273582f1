"""Every sample event in events/ runs through `python -m local_stack invoke` against the REAL
template (the Docker-free `sam local invoke`), and its function answers it the way it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from local_stack.template import load_template

EVENTS = sorted((REPO_ROOT / "events").glob("*.json"))
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def function_for(event: dict[str, Any], routes: dict[str, str]) -> str:
    """The function API Gateway (or EventBridge) would send this event to."""
    if event.get("type") == "REQUEST":
        return "AuthorizerFunction"
    if event.get("source") == "aws.events":
        return "SweeperFunction"
    return routes[event["requestContext"]["routeKey"]]


def invoke(function_id: str, event_file: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "local_stack", "invoke", "--template", "template.yaml"]
    command += ["--function", function_id, "--event", str(event_file.relative_to(REPO_ROOT))]
    return subprocess.run(command, cwd=REPO_ROOT, env=ENVIRONMENT, capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[str, subprocess.CompletedProcess[str]]]:
    """All invocations at once: each one starts moto and a worker, so they run in parallel."""
    template = load_template(REPO_ROOT / "template.yaml", {}, api_id="abcdefghij")
    routes = {key: route.function_id for key, route in template.require_api().routes.items()}
    targets = {path.name: function_for(json.loads(path.read_text()), routes) for path in EVENTS}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2) * 2) as pool:
        futures = {name: pool.submit(invoke, targets[name], REPO_ROOT / "events" / name) for name in targets}
        return {name: (targets[name], future.result()) for name, future in futures.items()}


def test_there_are_sample_events():
    assert len(EVENTS) >= 10


@pytest.mark.parametrize("event_file", [path.name for path in EVENTS])
def test_sample_event_invokes_its_function(results, event_file):
    function_id, result = results[event_file]
    assert result.returncode == 0, f"{function_id} with {event_file}:\n{result.stdout}\n{result.stderr[-3000:]}"
    value = json.loads(result.stdout)
    if function_id == "AuthorizerFunction":
        assert value["principalId"]
        (statement,) = value["policyDocument"]["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "execute-api:Invoke"
    elif function_id == "SweeperFunction":
        assert isinstance(value, dict) and value
        assert all(isinstance(count, int) for key, count in value.items() if key != "errors")
        assert value.get("errors", []) == []
    else:
        assert value == {"statusCode": 200}, f"{function_id} with {event_file}"
