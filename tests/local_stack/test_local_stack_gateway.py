"""The WebSocket gateway against the fixture template: what clients and handlers can tell apart
from API Gateway. Real sockets, one stack for the module."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from conftest import FIXTURE_TEMPLATE, echo, management_client, open_socket, receive_json
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local_stack.functions import MAX_WORKERS_PER_FUNCTION
from local_stack.stack import LocalStack, StackOptions

REQUEST_CONTEXT_FIELDS = {
    "routeKey",
    "eventType",
    "extendedRequestId",
    "requestTime",
    "messageDirection",
    "stage",
    "connectedAt",
    "requestTimeEpoch",
    "identity",
    "requestId",
    "domainName",
    "connectionId",
    "apiId",
    "authorizer",
}
EXPECTED_AUTHORIZER = {"role": "listener", "number": "7", "flag": "true", "principalId": "user-1"}


def handshake_status(stack, query: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(stack, query)
    return refused.value.response.status_code


def authorizer_context(event) -> dict:
    return {k: v for k, v in event["requestContext"]["authorizer"].items() if k != "integrationLatency"}


# ------------------------------------------------------------------ handshake


def test_authorizer_allow_upgrades_the_connection(stack):
    with open_socket(stack, "auth=allow") as socket:
        reply = echo(socket)
    assert reply["event"]["requestContext"]["routeKey"] == "echo"


def test_authorizer_raising_unauthorized_refuses_with_401(stack):
    assert handshake_status(stack, "auth=reject") == 401


def test_authorizer_deny_policy_refuses_with_403(stack):
    assert handshake_status(stack, "auth=deny") == 403


def test_authorizer_crash_refuses_with_500(stack):
    assert handshake_status(stack, "auth=crash") == 500


def test_connect_status_refuses_the_upgrade(stack):
    assert handshake_status(stack, "status=429") == 429


def test_connect_exception_refuses_with_500(stack):
    assert handshake_status(stack, "status=raise") == 500


def test_authorizer_event_is_a_request_authorizer_event(stack, wait_for_record):
    with open_socket(stack, "auth=allow&token=abc") as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
    event = wait_for_record("authorizer", connection_id)
    assert event["type"] == "REQUEST"
    assert event["methodArn"].startswith("arn:aws:execute-api:us-east-1:123456789012:")
    assert event["methodArn"].endswith(f"/{stack['stage']}/$connect")
    assert event["queryStringParameters"] == {"auth": "allow", "token": "abc"}
    assert event["multiValueQueryStringParameters"] == {"auth": ["allow"], "token": ["abc"]}
    assert event["headers"]["User-Agent"] == "probe-client/1.0"
    assert event["requestContext"]["eventType"] == "CONNECT"
    assert event["requestContext"]["routeKey"] == "$connect"


def test_connect_event_carries_headers_query_and_authorizer_context(stack, wait_for_record):
    with open_socket(stack, "auth=allow") as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
    event = wait_for_record("connect", connection_id)
    assert event["queryStringParameters"] == {"auth": "allow"}
    assert event["headers"]["User-Agent"] == "probe-client/1.0"
    assert event["isBase64Encoded"] is False
    assert authorizer_context(event) == EXPECTED_AUTHORIZER


# ------------------------------------------------------------------ messages


def test_route_selection_uses_the_action(stack):
    with open_socket(stack) as socket:
        reply = echo(socket)
    assert reply["event"]["requestContext"]["routeKey"] == "echo"
    assert reply["environment"]["ROLE"] == "echo"


@pytest.mark.parametrize("body", ["not json", '{"action": "nosuchroute"}', '{"other": 1}', "[1, 2]"])
def test_unroutable_messages_go_to_default(stack, body):
    with open_socket(stack) as socket:
        socket.send(body)
        reply = receive_json(socket)
    assert reply["event"]["requestContext"]["routeKey"] == "$default"
    assert reply["event"]["body"] == body
    assert reply["environment"]["ROLE"] == "default"


def test_binary_frame_goes_to_default_as_text(stack):
    with open_socket(stack) as socket:
        socket.send(b'{"action": "echo"}')
        reply = receive_json(socket)
    assert reply["event"]["requestContext"]["routeKey"] == "$default"
    assert reply["event"]["body"] == '{"action": "echo"}'


def test_message_event_has_every_request_context_field(stack):
    with open_socket(stack) as socket:
        first = echo(socket)["event"]
        second = echo(socket)["event"]
    context = first["requestContext"]
    assert REQUEST_CONTEXT_FIELDS | {"messageId"} <= set(context)
    assert context["eventType"] == "MESSAGE"
    assert context["stage"] == stack["stage"]
    assert context["domainName"] == f"127.0.0.1:{stack['port']}"
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "probe-client/1.0"}
    assert context["messageDirection"] == "IN"
    assert first["isBase64Encoded"] is False
    assert first["body"] == '{"action": "echo"}'
    assert len(context["connectionId"]) == 16 and context["connectionId"].endswith("=")
    assert abs(context["requestTimeEpoch"] - time.time() * 1000) < 10_000
    assert context["requestId"] != second["requestContext"]["requestId"]
    assert context["messageId"] != second["requestContext"]["messageId"]
    assert context["apiId"] == second["requestContext"]["apiId"]


def test_connected_at_is_fixed_at_connect(stack, wait_for_record):
    with open_socket(stack) as socket:
        first = echo(socket)["event"]["requestContext"]
        time.sleep(0.05)
        second = echo(socket)["event"]["requestContext"]
    connect = wait_for_record("connect", first["connectionId"])["requestContext"]
    assert first["connectedAt"] == second["connectedAt"] == connect["connectedAt"]
    assert second["requestTimeEpoch"] > first["connectedAt"]


def test_authorizer_context_is_on_every_event(stack, wait_for_record):
    with open_socket(stack) as socket:
        message = echo(socket)["event"]
    disconnect = wait_for_record("disconnect", message["requestContext"]["connectionId"])
    assert authorizer_context(message) == EXPECTED_AUTHORIZER
    assert authorizer_context(disconnect) == EXPECTED_AUTHORIZER


def test_handler_exception_sends_internal_server_error_and_keeps_the_socket(stack):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        socket.send(json.dumps({"action": "fail"}))
        error = receive_json(socket)
        after = echo(socket)
    assert set(error) == {"message", "connectionId", "requestId"}
    assert error["message"] == "Internal server error"
    assert error["connectionId"] == connection_id
    assert after["event"]["requestContext"]["connectionId"] == connection_id


def test_handler_timeout_is_enforced(stack):
    with open_socket(stack) as socket:
        socket.send(json.dumps({"action": "slow", "seconds": 6}))
        error = receive_json(socket)  # {"slept": 6} had the 2 s Timeout not been enforced
    assert error["message"] == "Internal server error"


def test_a_hung_handler_stalls_neither_its_own_connection_nor_another(stack):
    # GIVEN a message whose handler never returns (MisbehaveFunction's Timeout is 600 s)
    with open_socket(stack) as stuck, open_socket(stack) as other:
        stuck.send(json.dumps({"action": "misbehave", "do": "hang"}))
        assert "hanging" in receive_json(stuck)
        # WHEN both connections send more while it hangs
        other_reply = echo(other)
        own_reply = echo(stuck)
    # THEN both are answered (a stalled gateway would answer neither within the receive timeout)
    assert other_reply["event"]["requestContext"]["routeKey"] == "echo"
    assert own_reply["event"]["requestContext"]["routeKey"] == "echo"


def test_module_state_stays_warm_between_invocations(stack):
    # The warm pool may hand a request to any idle environment; with at most
    # MAX_WORKERS_PER_FUNCTION of them, one more request than that must reuse one.
    served: dict[int, list[int]] = {}
    with open_socket(stack) as socket:
        for _ in range(MAX_WORKERS_PER_FUNCTION + 1):
            reply = echo(socket)
            served.setdefault(reply["pid"], []).append(reply["invocations"])
            time.sleep(0.05)  # the reply arrives before the worker is back in the pool
    # Each environment counts on from where its module state was: its invocations run 1, 2, 3...
    # (a warm environment's first count may be higher when an earlier test used it).
    for counts in served.values():
        assert counts == list(range(counts[0], counts[0] + len(counts))), served
    assert any(len(counts) > 1 for counts in served.values()), served


def test_lambda_context_is_populated(stack):
    with open_socket(stack) as socket:
        reply = echo(socket)
    context = reply["context"]
    assert context["function_name"] == "EchoFunction"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction"
    assert context["memory_limit_in_mb"] == "192"
    assert context["log_group_name"] == "/aws/lambda/EchoFunction"
    assert context["aws_request_id"]
    assert 0 < context["remaining_ms"] <= 5000


def test_each_function_gets_its_own_environment(stack):
    with open_socket(stack) as socket:
        echo_environment = echo(socket)["environment"]
        socket.send("unroutable")
        default_environment = receive_json(socket)["environment"]
    assert echo_environment["ROLE"] == "echo"
    assert default_environment["ROLE"] == "default"
    assert echo_environment["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert default_environment["AWS_LAMBDA_FUNCTION_NAME"] == "DefaultFunction"
    assert echo_environment["GREETING"] == "hello"
    assert echo_environment["FLAVOUR"] == "plain"
    assert echo_environment["RECORDS_TABLE"] == stack["tables"]["RecordsTable"]
    assert echo_environment["MANAGEMENT_API_ENDPOINT"] == stack["managementEndpoint"]
    assert echo_environment["USER_POOL_ID"] == stack["userPoolId"]
    assert echo_environment["USER_POOL_CLIENT_ID"] == stack["userPoolClientId"]
    assert echo_environment["AWS_ENDPOINT_URL"] == stack["motoEndpoint"]
    assert echo_environment["LOCAL_JWKS_URL"] == (
        f"{stack['motoEndpoint']}/{stack['userPoolId']}/.well-known/jwks.json"
    )
    assert echo_environment["AWS_REGION"] == echo_environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert echo_environment["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "5"
    assert echo_environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert echo_environment["POWERTOOLS_METRICS_DISABLED"] == "true"


def test_every_function_gets_the_runs_rate_limit_key_secret_instead_of_the_secrets_arn(stack):
    with open_socket(stack) as socket:
        echo_environment = echo(socket)["environment"]
        socket.send("unroutable")
        default_environment = receive_json(socket)["environment"]
    secret = echo_environment["RATE_LIMIT_KEY_SECRET"]
    assert len(secret) == 64 and int(secret, 16) >= 0  # secrets.token_hex(32)
    assert default_environment["RATE_LIMIT_KEY_SECRET"] == secret  # one per run: their keys agree
    assert "RATE_LIMIT_KEY_SECRET_ARN" not in echo_environment  # the template sets it in Globals
    assert secret not in Path(stack["logFile"]).read_text()


def test_each_run_draws_its_own_rate_limit_key_secret():
    first, second = (LocalStack(StackOptions(template_path=FIXTURE_TEMPLATE, port=0)) for _ in range(2))
    assert first.run.rate_limit_key_secret != second.run.rate_limit_key_secret


def test_code_and_hand_written_layers_are_on_sys_path(stack):
    with open_socket(stack) as socket:
        sys_path = echo(socket)["sysPath"]
    assert sys_path[0].endswith("fixtures/functions/echo")
    assert sys_path[1].endswith("fixtures/layers/probe/python")
    assert not any("layers/built" in entry for entry in sys_path)


# ------------------------------------------------------------------ limits and disconnects


def test_oversized_message_closes_with_1009_and_runs_disconnect(stack, wait_for_record):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        socket.send(["x" * (32 * 1024)] * 4 + ["x"])  # 128 KB + 1, no frame over 32 KB
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd.code == 1009
    disconnect = wait_for_record("disconnect", connection_id)["requestContext"]
    assert disconnect["disconnectStatusCode"] == 1009


def test_message_of_exactly_128_kb_is_accepted(stack):
    with open_socket(stack) as socket:
        body = json.dumps({"action": "echo", "pad": ""})
        padded = body[:-2] + "x" * (128 * 1024 - len(body)) + '"}'
        socket.send([padded[i : i + 32 * 1024] for i in range(0, len(padded), 32 * 1024)])  # frames of 32 KB
        reply = receive_json(socket)
    assert reply["bodyLength"] == 128 * 1024


def test_client_close_runs_disconnect_with_its_code_and_reason(stack, wait_for_record):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        socket.close(code=4000, reason="bye")
    event = wait_for_record("disconnect", connection_id)
    context = event["requestContext"]
    assert context["routeKey"] == "$disconnect"
    assert context["eventType"] == "DISCONNECT"
    assert context["disconnectStatusCode"] == 4000
    assert context["disconnectReason"] == "bye"
    assert set(context) >= REQUEST_CONTEXT_FIELDS


# ------------------------------------------------------------------ management API


def test_management_post_sends_a_text_frame(stack):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        management_client(stack).post_to_connection(ConnectionId=connection_id, Data=b'{"hello": "there"}')
        frame = socket.recv(timeout=10)
    assert frame == '{"hello": "there"}'


def test_management_get_describes_the_connection(stack):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        description = management_client(stack).get_connection(ConnectionId=connection_id)
    assert isinstance(description["ConnectedAt"], datetime)
    assert isinstance(description["LastActiveAt"], datetime)
    assert description["LastActiveAt"] >= description["ConnectedAt"]
    assert description["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "probe-client/1.0"}


def test_management_delete_closes_with_1001_and_runs_disconnect(stack, wait_for_record):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
        management_client(stack).delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Going away")
    context = wait_for_record("disconnect", connection_id)["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
def test_unknown_connection_raises_gone_exception_in_boto3(stack, operation):
    client = management_client(stack)
    arguments = {"ConnectionId": "AAAAAAAAAAAAAAA="}
    if operation == "post_to_connection":
        arguments["Data"] = b"{}"
    with pytest.raises(client.exceptions.GoneException):
        getattr(client, operation)(**arguments)


def test_closed_connection_is_gone(stack):
    with open_socket(stack) as socket:
        connection_id = echo(socket)["event"]["requestContext"]["connectionId"]
    client = management_client(stack)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"{}")


# ------------------------------------------------------------------ local-only endpoints


def test_other_paths_are_not_found(stack):
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{stack['port']}/otherstage", timeout=5)
    assert missing.value.code == 404


def test_status_page_lists_the_endpoints(stack):
    with urllib.request.urlopen(f"http://127.0.0.1:{stack['httpPort']}/_local/status", timeout=5) as response:
        page = response.read().decode()
    assert stack["websocketUrl"] in page
    assert "@connections" in page
    assert stack["tokenUrl"] in page


@pytest.mark.parametrize("path", ["/", "/_local/status?x=1"])
def test_the_websocket_port_redirects_the_http_side_to_its_port(stack, path):
    # GIVEN the page and the local endpoints live on the HTTP port
    request = urllib.request.Request(f"http://127.0.0.1:{stack['port']}{path}")
    # WHEN a browser (or `make token`) asks the WebSocket port for them
    opener = urllib.request.build_opener(NoRedirects)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(request, timeout=5)
    # THEN it is sent there, path and query kept
    assert redirected.value.code == 307
    assert redirected.value.headers["Location"] == f"http://127.0.0.1:{stack['httpPort']}{path}"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_plain_get_on_the_stage_is_refused_with_426(stack):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(stack["websocketUrl"].replace("ws://", "http://"), timeout=5)
    assert refused.value.code == 426


def test_token_endpoint_issues_an_id_token_of_the_pool(stack):
    url = f"http://127.0.0.1:{stack['port']}/_local/token?email=another%40example.org"
    with urllib.request.urlopen(url, timeout=30) as response:
        token = response.read().decode()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == stack["userPoolClientId"]
    assert claims["iss"] == f"https://cognito-idp.us-east-1.amazonaws.com/{stack['userPoolId']}"
    assert claims["token_use"] == "id"
    assert claims["email"] == "another@example.org"
