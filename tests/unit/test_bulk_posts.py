"""The fan-out's transport (session_manager/store/bulk_posts.py) over real HTTP: it sends the
requests botocore's client sends (the same path for the same connection id, a SigV4 signature
that verifies), reads each answer as the messenger does (200 delivered, 410 gone, anything else
failed), keeps its bound on posts in flight, and says loudly when the API refuses a post that no
retry can fix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from session_manager.store import clients, messenger
from session_manager.store.bulk_posts import DELIVERED, FAILED, GONE, UNANSWERED_ATTEMPTS, BulkPoster

KEY, SECRET, TOKEN = "AKIDLOCALTEST", "local-secret", "local-session-token"


class ScriptedApi:
    """An @connections API on a real port: records each request as it arrived, answers each
    connection id by ``script`` (a status, or a coroutine function of the request)."""

    def __init__(self, script: Callable[[str], int] | None = None, delay: float = 0.0) -> None:
        self.script = script or (lambda connection_id: 200)
        self.delay = delay
        self.requests: list[dict] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedApi:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/dev"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/dev/@connections/{connection_id}", self._answer)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _answer(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.requests.append(
                {
                    "method": request.method,
                    "raw_path": request.raw_path,
                    "connection_id": request.match_info["connection_id"],
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.script(request.match_info["connection_id"])
        finally:
            self.in_flight -= 1
        if status == 200:
            return web.Response(status=200)
        error = {410: "GoneException", 403: "ForbiddenException", 429: "LimitExceededException"}.get(status, "Oops")
        return web.json_response({"message": error}, status=status, headers={"x-amzn-ErrorType": error})


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)


def client_for(endpoint: str):
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint, region_name="eu-west-1", config=clients.MANAGEMENT_API_CONFIG
    )


def poster_for(endpoint: str, concurrency: int = 16, read_timeout: float = 30) -> BulkPoster:
    # Generous timeouts but where a test is about them: the server shares this process's GIL, on
    # a machine make test keeps busy.
    return BulkPoster(client_for(endpoint), concurrency=concurrency, connect_timeout=10, read_timeout=read_timeout)


def signature_verifies(request: dict, region: str = "eu-west-1") -> bool:
    """Recomputes the SigV4 signature of a received request with botocore's signer, at the
    request's own X-Amz-Date, from the headers it signed."""
    headers = request["headers"]
    authorization = headers["Authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    url = f"http://{headers['Host']}{request['raw_path']}"
    rebuilt = AWSRequest(method=request["method"], url=url, data=request["body"])
    for name in signed:
        rebuilt.headers[name] = next(value for key, value in headers.items() if key.lower() == name)
    signer = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "execute-api", region)
    rebuilt.context["timestamp"] = headers["X-Amz-Date"]
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    return authorization.endswith(f"Signature={expected}")


IDS = ["Yx1aBcDeIAMCJfA=", "a+b/c d", "L0SM9cOFvHcCIhw="]


def test_each_post_is_the_request_botocores_client_sends_for_that_connection(credentials):
    with ScriptedApi() as api:
        # GIVEN the posts botocore's client makes for some awkward ids
        client = client_for(api.endpoint)
        for connection_id in IDS:
            client.post_to_connection(ConnectionId=connection_id, Data=b'{"type":"caption"}')
        by_client = list(api.requests)
        api.requests.clear()
        # WHEN the bulk poster posts to the same ids
        answers = poster_for(api.endpoint).post_all([(connection_id, b'{"type":"caption"}') for connection_id in IDS])
        by_poster = sorted(
            api.requests, key=lambda request: [r["raw_path"] for r in by_client].index(request["raw_path"])
        )
    # THEN each arrived at the same path, with the same body and method, signed so it verifies
    assert [answer.outcome for answer in answers] == [DELIVERED] * 3
    assert [r["raw_path"] for r in by_poster] == [r["raw_path"] for r in by_client]
    assert {r["connection_id"] for r in by_poster} == set(IDS)
    assert all(r["method"] == "POST" and r["body"] == b'{"type":"caption"}' for r in by_poster)
    assert all(signature_verifies(r) for r in by_client), "the check itself must accept botocore's own"
    assert all(signature_verifies(r) for r in by_poster)
    assert all(r["headers"]["X-Amz-Security-Token"] == TOKEN for r in by_poster)
    credential_scope = by_poster[0]["headers"]["Authorization"].split("Credential=")[1].split(",")[0]
    assert credential_scope.startswith(f"{KEY}/") and credential_scope.endswith("/eu-west-1/execute-api/aws4_request")


def test_a_tampered_request_does_not_verify(credentials):
    """The check above can fail: another path than the one signed is caught."""
    with ScriptedApi() as api:
        poster_for(api.endpoint).post_all([("abc=", b"signed")])
        (request,) = api.requests
    assert signature_verifies(request)
    assert not signature_verifies({**request, "raw_path": request["raw_path"].replace("abc", "abd")})
    assert not signature_verifies({**request, "body": b"tampered"})


