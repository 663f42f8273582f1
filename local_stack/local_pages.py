"""What only the local stack serves: a status page at / and fresh demo-speaker tokens."""

from __future__ import annotations

import asyncio
import html

from aiohttp import web

from local_stack.embedded_aws import DEMO_SPEAKER_EMAIL, EmbeddedAws
from local_stack.gateway import WebSocketGateway

TOKEN_PATH = "/_local/token"


class LocalPages:
    def __init__(self, gateway: WebSocketGateway, aws: EmbeddedAws, endpoints: dict[str, str]) -> None:
        self._gateway = gateway
        self._aws = aws
        self._endpoints = endpoints

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.status_page)
        app.router.add_get(TOKEN_PATH, self.speaker_token)

    async def status_page(self, request: web.Request) -> web.Response:
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td><code>{html.escape(url)}</code></td></tr>"
            for name, url in self._endpoints.items()
        )
        routes = ", ".join(html.escape(key) for key in sorted(self._gateway.api.routes))
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Local stack</title></head><body>"
            "<h1>Local stack</h1>"
            f"<table>{rows}</table>"
            f"<p>Routes: {routes}</p>"
            f"<p>Open connections: <strong id='connections'>{len(self._gateway.connections)}</strong></p>"
            f"<p>A speaker token: <code>GET {TOKEN_PATH}?email=…</code></p>"
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def speaker_token(self, request: web.Request) -> web.Response:
        email = request.query.get("email") or DEMO_SPEAKER_EMAIL
        if "@" not in email:
            return web.Response(status=400, text="email must be an address\n")
        token = await asyncio.get_running_loop().run_in_executor(None, self._aws.speaker_token, email)
        return web.Response(text=token)
