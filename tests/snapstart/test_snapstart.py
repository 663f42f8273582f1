"""SnapStart: environments restored from one snapshot share nothing unique.

Lambda runs a SnapStart function's init once, snapshots the process and resumes every new
environment from that copy. os.fork() after init makes the same copy: the "snapshot" process
below imports the function, runs the before-snapshot hooks the function registered, seeds
`random` as any init might, then forks two "restored" environments that run the after-restore
hooks, exactly in the runtime's order (session_manager/snapstart.py)."""

from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.unit.harness import load_function

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork to copy a process")

SNAPSTART_FUNCTIONS = ["authorizer", "connect", "create_session", "join_session", "heartbeat"]


class FakeRuntimeHooks(types.ModuleType):
    """Stands in for `snapshot_restore_py`, the hook registry of Lambda's Python runtime."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before_snapshot: list = []
        self.after_restore: list = []

    def register_before_snapshot(self, function, *args, **kwargs):
        self.before_snapshot.append((function, args, kwargs))
        return function

    def register_after_restore(self, function, *args, **kwargs):
        self.after_restore.append((function, args, kwargs))
        return function

    def take_snapshot(self) -> None:
        for function, args, kwargs in reversed(self.before_snapshot):  # the runtime's order
            function(*args, **kwargs)

    def restore(self) -> None:
        for function, args, kwargs in self.after_restore:
            function(*args, **kwargs)


def _run_in_child(work) -> object:
    """work() in a forked copy of this process; its JSON result, or the child's failure."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        status = 0
        try:
            payload = json.dumps({"result": work()})
        except BaseException as error:  # reported to the parent, never raised past the fork
            payload, status = json.dumps({"error": repr(error)}), 1
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(payload)
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = json.loads(pipe.read() or '{"error": "no answer"}')
    _, status = os.waitpid(pid, 0)
    assert "error" not in answer and os.WEXITSTATUS(status) == 0, answer
    return answer["result"]


def _snapshot_then_restore_twice(function_name: str, *, run_restore_hooks: bool) -> list[dict]:
    """In a snapshot process: init the function, snapshot; then two restored environments, each
    drawing 50 session ids and 5 `random` values. Returns what each environment drew."""

    def snapshot_process():
        hooks = FakeRuntimeHooks()
        sys.modules["snapshot_restore_py"] = hooks
        from session_manager import snapstart

        importlib.reload(snapstart)  # binds the runtime's registry, as on Lambda
        load_function(function_name)  # the function's init registers the hooks
        assert [f for f, _, _ in hooks.before_snapshot] == [snapstart.prepare_snapshot]
        assert [f for f, _, _ in hooks.after_restore] == [snapstart.refresh_after_restore]
        random.seed(1234)  # whatever state init leaves behind is in the snapshot
        hooks.take_snapshot()
        snapshot_random_state = random.getstate()

        def restored_environment():
            from session_manager.ids import SessionIdGenerator

            # CPython reseeds `random` in a forked child (os.register_at_fork); a snapshot
            # restore does not, so the child starts from the snapshot's state as Lambda would.
            random.setstate(snapshot_random_state)
            if run_restore_hooks:
                hooks.restore()
            generator = SessionIdGenerator.from_wordlists()
            return {
                "sessionIds": [generator.generate() for _ in range(50)],
                "random": [random.random() for _ in range(5)],
            }

        return [_run_in_child(restored_environment), _run_in_child(restored_environment)]

    return _run_in_child(snapshot_process)


@pytest.mark.parametrize("function_name", SNAPSTART_FUNCTIONS)
def test_two_environments_restored_from_one_snapshot_draw_different_session_ids(function_name):
    first, second = _snapshot_then_restore_twice(function_name, run_restore_hooks=True)
    assert len(set(first["sessionIds"])) == 50
    assert not set(first["sessionIds"]) & set(second["sessionIds"])
    # Retry jitter must not be synchronised across environments either.
    assert first["random"] != second["random"]


def test_without_the_restore_hook_a_snapshot_replays_its_random_state():
    """The control: the fork really copies process state (so the test above could fail), and
    session ids stay unique even then, because they come from `secrets`, not `random`."""
    first, second = _snapshot_then_restore_twice("create_session", run_restore_hooks=False)
    assert first["random"] == second["random"]
    assert not set(first["sessionIds"]) & set(second["sessionIds"])


def test_restore_drops_every_client_and_cache_built_before_the_snapshot(monkeypatch):
    from session_manager import auth, services, snapstart
    from session_manager.store import clients

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def restored_environment():
        # Held, so that a client the restore dropped cannot be freed and its id reused.
        before = [clients.dynamodb_client(), clients.management_api_client("https://example.invalid/dev")]
        snapstart.refresh_after_restore()
        after = [clients.dynamodb_client(), clients.management_api_client("https://example.invalid/dev")]
        cached = [f.cache_info().currsize for f in (services.get_services, auth.get_token_verifier)]
        return {"rebuilt": [old is not new for old, new in zip(before, after, strict=True)], "cached": cached}

    outcome = _run_in_child(restored_environment)
    assert outcome["rebuilt"] == [True, True]
    assert outcome["cached"] == [0, 0]
    assert set(snapstart.per_environment_caches()) >= {
        clients.dynamodb_client,
        clients.management_api_client,
        services.get_services,
        auth.get_token_verifier,
    }


def test_outside_lambda_there_is_no_runtime_and_nothing_is_registered():
    def without_runtime():
        sys.modules.pop("snapshot_restore_py", None)
        from session_manager import snapstart

        importlib.reload(snapstart)
        return snapstart.enable()

    assert _run_in_child(without_runtime) is False


def test_a_function_that_verifies_no_token_does_not_load_the_token_verifier():
    """A fresh interpreter, as a joinSession environment starts: its init and a restore."""
    layer = Path(__file__).resolve().parents[2] / "layers" / "session_manager" / "python"
    probe = (
        "import sys; from session_manager import snapstart; snapstart.refresh_after_restore(); "
        "print([m for m in ('session_manager.auth', 'jwt') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(layer), "AWS_DEFAULT_REGION": "us-east-1"}
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
