"""Process hygiene and gateway fidelity under misbehaviour: crashing, hanging and noisy
handlers, floods, vanished clients, oversized frames and posts, many connections. Real sockets,
one fixture stack for the module (the stop tests start their own)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import FIXTURE_TEMPLATE, echo, management_client, open_socket, receive_json
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from local_stack.testing import running_stack

KB = 1024


def children_of(pid: int) -> dict[int, str]:
    """Child pid to process state (R, S, Z, ...)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children[int(entry.name)] = fields[0]
    return children


def alive(pid: int) -> bool:
    """False once the process is gone or a zombie whose every thread has exited."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return False
    return state != "Z" or threads > 1


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def disconnect_count(stack, connection_id: str) -> int:
    return Path(stack["logFile"]).read_text().count(f"disconnect {connection_id} (")


def misbehave(socket, what: str) -> None:
    socket.send(json.dumps({"action": "misbehave", "do": what}))


def raw_socket(stack):
    """A client that negotiates no compression, so frames on the wire are exactly what it sends."""
    return connect(stack["websocketUrl"], compression=None, max_size=None, open_timeout=15, close_timeout=5)


@pytest.fixture(scope="module")
def stack():
    with running_stack(template=FIXTURE_TEMPLATE) as ready:
        yield ready


# ------------------------------------------------------------------ workers


def test_crashing_worker_is_replaced_and_the_client_gets_internal_server_error(stack):
    with open_socket(stack) as client:
        connection_id = echo(client)["event"]["requestContext"]["connectionId"]
        misbehave(client, "exit")
        error = receive_json(client)
        misbehave(client, "noise")  # the same function again: a fresh worker serves it
        after = receive_json(client)
    assert error == {"message": "Internal server error", "connectionId": connection_id, "requestId": error["requestId"]}
    assert after["noise"] == "survived"
    assert wait_until(lambda: "Z" not in children_of(stack["pid"]).values()), "a crashed worker was left a zombie"


def test_handler_output_cannot_corrupt_the_invocation_protocol(stack):
    with open_socket(stack) as client:
        for _ in range(3):
            misbehave(client, "noise")
            assert receive_json(client)["noise"] == "survived"
        assert echo(client)["event"]["requestContext"]["routeKey"] == "echo"
    log = Path(stack["logFile"]).read_text()
    assert "[MisbehaveFunction] plain noise" in log
    assert "forged" in log  # the forged frame went to the console, not into the protocol


def test_a_worker_that_died_while_idle_is_replaced_without_an_error(stack):
    with open_socket(stack) as client:
        first = echo(client)
        time.sleep(0.3)  # back in the pool
        os.kill(first["pid"], signal.SIGKILL)
        assert wait_until(lambda: not alive(first["pid"]))
        second = echo(client)
    assert second["event"]["requestContext"]["routeKey"] == "echo"
    assert second["pid"] != first["pid"]


def test_a_flood_on_one_slow_function_does_not_starve_the_others(stack):
    with open_socket(stack) as flooded, open_socket(stack) as bystander:
        echo(bystander)
        for _ in range(200):  # twenty times the worker cap, each one sleeping 0.2 s
            flooded.send(json.dumps({"action": "slow", "seconds": 0.2}))
        time.sleep(0.5)
        started = time.monotonic()
        echo(bystander)
        with open_socket(stack) as newcomer:  # the authorizer and $connect must get through too
            echo(newcomer)
        elapsed = time.monotonic() - started
        replies = [receive_json(flooded, timeout=30) for _ in range(200)]
    assert elapsed < 1.5, f"other functions waited {elapsed:.1f} s behind the flood"
    assert replies == [{"slept": 0.2}] * 200


def test_300_connections_leak_no_descriptors_threads_or_processes(stack):
    pid = stack["pid"]

    def usage() -> tuple[int, int, int]:
        return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")), len(children_of(pid))

    def cycle(_: int) -> None:
        with open_socket(stack):
            pass

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(cycle, range(30)))  # let the pools grow to what this concurrency needs
        time.sleep(1)
        fds_before, threads_before, workers_before = usage()
        list(pool.map(cycle, range(300)))
    time.sleep(1)
    fds_after, threads_after, workers_after = usage()
    # Each worker holds four descriptors (two protocol pipes, stdout, stderr) and two log threads.
    assert workers_after <= 10 * 3 + workers_before  # authorizer, $connect, $disconnect at most
    assert fds_after - 4 * workers_after <= fds_before - 4 * workers_before + 8
    assert threads_after - 2 * workers_after <= threads_before - 2 * workers_before + 24
    assert "Z" not in children_of(pid).values()


# ------------------------------------------------------------------ exactly-once $disconnect


def test_client_that_vanishes_without_a_close_frame_runs_disconnect_once_with_1006(stack, wait_for_record):
    client = open_socket(stack)
    connection_id = echo(client)["event"]["requestContext"]["connectionId"]
    client.socket.shutdown(socket.SHUT_RDWR)  # the TCP connection drops: no close frame
    client.socket.close()
    context = wait_for_record("disconnect", connection_id)["requestContext"]
    assert context["disconnectStatusCode"] == 1006
    time.sleep(0.5)
    assert disconnect_count(stack, connection_id) == 1
    with pytest.raises(management_client(stack).exceptions.GoneException):
        management_client(stack).get_connection(ConnectionId=connection_id)


@pytest.mark.parametrize("path", ["client close", "delete", "delete twice", "oversized message", "oversized frame"])
def test_disconnect_runs_exactly_once(stack, wait_for_record, path):
    client = raw_socket(stack)
    connection_id = echo(client)["event"]["requestContext"]["connectionId"]
    management = management_client(stack)
    if path == "client close":
        client.close(code=4001, reason="done")
    elif path.startswith("delete"):
        management.delete_connection(ConnectionId=connection_id)
        if path == "delete twice":
            with pytest.raises(management.exceptions.GoneException):
                management.delete_connection(ConnectionId=connection_id)
    elif path == "oversized message":
        # The gateway may fail the connection before the client has finished sending.
        with contextlib.suppress(ConnectionClosed):
            client.send(["y" * (32 * KB)] * 4 + ["y"])  # 128 KB + 1 in frames of 32 KB
    else:
        with contextlib.suppress(ConnectionClosed):
            client.send("z" * (32 * KB + 1))
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=10)
    expected = {"client close": 4001, "oversized message": 1009, "oversized frame": 1009}.get(path, 1001)
    assert wait_for_record("disconnect", connection_id)["requestContext"]["disconnectStatusCode"] == expected
    time.sleep(0.5)
    assert disconnect_count(stack, connection_id) == 1


# ------------------------------------------------------------------ frame and message limits


def test_frame_over_32_kb_closes_with_1009(stack):
    with raw_socket(stack) as client:
        echo(client)
        client.send(json.dumps({"action": "echo", "pad": "x" * (32 * KB)}))
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=10)
    assert closed.value.rcvd.code == 1009


def test_frame_of_exactly_32_kb_is_accepted(stack):
    with raw_socket(stack) as client:
        body = json.dumps({"action": "echo", "pad": ""})
        client.send(body[:-2] + "x" * (32 * KB - len(body)) + '"}')
        assert receive_json(client)["bodyLength"] == 32 * KB


def test_message_of_exactly_128_kb_in_32_kb_frames_is_accepted_without_compression(stack):
    body = json.dumps({"action": "echo", "pad": ""})
    text = body[:-2] + "x" * (128 * KB - len(body)) + '"}'
    with raw_socket(stack) as client:
        client.send([text[i : i + 32 * KB] for i in range(0, len(text), 32 * KB)])
        assert receive_json(client)["bodyLength"] == 128 * KB


def test_compression_is_not_negotiated(stack):
    with open_socket(stack) as client:  # websockets offers permessage-deflate by default
        assert "Sec-WebSocket-Extensions" not in client.response.headers


# ------------------------------------------------------------------ management API


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
def test_closed_connection_is_gone_for_every_operation(stack, operation):
    with open_socket(stack) as client:
        connection_id = echo(client)["event"]["requestContext"]["connectionId"]
    client = management_client(stack)
    arguments = {"ConnectionId": connection_id, **({"Data": b"{}"} if operation == "post_to_connection" else {})}
    with pytest.raises(client.exceptions.GoneException):
        getattr(client, operation)(**arguments)


@pytest.mark.parametrize("size", [128 * KB + 1, 2 * 1024 * KB])
def test_post_over_128_kb_is_payload_too_large(stack, size):
    with open_socket(stack) as client:
        connection_id = echo(client)["event"]["requestContext"]["connectionId"]
        management = management_client(stack)
        with pytest.raises(management.exceptions.PayloadTooLargeException):
            management.post_to_connection(ConnectionId=connection_id, Data=b"x" * size)
        management.post_to_connection(ConnectionId=connection_id, Data=b"y" * (128 * KB))
        assert client.recv(timeout=10) == "y" * (128 * KB)


def test_chunked_post_over_128_kb_is_payload_too_large(stack):
    def chunks():
        for _ in range(5):
            yield b"x" * (32 * KB)

    request = urllib.request.Request(
        f"{stack['managementEndpoint']}/@connections/AAAAAAAAAAAAAAA=", data=chunks(), method="POST"
    )
    request.add_header("Transfer-Encoding", "chunked")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 413
    assert refused.value.headers["x-amzn-ErrorType"] == "PayloadTooLargeException"


# ------------------------------------------------------------------ stopping


def _wait_for_exit(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def test_sigterm_with_a_hung_handler_and_its_child_leaves_nothing_behind():
    with running_stack(template=FIXTURE_TEMPLATE) as stack:
        with open_socket(stack) as client:
            misbehave(client, "spawn")
            spawned = receive_json(client)
            misbehave(client, "hang")
            hanging = receive_json(client)["hanging"]
            workers = set(children_of(stack["pid"]))
            started = time.monotonic()
            os.kill(stack["pid"], signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=30)
        exit_code = _wait_for_exit(stack["pid"], 30)
        stopped_in = time.monotonic() - started
        log = Path(stack["logFile"]).read_text()
    assert exit_code == 0, log
    assert closed.value.rcvd.code == 1001
    assert stopped_in < 15, f"a hung handler held the stop for {stopped_in:.1f} s"
    assert {spawned["pid"], hanging} <= workers
    leftovers = [pid for pid in (*workers, spawned["child"]) if alive(pid)]
    assert not leftovers, f"still running after the stop: {leftovers}"


def test_a_second_sigterm_stops_at_once():
    with running_stack(template=FIXTURE_TEMPLATE) as stack, open_socket(stack) as client:
        misbehave(client, "hang")
        hanging = receive_json(client)["hanging"]
        os.kill(stack["pid"], signal.SIGTERM)
        time.sleep(0.5)
        started = time.monotonic()
        os.kill(stack["pid"], signal.SIGTERM)
        exit_code = _wait_for_exit(stack["pid"], 30)
        stopped_in = time.monotonic() - started
    assert exit_code == 0
    assert stopped_in < 4
    assert not alive(hanging)


def test_sigkill_of_the_stack_takes_its_workers_and_their_children_along():
    with running_stack(template=FIXTURE_TEMPLATE) as stack:
        with open_socket(stack) as client:
            misbehave(client, "spawn")
            spawned = receive_json(client)
            echo(client)
            workers = set(children_of(stack["pid"]))
            os.kill(stack["pid"], signal.SIGKILL)
            assert _wait_for_exit(stack["pid"], 10) is not None
        gone = wait_until(lambda: not any(alive(pid) for pid in (*workers, spawned["child"])), timeout=5)
    assert gone, [pid for pid in (*workers, spawned["child"]) if alive(pid)]
