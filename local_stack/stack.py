"""Starts and stops the whole local stack in order: ports, moto, functions, gateway, schedules.

Two loopback ports: the WebSocket API (websockets) on `port`, and the HTTP side (aiohttp: the
management API, the page, the token endpoint) on `http_port`; see docs/decisions.md."""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from local_stack import faults, queues
from local_stack.apigateway_events import ApiContext
from local_stack.embedded_aws import DEMO_SPEAKER_EMAIL, EmbeddedAws
from local_stack.environment import (
    EnvVars,
    LocalEndpoints,
    LocalRun,
    check_env_vars_against,
    check_function_settings,
    function_environment,
    load_env_vars,
)
from local_stack.errors import LocalStackError, PortInUseError
from local_stack.functions import FunctionPool, Functions, LogSink, warm_environments
from local_stack.gateway import GatewayLimits, WebSocketGateway
from local_stack.local_pages import TOKEN_PATH, LocalPages
from local_stack.management import InvokeConnection, ManagementApi
from local_stack.schedules import ScheduleRunner
from local_stack.template import FunctionDefinition, StackTemplate, WebSocketApi, load_template

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
STACK_INFO_PATH = "/_local/stack"  # what `make invoke` borrows from a running stack


@dataclass(frozen=True)
class StackOptions:
    template_path: Path
    port: int = 8080
    # None: the port after `port` (a free one when `port` is 0).
    http_port: int | None = None
    stage: str | None = None
    env_vars_path: Path | None = None
    idle_timeout_seconds: float = 600.0
    max_connection_seconds: float = 7200.0
    schedule_seconds: float | None = None
    run_schedules: bool = True
    emit_metrics: bool = False
    # `make invoke` beside a running `make run`: that stack's ready info (its moto, user pool and
    # management API); none starts here.
    running_stack: Mapping[str, Any] | None = None
    invoke_connection: InvokeConnection | None = None
    # Execution environments started ahead of demand; one invocation needs none.
    warm_pools: bool = True


def ready_without_token(ready: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in ready.items() if key != "speakerToken"}


def _new_api_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def _bind(port: int, what: str) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} ({what}) is already in use") from None
        raise LocalStackError(f"port {port} ({what}) cannot be used: {error.strerror}") from None
    listener.listen(256)
    listener.setblocking(False)
    return listener


