"""The fault knob itself (local_stack/faults.py): its rules, and each adapter in front of a real
server: moto over HTTP for DynamoDB and the JWKS, an aiohttp app for the management API and the
control endpoint."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import boto3
import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from moto.server import ThreadedMotoServer

from local_stack.faults import (
    CONTROL_PATH,
    Effect,
    FaultControl,
    FaultPlan,
    FaultSpecError,
    MotoFaults,
    Service,
    install_on_moto,
    management_middleware,
    parse_rules,
)
from local_stack.translate_emulator import TranslateEmulator, TranslateMiddleware


def test_rules_read_as_the_docstring_writes_them():
    rules = parse_rules(
        "dynamodb throttle table=Sessions op=TransactWriteItems rate=0.5\n"
        "dynamodb latency=0.8 table=Connections; jwks unavailable\n"
        "# a comment\n"
        "management status=429 count=3\n"
        "management throttle op=PostToConnection after=1 count=12; translate error rate=0.5\n"
        "translate latency=2 op=TranslateText"
    )
    assert [(r.service, r.effect) for r in rules] == [
        (Service.DYNAMODB, Effect.THROTTLE),
        (Service.DYNAMODB, Effect.LATENCY),
        (Service.JWKS, Effect.UNAVAILABLE),
        (Service.MANAGEMENT, Effect.THROTTLE),
        (Service.MANAGEMENT, Effect.THROTTLE),
        (Service.TRANSLATE, Effect.ERROR),
        (Service.TRANSLATE, Effect.LATENCY),
    ]
    assert (rules[0].table, rules[0].operation, rules[0].rate) == ("Sessions", "TransactWriteItems", 0.5)
    assert rules[1].latency_seconds == 0.8 and rules[3].count == 3
    assert [rule.describe() for rule in rules] == [
        "dynamodb throttle table=Sessions op=TransactWriteItems rate=0.5",
        "dynamodb latency=0.8 table=Connections",
        "jwks unavailable",
        "management throttle count=3",
        "management throttle op=PostToConnection count=12 after=1",
        "translate error rate=0.5",
        "translate latency=2 op=TranslateText",
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("redis error", "redis"),
        ("dynamodb", "effect"),
        ("dynamodb explode", "effect"),
        ("dynamodb error throttle", "exactly one effect"),
        ("dynamodb gone", "cannot gone"),
        ("jwks throttle", "cannot throttle"),
        ("jwks error table=Sessions", "table"),
        ("dynamodb error rate=2", "rate"),
        ("dynamodb error rate=often", "rate"),
        ("dynamodb latency=-1", "latency"),
        ("dynamodb status=500", "status"),
        ("management status=418", "status"),
        ("dynamodb error count=0", "count"),
        ("dynamodb error colour=red", "colour"),
        ("dynamodb error after=-1", "after"),
        ("translate gone", "cannot gone"),
        ("translate access-denied", "cannot access-denied"),
        ("translate error table=Sessions", "table"),
        ("translate status=429", "status"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_word_at_fault(text: str, named: str):
    with pytest.raises(FaultSpecError, match=named):
        parse_rules(text)


def test_count_caps_the_injections_and_rate_picks_a_share():
    plan = FaultPlan(random=iter([0.1, 0.9, 0.3, 0.7] * 10).__next__)
    plan.replace(parse_rules("dynamodb throttle rate=0.5"))
    fired = [plan.decide(Service.DYNAMODB, "GetItem", ["t"]) is not None for _ in range(4)]
    assert fired == [True, False, True, False]
    plan.replace(parse_rules("dynamodb throttle count=2"))
    assert [plan.decide(Service.DYNAMODB, "GetItem", ["t"]) is not None for _ in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert plan.to_json()["rules"][0]["injected"] == 2
    assert plan.requests["dynamodb GetItem t"] == 8


def test_after_lets_the_first_requests_through_then_the_rule_fires():
    plan = FaultPlan()
    plan.replace(parse_rules("management throttle op=PostToConnection after=1 count=2"))
    fired = [plan.decide(Service.MANAGEMENT, "PostToConnection") is not None for _ in range(5)]
    assert fired == [False, True, True, False, False]
    # requests of another operation neither fire it nor use up its `after`
    plan.replace(parse_rules("management throttle op=PostToConnection after=1"))
    assert plan.decide(Service.MANAGEMENT, "DeleteConnection") is None
    assert plan.decide(Service.MANAGEMENT, "PostToConnection") is None
    assert plan.decide(Service.MANAGEMENT, "PostToConnection") is not None
    assert plan.to_json()["rules"][0]["passed"] == 1


# ---------------------------------------------------------------- moto behind the middleware


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield server, f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def plan(moto_endpoint):
    server, _ = moto_endpoint
    plan = FaultPlan()
    server._server.app = getattr(server._server.app, "app", server._server.app)  # a fresh middleware per test
    install_on_moto(server, plan)
    return plan


def _client(service: str, endpoint: str, attempts: int = 1):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=5),
    )


def _dynamodb(endpoint: str, attempts: int = 1):
    return _client("dynamodb", endpoint, attempts)


@pytest.fixture
def tables(moto_endpoint, plan):
    client = _dynamodb(moto_endpoint[1])
    names = []
    for name in ("knob-Sessions", "knob-Connections"):
        if name not in client.list_tables()["TableNames"]:
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        names.append(name)
    return names


def _put(client, table: str, key: str) -> None:
    client.put_item(TableName=table, Item={"id": {"S": key}})


@pytest.mark.parametrize(
    ("effect", "code", "status"),
    [
        ("throttle", "ProvisionedThroughputExceededException", 400),
        ("access-denied", "AccessDeniedException", 400),
        ("error", "InternalServerError", 500),
        ("unavailable", "ServiceUnavailable", 503),
    ],
)
def test_dynamodb_answers_each_effect_as_botocore_names_it(moto_endpoint, plan, tables, effect, code, status):
    client = _dynamodb(moto_endpoint[1])
    plan.replace(parse_rules(f"dynamodb {effect} table=sessions op=PutItem"))
    with pytest.raises(ClientError) as raised:
        _put(client, "knob-Sessions", effect)
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # Only that table and operation misbehave, and the refused write did not happen.
    _put(client, "knob-Connections", effect)
    assert "Item" not in client.get_item(TableName="knob-Sessions", Key={"id": {"S": effect}})
    plan.clear()
    _put(client, "knob-Sessions", effect)
    assert "Item" in client.get_item(TableName="knob-Sessions", Key={"id": {"S": effect}})


def test_a_transaction_matches_any_table_it_touches(moto_endpoint, plan, tables):
    client = _dynamodb(moto_endpoint[1])
    plan.replace(parse_rules("dynamodb throttle table=Connections"))
    items = [{"Put": {"TableName": name, "Item": {"id": {"S": "tx"}}}} for name in tables]
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        client.transact_write_items(TransactItems=items)
    assert plan.requests["dynamodb TransactWriteItems knob-Sessions"] == 1, plan.requests


def test_throttled_twice_then_answered_is_retried_by_botocore(moto_endpoint, plan, tables):
    client = _dynamodb(moto_endpoint[1], attempts=3)
    plan.replace(parse_rules("dynamodb throttle table=Sessions count=2"))
    _put(client, "knob-Sessions", "retried")
    assert plan.rules[0].injected == 2
    assert plan.requests["dynamodb PutItem knob-Sessions"] == 3


def test_latency_serves_the_request_and_answers_late(moto_endpoint, plan, tables):
    # GIVEN an answer later than the client waits
    client = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint[1],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=0.3),
    )
    plan.replace(parse_rules("dynamodb latency=1 op=PutItem"))
    # WHEN the client gives up THEN the write happened all the same (as in AWS)
    with pytest.raises(ReadTimeoutError):
        _put(client, "knob-Sessions", "late")
    plan.clear()
    assert "Item" in _dynamodb(moto_endpoint[1]).get_item(TableName="knob-Sessions", Key={"id": {"S": "late"}})


def test_the_jwks_document_can_fail_while_dynamodb_answers(moto_endpoint, plan, tables):
    _, endpoint = moto_endpoint
    cognito = boto3.client(
        "cognito-idp", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )
    pool = cognito.create_user_pool(PoolName="knob")["UserPool"]["Id"]
    url = f"{endpoint}/{pool}/.well-known/jwks.json"
    plan.replace(parse_rules("jwks unavailable"))
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, timeout=5)
    assert raised.value.code == 503
    _put(_dynamodb(endpoint), "knob-Sessions", "jwks")
    plan.clear()
    with urllib.request.urlopen(url, timeout=5) as response:
        assert json.loads(response.read())["keys"]


@pytest.fixture
def translate_plan(moto_endpoint):
    """The stack's order (local_stack/embedded_aws.py): the knob, then the Translate emulator,
    then moto."""
    server, _ = moto_endpoint
    wsgi_server = server._server
    bare = wsgi_server.app.app if isinstance(wsgi_server.app, MotoFaults) else wsgi_server.app
    plan = FaultPlan()
    wsgi_server.app = MotoFaults(TranslateMiddleware(bare, TranslateEmulator(("en", "es"))), plan)
    yield plan
    wsgi_server.app = bare


def _translate(endpoint: str, attempts: int = 1):
    return _client("translate", endpoint, attempts)


def _translate_text(client) -> str:
    return client.translate_text(Text="Amen", SourceLanguageCode="en", TargetLanguageCode="es")["TranslatedText"]


@pytest.mark.parametrize(
    ("effect", "code", "status"),
    [
        ("throttle", "TooManyRequestsException", 400),
        ("error", "InternalServerException", 500),
        ("unavailable", "ServiceUnavailableException", 503),
    ],
)
def test_translate_answers_each_effect_as_botocore_names_it(moto_endpoint, translate_plan, effect, code, status):
    client = _translate(moto_endpoint[1])
    translate_plan.replace(parse_rules(f"translate {effect} op=TranslateText"))
    with pytest.raises(ClientError) as raised:
        _translate_text(client)
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # Only that operation misbehaves; once cleared, the emulator translates again.
    assert client.list_languages()["Languages"]
    translate_plan.clear()
    assert _translate_text(client) == "[es] Amen"


def test_translate_throttled_twice_then_answered_is_retried_by_botocore(moto_endpoint, translate_plan):
    translate_plan.replace(parse_rules("translate throttle count=2"))
    assert _translate_text(_translate(moto_endpoint[1], attempts=3)) == "[es] Amen"
    assert translate_plan.rules[0].injected == 2
    assert translate_plan.requests["translate TranslateText"] == 3


# ---------------------------------------------------------------- the management API and the control endpoint


async def _served(plan: FaultPlan):
    async def post(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application(middlewares=[management_middleware(plan)])
    app.router.add_post("/dev/@connections/{connection_id}", post)
    app.router.add_get("/elsewhere", post)
    FaultControl(plan).add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, port


def _call(port: int, method: str, path: str, body: str | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body.encode() if body is not None else None, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def test_the_control_endpoint_sets_shows_and_clears_management_faults():
    plan = FaultPlan()

    async def scenario():
        runner, port = await _served(plan)
        call = lambda *args: asyncio.to_thread(_call, port, *args)  # noqa: E731
        try:
            assert (await call("POST", "/dev/@connections/abc=", "hi"))[0] == 200
            status, _, state = await call("PUT", CONTROL_PATH, "management status=429 count=1\nmanagement gone")
            assert status == 200 and [rule["spec"] for rule in state["rules"]] == [
                "management throttle count=1",
                "management gone",
            ]
            status, headers, _ = await call("POST", "/dev/@connections/abc=", "hi")
            assert (status, headers["x-amzn-ErrorType"]) == (429, "LimitExceededException")
            status, headers, _ = await call("POST", "/dev/@connections/abc=", "hi")
            assert (status, headers["x-amzn-ErrorType"]) == (410, "GoneException")
            assert (await call("GET", "/elsewhere"))[0] == 200  # other routes never misbehave
            status, _, refused = await call("POST", CONTROL_PATH, "management teleport")
            assert status == 400 and "effect" in refused["message"]
            assert len((await call("GET", CONTROL_PATH))[2]["rules"]) == 2  # a bad rule changes nothing
            assert (await call("DELETE", CONTROL_PATH))[2]["rules"] == []
            assert (await call("POST", "/dev/@connections/abc=", "hi"))[0] == 200
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_the_make_fault_command_sets_shows_and_clears(capsys):
    from local_stack.faults import _main

    plan = FaultPlan()

    async def scenario():
        runner, port = await _served(plan)
        try:
            run = lambda *args: asyncio.to_thread(_main, ["--http-port", str(port), *args])  # noqa: E731
            assert await run("jwks error; management status=410 count=2") == 0
            assert [rule.describe() for rule in plan.rules] == ["jwks error", "management gone count=2"]
            assert await run("dynamodb latency=0.2", "--add") == 0
            assert len(plan.rules) == 3
            assert await run() == 0
            assert await run("dynamodb explode") == 2  # refused before the stack is asked
            assert len(plan.rules) == 3
            assert await run("clear") == 0
            assert plan.rules == []
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    out, err = capsys.readouterr()
    assert "jwks error  (injected 0)" in out and "no faults" in out
    assert "effect" in err


def test_the_make_fault_command_says_when_no_stack_answers(capsys):
    from local_stack.faults import _main

    assert _main(["--http-port", "1"]) == 1
    assert "no local stack answers on port 1" in capsys.readouterr().err
