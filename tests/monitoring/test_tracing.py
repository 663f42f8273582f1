"""X-Ray tracing: on in Lambda (the template's `Tracing: Active`), and not even imported when off,
since the SDK's import alone builds a botocore client (a cold start's largest extra cost)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "session_manager" / "python"

PROBE = """
import sys
from session_manager.observability import traced
def handler(event, context):
    return "answered"
wrapped = traced(handler)
print(wrapped is handler, "aws_xray_sdk.core" in sys.modules)
"""


def probe(**environment: str) -> tuple[bool, bool]:
    env = {
        key: value for key, value in os.environ.items() if key not in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED")
    }
    env.update(
        environment, PYTHONPATH=str(LAYER), POWERTOOLS_SERVICE_NAME="tracing-probe", AWS_DEFAULT_REGION="us-east-1"
    )
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    unwrapped, imported = result.stdout.split()
    return unwrapped == "True", imported == "True"


@pytest.mark.parametrize(
    "environment",
    [{}, {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}],
    ids=["outside Lambda", "disabled in Lambda"],
)
def test_with_tracing_off_the_handler_is_untouched_and_the_xray_sdk_never_imported(environment):
    assert probe(**environment) == (True, False)


def test_in_lambda_the_handler_runs_inside_a_trace():
    assert probe(LAMBDA_TASK_ROOT="/var/task") == (False, True)
