"""Starts and stops the whole local stack in order: port, moto, functions, gateway, schedules."""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from local_stack.apigateway_events import ApiContext
from local_stack.embedded_aws import EmbeddedAws
from local_stack.environment import (
    EnvVars,
    LocalEndpoints,
    check_env_vars_against,
    function_environment,
    load_env_vars,
)
from local_stack.errors import LocalStackError, PortInUseError
from local_stack.functions import FunctionPool, Functions, LogSink
from local_stack.gateway import GatewayLimits, WebSocketGateway
from local_stack.local_pages import LocalPages
from local_stack.management import ManagementApi
from local_stack.schedules import ScheduleRunner
from local_stack.template import StackTemplate, WebSocketApi, load_template

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


@dataclass(frozen=True)
class StackOptions:
    template_path: Path
    port: int = 8080
    stage: str | None = None
    env_vars_path: Path | None = None
    idle_timeout_seconds: float = 600.0
    max_connection_seconds: float = 7200.0
    schedule_seconds: float | None = None
    run_schedules: bool = True


def _new_api_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def _bind(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} is already in use") from None
        raise LocalStackError(f"port {port} cannot be used: {error.strerror}") from None
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
        self.functions: Functions | None = None
        self.gateway: WebSocketGateway | None = None
        self._runner: web.AppRunner | None = None
        self._schedules: ScheduleRunner | None = None
        self._aws_started = False

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
        listener = _bind(self.options.port)
        port = listener.getsockname()[1]
        try:
            return await self._start_on(listener, port)
        except BaseException:
            listener.close()
            await self.stop()
            raise

    async def _start_on(self, listener: socket.socket, port: int) -> dict[str, Any]:
        stage = self.api.stage_name
        base_url = f"http://{HOST}:{port}"
        management_endpoint = f"{base_url}/{stage}"
        self.aws.start()
        self._aws_started = True
        self.aws.provision(self.template)
        endpoints = LocalEndpoints(
            management_api=management_endpoint,
            moto=self.aws.endpoint,
            user_pool_id=self.aws.user_pool_id,
            user_pool_client_id=self.aws.user_pool_client_id,
        )
        self.functions = Functions(
            {
                function_id: FunctionPool(
                    definition,
                    function_environment(definition, self.template, endpoints, self.env_vars),
                    self._log_sink,
                )
                for function_id, definition in self.template.functions.items()
            }
        )
        context = ApiContext(api_id=self.api.api_id, stage=stage, domain_name=f"{HOST}:{port}")
        limits = GatewayLimits(self.options.idle_timeout_seconds, self.options.max_connection_seconds)
        self.gateway = WebSocketGateway(self.api, context, self.functions, limits)
        ready = {
            "websocketUrl": f"ws://{HOST}:{port}/{stage}",
            "managementEndpoint": management_endpoint,
            "pageUrl": f"{base_url}/",
            "port": port,
            "stage": stage,
            "motoEndpoint": self.aws.endpoint,
            "userPoolId": self.aws.user_pool_id,
            "userPoolClientId": self.aws.user_pool_client_id,
            "tables": dict(self.aws.table_names),
        }
        app = web.Application()
        app.router.add_get(f"/{stage}", self.gateway.handle)
        ManagementApi(self.gateway).add_routes(app, stage)
        page_endpoints = {
            "WebSocket": ready["websocketUrl"],
            "Management API": f"{management_endpoint}/@connections/{{connectionId}}",
            "Moto (DynamoDB, Cognito)": self.aws.endpoint,
        }
        LocalPages(self.gateway, self.aws, page_endpoints).add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        await web.SockSite(self._runner, listener).start()
        if self.options.run_schedules:
            self._schedules = ScheduleRunner(
                self.functions,
                [d for d in self.template.functions.values() if d.schedules],
                self.options.schedule_seconds,
            )
            self._schedules.start()
        ready["speakerToken"] = self.aws.speaker_token()
        return ready

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
