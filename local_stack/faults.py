"""The fault knob: makes the embedded DynamoDB, the JWKS endpoint, the management API and the
Translate emulator misbehave at a given rate, switchable while the stack runs, so users can watch the system degrade
and recover and tests can prove requirement 21's paths.

One process-wide `FaultPlan` holds the rules; three thin adapters consult it:

- `MotoFaults`, a WSGI middleware in front of moto's server: DynamoDB requests (by operation and
  table, from `X-Amz-Target` and the request's table names), the pool's JWKS document and
  Translate (local_stack/translate_emulator.py answers on the same endpoint, behind this).
- `management_middleware`, in front of the @connections API (PostToConnection and friends).
- `FaultControl`, the loopback-only endpoint `/_local/faults` on the stack's HTTP port:
  GET shows the rules and what they did, PUT replaces them, POST adds to them, DELETE clears them.

Rules are written one per line (or separated by `;`), as `make fault FAULT=...` takes them:

    dynamodb throttle table=Sessions op=TransactWriteItems rate=0.5
    dynamodb error                      # every table and operation, every request
    dynamodb latency=0.8 table=Connections
    dynamodb access-denied table=RateLimits
    jwks unavailable
    management throttle rate=0.2 count=10
    management status=410
    management throttle op=PostToConnection after=1 count=12
    translate error rate=0.5
    translate throttle op=TranslateText

`table` matches when it is part of the table's name, case-insensitively (`Sessions` matches the
template's SessionsTable whatever the stack named it); `op` is the API operation (`GetItem`,
`PostToConnection`); `rate` is the share of matching requests that misbehave (default 1);
`count` caps how many ever do (default: no cap), which makes "throttled twice, then answered"
exact; `after` lets that many matching requests through untouched first ("the reply goes out,
then the fan-out's posts are throttled"). Latency delays the answer after the request was
served: the write happened, the caller just hears late (which is what a timeout past it sees in
AWS too).

Run `python -m local_stack.faults --help` for the command behind `make fault`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import random
import re
import shlex
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from io import BytesIO
from typing import Any

logger = logging.getLogger(__name__)

CONTROL_PATH = "/_local/faults"


class Service(StrEnum):
    DYNAMODB = "dynamodb"
    JWKS = "jwks"
    MANAGEMENT = "management"
    TRANSLATE = "translate"


class Effect(StrEnum):
    ERROR = "error"  # 500
    UNAVAILABLE = "unavailable"  # 503
    THROTTLE = "throttle"  # DynamoDB: ProvisionedThroughputExceeded; management: 429; Translate: TooManyRequests
    ACCESS_DENIED = "access-denied"  # DynamoDB: the function's role lacks the permission
    GONE = "gone"  # management: 410, the connection is gone
    LATENCY = "latency"


_EFFECTS = {
    Service.DYNAMODB: {Effect.ERROR, Effect.UNAVAILABLE, Effect.THROTTLE, Effect.ACCESS_DENIED, Effect.LATENCY},
    Service.JWKS: {Effect.ERROR, Effect.UNAVAILABLE, Effect.LATENCY},
    Service.MANAGEMENT: {Effect.ERROR, Effect.UNAVAILABLE, Effect.THROTTLE, Effect.GONE, Effect.LATENCY},
    Service.TRANSLATE: {Effect.ERROR, Effect.UNAVAILABLE, Effect.THROTTLE, Effect.LATENCY},
}
# The management API's answers, as API Gateway gives them (`status=` is another way to name them).
_MANAGEMENT_STATUSES = {410: Effect.GONE, 429: Effect.THROTTLE, 500: Effect.ERROR, 503: Effect.UNAVAILABLE}
_MANAGEMENT_OPERATIONS = {"POST": "PostToConnection", "GET": "GetConnection", "DELETE": "DeleteConnection"}


class FaultSpecError(ValueError):
    """A rule that cannot be understood; the message names the word at fault."""


@dataclass
class Rule:
    service: Service
    effect: Effect
    table: str = ""
    operation: str = ""
    rate: float = 1.0
    count: int | None = None
    after: int = 0
    latency_seconds: float = 0.0
    injected: int = 0  # how many requests this rule made misbehave so far
    passed: int = 0  # how many matching requests it let through because of `after`

    def matches(self, service: Service, operation: str, tables: Iterable[str]) -> bool:
        if service is not self.service:
            return False
        if self.operation and self.operation.lower() != operation.lower():
            return False
        return not self.table or any(self.table.lower() in table.lower() for table in tables)

    def describe(self) -> str:
        words = [self.service.value]
        words.append(f"latency={self.latency_seconds:g}" if self.effect is Effect.LATENCY else self.effect.value)
        if self.table:
            words.append(f"table={self.table}")
        if self.operation:
            words.append(f"op={self.operation}")
        if self.rate != 1.0:
            words.append(f"rate={self.rate:g}")
        if self.count is not None:
            words.append(f"count={self.count}")
        if self.after:
            words.append(f"after={self.after}")
        return " ".join(words)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"service": self.service.value, "effect": self.effect.value, "spec": self.describe()}


def _number(word: str, value: str, *, low: float, high: float = float("inf")) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FaultSpecError(f"{word}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise FaultSpecError(f"{word}: {value!r} is outside {low:g}..{high:g}")
    return number


def parse_rule(text: str) -> Rule:
    """One rule in the text form of the module's docstring."""
    words = shlex.split(text, comments=True)
    if len(words) < 2:
        raise FaultSpecError(f"{text.strip()!r}: a rule is `<service> <effect> [key=value ...]`")
    try:
        service = Service(words[0].lower())
    except ValueError:
        raise FaultSpecError(f"unknown service {words[0]!r} (one of {', '.join(Service)})") from None
    options: dict[str, str] = {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        options[key.lower()] = value
    rule = _rule_with_effect(service, options, text)
    _apply_options(rule, options)
    return rule


def _rule_with_effect(service: Service, options: dict[str, str], text: str) -> Rule:
    """Takes the effect out of `options`."""
    effect_names = [key for key in options if key in {effect.value for effect in Effect} or key == "status"]
    if len(effect_names) != 1:
        raise FaultSpecError(f"{text.strip()!r}: name exactly one effect (one of {', '.join(Effect)})")
    name = effect_names[0]
    value = options.pop(name)
    rule = Rule(service=service, effect=Effect.LATENCY)
    if name == "status":
        status = int(_number("status", value, low=100, high=599))
        if service is not Service.MANAGEMENT or status not in _MANAGEMENT_STATUSES:
            raise FaultSpecError(f"status={status}: only the management API takes a status (410, 429, 500, 503)")
        rule.effect = _MANAGEMENT_STATUSES[status]
    else:
        rule.effect = Effect(name)
        if rule.effect is Effect.LATENCY:
            rule.latency_seconds = _number("latency", value or "1", low=0, high=60)
        elif value:
            raise FaultSpecError(f"{name} takes no value")
    if rule.effect not in _EFFECTS[service]:
        allowed = ", ".join(sorted(effect.value for effect in _EFFECTS[service]))
        raise FaultSpecError(f"{service.value} cannot {rule.effect.value} (it can: {allowed})")
    return rule


def _apply_options(rule: Rule, options: dict[str, str]) -> None:
    for key, value in options.items():
        if key == "table" and rule.service is Service.DYNAMODB and value:
            rule.table = value
        elif key in ("op", "operation") and rule.service is not Service.JWKS and value:
            rule.operation = value
        elif key == "rate":
            rule.rate = _number("rate", value, low=0, high=1)
        elif key == "count":
            rule.count = int(_number("count", value, low=1))
        elif key == "after":
            rule.after = int(_number("after", value, low=0))
        else:
            raise FaultSpecError(f"{rule.service.value} rules take no {key!r}")


def parse_rules(text: str) -> list[Rule]:
    """Rules one per line or separated by `;`; blank lines and `#` comments are skipped."""
    parts = (part.strip() for line in text.splitlines() for part in line.split(";"))
    return [parse_rule(part) for part in parts if part and not part.startswith("#")]


@dataclass(frozen=True)
class Injection:
    rule: Rule
    effect: Effect
    latency_seconds: float


@dataclass
class FaultPlan:
    """The rules in force and what they did. Thread-safe: moto serves each request on a thread
    of its own, the management API on the event loop."""

    rules: list[Rule] = field(default_factory=list)
    # Requests seen, by "service operation table", faulted or not: how a test tells that a
    # circuit breaker stopped the calls.
    requests: Counter[str] = field(default_factory=Counter)
    random: Callable[[], float] = random.random
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, rules: Sequence[Rule]) -> None:
        with self._lock:
            self.rules = list(rules)
        logger.warning("faults: %s", "; ".join(rule.describe() for rule in rules) or "none")

    def add(self, rules: Sequence[Rule]) -> None:
        with self._lock:
            self.rules.extend(rules)
            described = "; ".join(rule.describe() for rule in self.rules)
        logger.warning("faults: %s", described)

    def clear(self) -> None:
        self.replace([])

    def decide(self, service: Service, operation: str, tables: Sequence[str] = ()) -> Injection | None:
        """The misbehaviour for one request, if any: the first matching rule that fires (a
        latency rule and an error rule may both fire: the error is answered late)."""
        with self._lock:
            for table in tables or ("",):
                self.requests[f"{service.value} {operation} {table}".strip()] += 1
            latency_rule: Rule | None = None
            failure: Rule | None = None
            for rule in self.rules:
                if not rule.matches(service, operation, tables):
                    continue
                if rule.passed < rule.after:
                    rule.passed += 1
                    continue
                if rule.count is not None and rule.injected >= rule.count:
                    continue
                if (latency_rule if rule.effect is Effect.LATENCY else failure) is not None:
                    continue
                if rule.rate < 1.0 and self.random() >= rule.rate:
                    continue
                if rule.effect is Effect.LATENCY:
                    latency_rule = rule
                else:
                    failure = rule
                rule.injected += 1
            chosen = failure or latency_rule
            if chosen is None:
                return None
            latency = latency_rule.latency_seconds if latency_rule else 0.0
            return Injection(rule=chosen, effect=chosen.effect, latency_seconds=latency)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {"rules": [rule.to_json() for rule in self.rules], "requests": dict(self.requests)}


