"""Cold start of each function from the `sam build` artifact (.aws-sam/build, `make sam-build`), the
way Lambda starts it: a fresh interpreter of the runtime's Python, with only what Lambda provides
(boto3) installed, the function's code first on sys.path and the layers after it. Beside it, the
floor: `import boto3` and one client, in the same kind of fresh interpreter.

The environment each function gets is the one it has in the running local stack (read from a warm
worker of that function), so settings are parsed exactly as they are there."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build"
VENV_DIR = ROOT / ".aws-sam" / "cold-start-venv"
LAYERS = ("SessionManagerLayer", "DependenciesLayer")
RUNS = 5

# Runs in the clean interpreter: times only the import (the init phase), not interpreter startup.
_INIT_PROBE = """
import sys, time, json
sys.path[0:0] = json.loads(sys.argv[1])
started, cpu = time.perf_counter(), time.process_time()
import {module}
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}}))
"""
_FLOOR_PROBE = """
import time, json
started, cpu = time.perf_counter(), time.process_time()
import boto3
boto3.client("dynamodb", region_name="us-east-1")
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}))
"""


def _runtime_python() -> list[str]:
    """The template's runtime (python3.13) when this machine has it, else this interpreter."""
    candidate = shutil.which("python3.13")
    if candidate:
        probe = subprocess.run(
            [candidate, "--version"], env={**os.environ, "PYENV_VERSION": "3.13.0"}, capture_output=True, text=True
        )
        if probe.returncode == 0:
            return [candidate]
    return [sys.executable]


def _boto3_pin() -> str:
    for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines():
        if line.startswith("boto3=="):
            return line.strip()
    return "boto3"


def ensure_venv() -> Path:
    """A virtualenv holding boto3 alone (what the Lambda Python runtime provides)."""
    python = VENV_DIR / "bin" / "python"
    marker = VENV_DIR / ".boto3"
    pin = _boto3_pin()
    if python.exists() and marker.exists() and marker.read_text() == pin:
        return python
    shutil.rmtree(VENV_DIR, ignore_errors=True)
    environment = {**os.environ, "PYENV_VERSION": "3.13.0"}
    subprocess.run([*_runtime_python(), "-m", "venv", str(VENV_DIR)], check=True, env=environment)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", pin], check=True)
    marker.write_text(pin)
    return python


def _time(python: Path, source: str, arguments: list[str], environment: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(
        [str(python), "-I", "-c", source, *arguments],  # -I: no user site, no PYTHON* variables
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "init failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _median(samples: list[dict[str, float]]) -> dict[str, float]:
    """Medians of wall and CPU seconds: CPU is what a busy, shared machine does not distort."""
    return {key: statistics.median(sample[key] for sample in samples) for key in ("seconds", "cpu")}


def measure(function_environments: dict[str, dict[str, str]], runs: int = RUNS) -> dict[str, Any]:
    """Median init seconds per function and of the floor; ratios. Missing artifact: a reason."""
    if not BUILD_DIR.is_dir():
        return {"skipped": f"no {BUILD_DIR.relative_to(ROOT)}: run `make sam-build` first"}
    python = ensure_venv()
    layers = [str(BUILD_DIR / layer / "python") for layer in LAYERS if (BUILD_DIR / layer / "python").is_dir()]
    base = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    floor = _median([_time(python, _FLOOR_PROBE, [], base) for _ in range(runs)])
    functions: dict[str, Any] = {}
    for function_id, environment in sorted(function_environments.items()):
        code = BUILD_DIR / function_id
        handler = environment.get("_HANDLER", "app.handler")
        module = handler.rpartition(".")[0]
        if not (code / f"{module.replace('.', '/')}.py").exists():
            functions[function_id] = {"skipped": f"no {module}.py in {code.relative_to(ROOT)}"}
            continue
        clean = {name: value for name, value in environment.items() if not name.startswith("PYTHON")}
        clean["PATH"] = base["PATH"]
        probe = _INIT_PROBE.format(module=module)
        try:
            init = _median([_time(python, probe, [json.dumps([str(code), *layers])], clean) for _ in range(runs)])
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            functions[function_id] = {"error": str(error)}
            continue
        functions[function_id] = {
            "init_ms": round(init["seconds"] * 1000, 1),
            "init_cpu_ms": round(init["cpu"] * 1000, 1),
            "cpu_ratio_to_floor": round(init["cpu"] / floor["cpu"], 2),
        }
    return {
        "floor_ms": round(floor["seconds"] * 1000, 1),
        "floor_cpu_ms": round(floor["cpu"] * 1000, 1),
        "runs": runs,
        "python": str(python),
        "machine": platform.machine(),
        "functions": functions,
    }


def environments_of(processes: dict[int, str]) -> dict[str, dict[str, str]]:
    """The environment of one warm worker per function, from /proc (Linux)."""
    found: dict[str, dict[str, str]] = {}
    for pid, name in processes.items():
        if name == "stack" or name in found:
            continue
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        environment = dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)
        if b"--handler" in command:
            environment["_HANDLER"] = command[command.index(b"--handler") + 1].decode()
        found[name] = environment
    return found


def print_report(result: dict[str, Any]) -> None:
    print("\n== Cold start from the sam build artifact (fresh interpreter, boto3 + layers only)")
    if "skipped" in result:
        print(f"  skipped: {result['skipped']}")
        return
    print(
        f"  floor (import boto3 + one client): {result['floor_cpu_ms']} ms CPU ({result['floor_ms']} ms wall),"
        f" median of {result['runs']}"
    )
    for function_id, figures in result["functions"].items():
        if "init_ms" in figures:
            print(
                f"  {function_id:28} init {figures['init_cpu_ms']:7.1f} ms CPU ({figures['init_ms']:.0f} ms wall)"
                f"  {figures['cpu_ratio_to_floor']:.2f}x floor"
            )
        else:
            print(f"  {function_id:28} {figures}")


def main() -> None:
    """`python -m benchmarks.cold_start`: the cold start alone, with a local stack for the environments."""
    import time

    from benchmarks.scenarios import BenchStack
    from local_stack.testing import running_stack

    with running_stack() as info:
        stack = BenchStack(info)
        deadline = time.monotonic() + 120
        environments = environments_of(stack.processes())
        while len(environments) < len(list((ROOT / "functions").iterdir())) and time.monotonic() < deadline:
            time.sleep(1)  # the warm pool is still starting
            environments = environments_of(stack.processes())
        result = measure(environments)
    print_report(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