def test_each_answer_is_read_as_the_messenger_reads_it_and_in_order(credentials, caplog):
    statuses = {"ok-1": 200, "gone-1": 410, "throttled": 429, "broken": 500, "forbidden": 403, "ok-2": 200}
    with ScriptedApi(lambda connection_id: statuses[connection_id]) as api, caplog.at_level("ERROR"):
        answers = poster_for(api.endpoint).post_all([(connection_id, b"{}") for connection_id in statuses])
    assert [answer.outcome for answer in answers] == [DELIVERED, GONE, FAILED, FAILED, FAILED, DELIVERED]
    # Throttling and 5xx are worth another round; a 403 is not, and says so
    assert [answer.refused for answer in answers] == [False, False, False, False, True, False]
    (error,) = [record for record in caplog.records if record.getMessage() == "posts refused by the @connections API"]
    assert error.refused == {"403 ForbiddenException": 1}


def test_a_post_nobody_answers_in_time_is_sent_again_then_fails_and_the_others_are_not_held_back(credentials):
    with StallingApi(stall={"slow"}) as api:
        started = time.monotonic()
        answers = poster_for(api.endpoint, read_timeout=0.3).post_all([("slow", b"{}"), ("fast", b"{}")])
        took = time.monotonic() - started
    assert [answer.outcome for answer in answers] == [FAILED, DELIVERED]
    assert answers[0].status is None and not answers[0].refused
    # botocore's patience for a post with no answer: 3 attempts, each given up at its read timeout
    assert api.arrived.count("slow") == UNANSWERED_ATTEMPTS and api.arrived.count("fast") == 1
    assert took < 2 * UNANSWERED_ATTEMPTS, "each stalled attempt was given up at its read timeout"


def test_an_answered_error_is_not_sent_again_within_the_round(credentials):
    with ScriptedApi(lambda connection_id: 429) as api:
        (answer,) = poster_for(api.endpoint).post_all([("throttled", b"{}")])
    assert (answer.outcome, answer.status, len(api.requests)) == (FAILED, 429, 1)


class StallingApi(ScriptedApi):
    def __init__(self, stall: set[str]) -> None:
        super().__init__()
        self.stall = stall
        self.arrived: list[str] = []

    async def _answer(self, request: web.Request) -> web.Response:
        self.arrived.append(request.match_info["connection_id"])
        if request.match_info["connection_id"] in self.stall:
            await asyncio.sleep(2)
        return await super()._answer(request)


def test_no_more_posts_are_in_flight_than_the_bound(credentials):
    with ScriptedApi(delay=0.02) as api:
        answers = poster_for(api.endpoint, concurrency=4).post_all([(f"c{n}", b"{}") for n in range(40)])
    assert [answer.outcome for answer in answers] == [DELIVERED] * 40
    assert api.most_in_flight == 4


def test_fan_outs_from_two_threads_at_once_each_get_their_answers(credentials):
    with ScriptedApi(delay=0.01) as api:
        poster = poster_for(api.endpoint, concurrency=8)
        results: dict[str, list] = {}

        def fan_out(name: str) -> None:
            results[name] = poster.post_all([(f"{name}-{n}", b"{}") for n in range(30)])

        threads = [threading.Thread(target=fan_out, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert {name: [answer.outcome for answer in answers] for name, answers in results.items()} == {
        "a": [DELIVERED] * 30,
        "b": [DELIVERED] * 30,
    }
    assert sorted(request["connection_id"] for request in api.requests) == sorted(
        f"{name}-{n}" for name in ("a", "b") for n in range(30)
    )


def test_the_notifier_encodes_each_message_once_and_maps_the_answers(credentials, monkeypatch):
    encoded = []
    monkeypatch.setattr(messenger, "encode", lambda message: encoded.append(message) or json.dumps(message).encode())
    with ScriptedApi(lambda connection_id: 410 if connection_id == "gone" else 200) as api:
        notifier = messenger.ManagementApiNotifier(client_for(api.endpoint), concurrency=4)
        spanish, french = {"type": "caption", "text": "[es] Gracia"}, {"type": "caption", "text": "[fr] Grâce"}
        outcomes = notifier.send_all([("es-1", spanish), ("fr-1", french), ("gone", spanish), ("es-2", spanish)])
    assert outcomes == ["delivered", "delivered", "gone", "delivered"]
    assert encoded == [spanish, french]
    bodies = {request["connection_id"]: json.loads(request["body"]) for request in api.requests}
    assert bodies == {"es-1": spanish, "fr-1": french, "gone": spanish, "es-2": spanish}


@pytest.mark.parametrize(
    ("function", "loads_transport"),
    [("send_caption", True), ("caption_fan_out", True), ("join_session", False), ("heartbeat", False)],
)
def test_the_caption_functions_load_the_transport_at_init_and_no_other(function, loads_transport):
    """A fresh interpreter, as an environment's init imports the handler module: a first caption
    must not wait for aiohttp's import (decision 77); a join must not pay for it."""
    root = Path(__file__).resolve().parents[2]
    probe = (
        "import sys, importlib.util; "
        f"spec = importlib.util.spec_from_file_location('app', {str(root / 'functions' / function / 'app.py')!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "print('aiohttp' in sys.modules)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(root / "layers" / "session_manager" / "python"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == str(loads_transport)