PLAN = FaultPlan()


# ---------------------------------------------------------------- moto (DynamoDB and the JWKS)

_JWKS_PATH = re.compile(r"^/[^/]+/\.well-known/jwks\.json$")
_DYNAMODB_TARGET = "DynamoDB_20120810."
_TRANSLATE_TARGET = "AWSShineFrontendService_20170701."  # local_stack/translate_emulator.py
_DYNAMODB_ERRORS = {
    Effect.ERROR: (500, "InternalServerError", "Internal server error (injected by the fault knob)"),
    Effect.UNAVAILABLE: (503, "ServiceUnavailable", "Service unavailable (injected by the fault knob)"),
    Effect.THROTTLE: (
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded (injected by the fault knob)",
    ),
    Effect.ACCESS_DENIED: (
        400,
        "AccessDeniedException",
        "User is not authorized to perform this action on the table (injected by the fault knob)",
    ),
}
# Translate's own error shapes (its API reference): botocore's standard retry mode retries all three.
_TRANSLATE_ERRORS = {
    Effect.ERROR: (500, "InternalServerException", "An internal server error occurred (injected by the fault knob)"),
    Effect.UNAVAILABLE: (
        503,
        "ServiceUnavailableException",
        "The Amazon Translate service is temporarily unavailable (injected by the fault knob)",
    ),
    Effect.THROTTLE: (
        400,
        "TooManyRequestsException",
        "You have made too many requests within a short period of time (injected by the fault knob)",
    ),
}
_REASONS = {
    400: "Bad Request",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def dynamodb_tables(body: Any) -> list[str]:
    """Every table a DynamoDB request names: TableName, or the tables of a transaction or batch."""
    if not isinstance(body, dict):
        return []
    tables = [body["TableName"]] if isinstance(body.get("TableName"), str) else []
    for item in body.get("TransactItems") or []:
        for operation in item.values() if isinstance(item, dict) else []:
            if isinstance(operation, dict) and isinstance(operation.get("TableName"), str):
                tables.append(operation["TableName"])
    if isinstance(body.get("RequestItems"), dict):
        tables += [str(name) for name in body["RequestItems"]]
    return sorted(set(tables))


class MotoFaults:
    """WSGI middleware in front of moto's server."""

    def __init__(self, app: Callable[..., Any], plan: FaultPlan = PLAN) -> None:
        self.app = app
        self.plan = plan

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        injection = self._injection(environ)
        if injection is None:
            return self.app(environ, start_response)
        if injection.effect is Effect.LATENCY:
            # Served now, answered late.
            captured: list[Any] = []
            body = b"".join(self.app(environ, lambda status, headers, *_: captured.append((status, headers))))
            time.sleep(injection.latency_seconds)
            status, headers = captured[0]
            start_response(status, headers)
            return [body]
        time.sleep(injection.latency_seconds)
        return self._refusal(environ, injection.effect, start_response)

    def _injection(self, environ: dict[str, Any]) -> Injection | None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(_DYNAMODB_TARGET):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = BytesIO(raw)  # moto reads it again
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            return self.plan.decide(Service.DYNAMODB, target[len(_DYNAMODB_TARGET) :], dynamodb_tables(body))
        if target.startswith(_TRANSLATE_TARGET):
            return self.plan.decide(Service.TRANSLATE, target[len(_TRANSLATE_TARGET) :])
        if environ.get("REQUEST_METHOD") == "GET" and _JWKS_PATH.match(environ.get("PATH_INFO", "")):
            return self.plan.decide(Service.JWKS, "GetJwks")
        return None

    @staticmethod
    def _refusal(environ: dict[str, Any], effect: Effect, start_response: Callable[..., Any]) -> list[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(_TRANSLATE_TARGET):
            status, code, message = _TRANSLATE_ERRORS[effect]
            body = json.dumps({"__type": code, "message": message}).encode()
            content_type = "application/x-amz-json-1.1"
        elif target:
            status, code, message = _DYNAMODB_ERRORS[effect]
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
            content_type = "application/x-amz-json-1.0"
        else:
            status = 503 if effect is Effect.UNAVAILABLE else 500
            body, content_type = b'{"message": "injected by the fault knob"}', "application/json"
        start_response(
            f"{status} {_REASONS[status]}", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [body]


def install_on_moto(moto_server: Any, plan: FaultPlan = PLAN) -> None:
    """Put the middleware in front of a started ThreadedMotoServer (werkzeug reads `app` per
    request, so wrapping it after start covers every request from then on)."""
    wsgi_server = moto_server._server
    if not isinstance(wsgi_server.app, MotoFaults):
        wsgi_server.app = MotoFaults(wsgi_server.app, plan)


# ---------------------------------------------------------------- the management API and the control endpoint

_MANAGEMENT_ERRORS = {
    Effect.GONE: (410, "GoneException", "The connection with the provided id no longer exists."),
    Effect.THROTTLE: (429, "LimitExceededException", "Rate exceeded"),
    Effect.ERROR: (500, "InternalServerErrorException", "Internal server error"),
    Effect.UNAVAILABLE: (503, "ServiceUnavailableException", "Service unavailable"),
}


def management_middleware(plan: FaultPlan = PLAN) -> Any:
    """aiohttp middleware for the @connections routes; other paths pass untouched."""
    from aiohttp import web

    @web.middleware
    async def faults(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if "/@connections/" not in request.path:
            return await handler(request)
        operation = _MANAGEMENT_OPERATIONS.get(request.method, request.method)
        injection = plan.decide(Service.MANAGEMENT, operation)
        if injection is None:
            return await handler(request)
        if injection.effect is Effect.LATENCY:
            response = await handler(request)
            await asyncio.sleep(injection.latency_seconds)
            return response
        await asyncio.sleep(injection.latency_seconds)
        status, error_type, message = _MANAGEMENT_ERRORS[injection.effect]
        return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": error_type})

    return faults


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


class FaultControl:
    """`/_local/faults`: GET shows, PUT replaces, POST adds, DELETE clears. Loopback only."""

    def __init__(self, plan: FaultPlan = PLAN) -> None:
        self.plan = plan

    def add_routes(self, app: Any) -> None:
        app.router.add_route("*", CONTROL_PATH, self.handle)

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        if not _is_loopback(request.remote):
            return web.json_response({"message": "the fault knob answers loopback only"}, status=403)
        if request.method in ("PUT", "POST"):
            try:
                rules = parse_rules(await request.text())
            except FaultSpecError as error:
                return web.json_response({"message": str(error)}, status=400)
            (self.plan.replace if request.method == "PUT" else self.plan.add)(rules)
        elif request.method == "DELETE":
            self.plan.clear()
        elif request.method != "GET":
            return web.json_response({"message": "GET, PUT, POST or DELETE"}, status=405)
        return web.json_response(self.plan.to_json())


# ---------------------------------------------------------------- `make fault`


def control(http_port: int, method: str = "GET", rules: str = "", host: str = "127.0.0.1") -> dict[str, Any]:
    """One call of a running stack's fault endpoint; raises FaultSpecError on a refused rule."""
    request = urllib.request.Request(
        f"http://{host}:{http_port}{CONTROL_PATH}", data=rules.encode() if rules else None, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        message = json.loads(error.read() or b"{}").get("message", error.reason)
        raise FaultSpecError(message) from None


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack.faults",
        description="Show, set or clear the faults of a running local stack (the rules: see this module's docstring).",
    )
    parser.add_argument("--http-port", type=int, required=True, help="the stack's HTTP port (management API, page)")
    parser.add_argument("rules", nargs="?", default="", help="rules to set; `clear` clears; empty shows")
    parser.add_argument("--add", action="store_true", help="add to the rules in force instead of replacing them")
    arguments = parser.parse_args(argv)
    text = arguments.rules.strip()
    try:
        if text == "clear":
            state = control(arguments.http_port, "DELETE")
        elif text:
            parse_rules(text)  # a bad rule fails here, before the stack is asked
            state = control(arguments.http_port, "POST" if arguments.add else "PUT", text)
        else:
            state = control(arguments.http_port)
    except FaultSpecError as error:
        print(f"local_stack.faults: error: {error}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError):
        print(f"local_stack.faults: error: no local stack answers on port {arguments.http_port}", file=sys.stderr)
        return 1
    for rule in state["rules"]:
        print(f"{rule['spec']}  (injected {rule['injected']})")
    if not state["rules"]:
        print("no faults")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