class LocalStack:
    def __init__(self, options: StackOptions, log_sink: LogSink | None = None) -> None:
        self.options = options
        self._log_sink = log_sink or LogSink()
        self.env_vars: EnvVars = load_env_vars(options.env_vars_path)
        self.template: StackTemplate = load_template(
            options.template_path, self.env_vars.parameters, api_id=_new_api_id()
        )
        check_env_vars_against(self.env_vars, self.template, options.env_vars_path)
        self.api = self._api()
        self.aws = EmbeddedAws()
        self.run = LocalRun(rate_limit_key_secret=secrets.token_hex(32), emit_metrics=options.emit_metrics)
        self.functions: Functions | None = None
        self.gateway: WebSocketGateway | None = None
        self._runner: web.AppRunner | None = None
        self._schedules: ScheduleRunner | None = None
        self._aws_started = False
        # A queue or SQS event the local stack cannot serve fails here, before anything starts.
        self.queue_setup = queues.discover(self.template)
        self._sqs_sources: queues.SqsEventSources | None = None

    def _api(self) -> WebSocketApi:
        api = self.template.api or WebSocketApi(
            logical_id="", api_id=_new_api_id(), route_selection_expression="", stage_name="dev", routes={}
        )
        if self.options.stage:
            api = WebSocketApi(
                logical_id=api.logical_id,
                api_id=api.api_id,
                route_selection_expression=api.route_selection_expression,
                stage_name=self.options.stage,
                routes=api.routes,
            )
        return api

    async def start(self) -> dict[str, Any]:
        """Starts everything; returns what the ready file holds. Cleans up after itself on failure."""
        self.check_settings()
        listeners = [_bind(self.options.port, "WebSocket API")]
        try:
            http_port = self.options.http_port
            if http_port is None:
                http_port = self.options.port + 1 if self.options.port else 0
            listeners.append(_bind(http_port, "management API and page"))
            return await self._start_on(*listeners)
        except BaseException:
            for listener in listeners:
                listener.close()
            await self.stop()
            raise

    async def _start_on(self, websocket_listener: socket.socket, http_listener: socket.socket) -> dict[str, Any]:
        stage = self.api.stage_name
        port = websocket_listener.getsockname()[1]
        http_port = http_listener.getsockname()[1]
        base_url = f"http://{HOST}:{http_port}"
        management_endpoint = f"{base_url}/{stage}"
        endpoints = self._aws_endpoints(management_endpoint)
        self.functions = Functions(
            {
                function_id: FunctionPool(
                    definition,
                    function_environment(definition, self.template, endpoints, self.env_vars, self.run),
                    self._log_sink,
                    warm_workers=warm_environments() if self.options.warm_pools else 0,
                )
                for function_id, definition in self.template.functions.items()
            }
        )
        self.functions.prewarm()
        context = ApiContext(api_id=self.api.api_id, stage=stage, domain_name=f"{HOST}:{port}")
        limits = GatewayLimits(self.options.idle_timeout_seconds, self.options.max_connection_seconds)
        self.gateway = WebSocketGateway(self.api, context, self.functions, limits)
        ready = {
            "websocketUrl": f"ws://{HOST}:{port}/{stage}",
            "managementEndpoint": management_endpoint,
            "pageUrl": f"{base_url}/",
            "tokenUrl": f"{base_url}{TOKEN_PATH}",
            "port": port,
            "httpPort": http_port,
            "stage": stage,
            "motoEndpoint": endpoints.moto,
            "userPoolId": endpoints.user_pool_id,
            "userPoolClientId": endpoints.user_pool_client_id,
            "tables": self._table_names(),
            "speakerEmail": DEMO_SPEAKER_EMAIL,
            "queues": {lid: self.template.resolver.ref(lid) for lid in self.queue_setup.queues},
        }
        app = web.Application(middlewares=[faults.management_middleware()])
        ManagementApi(self.gateway, self.options.invoke_connection).add_routes(app, stage)
        app.router.add_get(STACK_INFO_PATH, lambda _: web.json_response(ready_without_token(ready)))
        page_endpoints = {
            "WebSocket": ready["websocketUrl"],
            "Management API": f"{management_endpoint}/@connections/{{connectionId}}",
            "Token": ready["tokenUrl"],
            "Moto (DynamoDB, Cognito)": endpoints.moto,
        }
        LocalPages(self.gateway, self.aws, page_endpoints).add_routes(app)
        faults.FaultControl().add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        await web.SockSite(self._runner, http_listener).start()
        await self.gateway.start(websocket_listener, base_url)
        if self.options.run_schedules:
            self._schedules = ScheduleRunner(
                self.functions,
                [d for d in self.template.functions.values() if d.schedules],
                self.options.schedule_seconds,
            )
            self._schedules.start()
            if self.queue_setup.sources:
                self._sqs_sources = queues.SqsEventSources(
                    self.functions,
                    self.queue_setup.sources,
                    ready["queues"],
                    lambda: self.aws.client("sqs"),
                )
                self._sqs_sources.start()
        if self._aws_started:
            ready["speakerToken"] = self.aws.speaker_token()
        return ready

    def check_settings(self) -> None:
        """Before anything listens: each function's environment as it will run, with stand-in
        endpoints (no setting the domain validates depends on them)."""
        environments = {
            function_id: self.environment_of(definition) for function_id, definition in self.template.functions.items()
        }
        check_function_settings(self.template.functions, environments)

    def environment_of(self, function: FunctionDefinition) -> dict[str, str]:
        """A function's environment as it will run, with stand-in endpoints."""
        stand_ins = LocalEndpoints(
            management_api=f"http://{HOST}:0/{self.api.stage_name}",
            moto=f"http://{HOST}:0",
            user_pool_id="us-east-1_local",
            user_pool_client_id="local",
        )
        return function_environment(function, self.template, stand_ins, self.env_vars, self.run)

    def _aws_endpoints(self, management_endpoint: str) -> LocalEndpoints:
        running = self.options.running_stack
        if running is None:
            self.aws.start()
            self._aws_started = True
            self.aws.provision(self.template)
            queues.create_queues(self.aws.client("sqs"), self.queue_setup, self.template.resolver)
            moto, pool_id, client_id = self.aws.endpoint, self.aws.user_pool_id, self.aws.user_pool_client_id
        else:
            moto, pool_id, client_id = running["motoEndpoint"], running["userPoolId"], running["userPoolClientId"]
            queues.record_existing_queues(self.queue_setup, self.template.resolver, moto)
            # What provisioning would have recorded: the pool's ids for the template's Refs.
            definition = self.template.user_pool
            for logical_id, physical_id in (
                (definition.pool_logical_id, pool_id),
                (definition.client_logical_id, client_id),
            ):
                if logical_id is not None:
                    self.template.resolver.physical_ids[logical_id] = physical_id
        return LocalEndpoints(
            management_api=management_endpoint, moto=moto, user_pool_id=pool_id, user_pool_client_id=client_id
        )

    def _table_names(self) -> dict[str, str]:
        if self.options.running_stack is not None:
            return dict(self.options.running_stack.get("tables", {}))
        return dict(self.aws.table_names)

    def schedule_descriptions(self) -> list[str]:
        return self._schedules.describe() if self._schedules is not None else []

    async def invoke(self, function_id: str, event: Any) -> Any:
        assert self.functions is not None
        return await self.functions.invoke(function_id, event)

    def kill_workers(self) -> None:
        """The forced part of a second Ctrl-C: in-flight invocations fail at once."""
        if self.functions is not None:
            self.functions.kill_all()

    async def stop(self) -> None:
        """Idempotent; in the order that lets every $disconnect still reach its function and moto."""
        schedules, self._schedules = self._schedules, None
        if schedules is not None:
            await schedules.stop()
        sqs_sources, self._sqs_sources = self._sqs_sources, None
        if sqs_sources is not None:
            await sqs_sources.stop()
        if self.gateway is not None:
            await self.gateway.close_all()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        functions, self.functions = self.functions, None
        if functions is not None:
            await asyncio.get_running_loop().run_in_executor(None, functions.close)
        if self._aws_started:
            self.aws.stop()
            self._aws_started = False
