"""What only the local stack serves over HTTP: the speaker and listener page (web/), its config,
the JavaScript client, a status page, and fresh demo-speaker tokens (loopback callers only).

The page is plain static files, so a deployed stack hosts the same files; `write_site` (the
`make page-site` target) writes them with a config built from the stack's outputs."""

from __future__ import annotations

import argparse
import asyncio
import html
import importlib.util
import ipaddress
import json
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from local_stack.embedded_aws import DEMO_SPEAKER_EMAIL, EmbeddedAws
from local_stack.errors import LocalStackError
from local_stack.gateway import WebSocketGateway
from local_stack.intrinsics import REGION

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = REPO_ROOT / "web"
CLIENT_FILE = REPO_ROOT / "clients" / "js" / "live-translation-client.js"
TOKEN_PATH = "/_local/token"
STATUS_PATH = "/_local/status"
CONFIG_NAME = "config.json"
# Where the page imports the client from, relative to its own files (the site layout).
CLIENT_DIR_NAME = "client"
LANGUAGES_MODULE = Path("session_manager") / "languages.py"
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30.0
DEFAULT_SPEAKER_RECONNECT_GRACE_SECONDS = 30.0
# Tokens of the token endpoint last this long instead of Cognito's hour, so a test can watch a
# speaker page outlive its token in a minute (the authorizer still allows its 30 s of clock leeway).
SPEAKER_TOKEN_SECONDS_VARIABLE = "LOCAL_SPEAKER_TOKEN_SECONDS"
MAX_SPEAKER_TOKEN_SECONDS = 3600

_CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain",
}


class PageConfigError(RuntimeError):
    """The page cannot be configured: the message names what is missing."""


def load_language_lists(search_dirs: Iterable[Path]) -> tuple[list[str], list[str]]:
    """The domain's own snapshots (source: Translate; target: Translate and a Polly neural voice),
    so the page offers exactly what a join accepts."""
    module = _load_languages_module(search_dirs)
    translatable = sorted(module.TRANSLATE_SNAPSHOT)
    speakable = sorted(module.TRANSLATE_SNAPSHOT & module.NEURAL_VOICE_SNAPSHOT)
    return translatable, speakable


def _load_languages_module(search_dirs: Iterable[Path]) -> ModuleType:
    searched = []
    for directory in search_dirs:
        candidate = Path(directory) / LANGUAGES_MODULE
        searched.append(str(candidate))
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("_page_languages", candidate)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise PageConfigError(f"no language list for the page: none of {searched} exists")


def page_config(
    websocket_url: str,
    auth: Mapping[str, Any],
    source_languages: Sequence[str],
    target_languages: Sequence[str],
    heartbeat_interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    speaker_reconnect_grace_seconds: float = DEFAULT_SPEAKER_RECONNECT_GRACE_SECONDS,
) -> dict[str, Any]:
    """What web/page-config.js reads from config.json (docs/clients.md, "Hosting the page")."""
    if not websocket_url.startswith(("ws://", "wss://")):
        raise PageConfigError(f"the page needs a ws:// or wss:// URL, got {websocket_url!r}")
    return {
        "websocketUrl": websocket_url,
        "auth": dict(auth),
        "heartbeatIntervalSeconds": heartbeat_interval_seconds,
        "speakerReconnectGraceSeconds": speaker_reconnect_grace_seconds,
        "sourceLanguages": list(source_languages),
        "targetLanguages": list(target_languages),
    }


def _site_files() -> dict[str, Path]:
    """Every file of the site by its URL path (no leading slash)."""
    files = {path.relative_to(WEB_DIR).as_posix(): path for path in WEB_DIR.rglob("*") if path.is_file()}
    # The client and the modules it imports (caption-order.js), as one directory beside the page.
    for module in CLIENT_FILE.parent.glob("*.js"):
        files[f"{CLIENT_DIR_NAME}/{module.name}"] = module
    return files


def speaker_token_seconds(environ: Mapping[str, str]) -> int | None:
    """The token endpoint's token lifetime from the stack's environment, or None for Cognito's."""
    raw = environ.get(SPEAKER_TOKEN_SECONDS_VARIABLE, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SPEAKER_TOKEN_SECONDS:
        rule = f"must be a whole number of seconds from 1 to {MAX_SPEAKER_TOKEN_SECONDS}"
        raise LocalStackError(f"{SPEAKER_TOKEN_SECONDS_VARIABLE}={raw!r} {rule}")
    return int(raw)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class LocalPages:
    def __init__(self, gateway: WebSocketGateway, aws: EmbeddedAws, endpoints: dict[str, str]) -> None:
        self._gateway = gateway
        self._aws = aws
        self._endpoints = endpoints
        self._files = _site_files()
        self._config: dict[str, Any] | None = None
        self._token_seconds = speaker_token_seconds(os.environ)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.site_file)
        app.router.add_get(f"/{CONFIG_NAME}", self.config)
        app.router.add_get(STATUS_PATH, self.status_page)
        app.router.add_get(TOKEN_PATH, self.speaker_token)
        app.router.add_get("/{path:(?!_local/).+}", self.site_file)

    async def site_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "index.html")
        file = self._files.get(path)  # only files that exist in the site: no path ever escapes it
        if file is None:
            raise web.HTTPNotFound(text=f"no such page: /{path}\n")
        content_type = _CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        # Edits show on the next reload while developing.
        return web.Response(
            body=file.read_bytes(),
            content_type=content_type,
            charset="utf-8" if content_type.startswith("text/") or content_type.endswith("json") else None,
            headers={"Cache-Control": "no-cache"},
        )

    async def config(self, request: web.Request) -> web.Response:
        if self._config is None:
            self._config = self._local_config()
        return web.json_response(self._config, headers={"Cache-Control": "no-cache"})

    def _local_config(self) -> dict[str, Any]:
        websocket_url = self._endpoints.get("WebSocket")
        if websocket_url is None:
            raise PageConfigError("the stack did not tell the page its WebSocket URL")
        pools = list(self._gateway.functions.pools.values())
        environment: dict[str, str] = {}
        for pool in pools:
            environment = {**pool.environment, **environment}
        layer_dirs = [layer_dir for pool in pools for layer_dir in pool.function.layer_dirs]
        source_languages, target_languages = load_language_lists([*layer_dirs, *map(Path, sys.path)])
        return page_config(
            websocket_url,
            {"mode": "local", "tokenUrl": TOKEN_PATH, "demoEmail": DEMO_SPEAKER_EMAIL},
            source_languages,
            target_languages,
            float(environment.get("HEARTBEAT_INTERVAL_SECONDS", DEFAULT_HEARTBEAT_INTERVAL_SECONDS)),
            float(environment.get("SPEAKER_RECONNECT_GRACE_SECONDS", DEFAULT_SPEAKER_RECONNECT_GRACE_SECONDS)),
        )

    async def status_page(self, request: web.Request) -> web.Response:
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td><code>{html.escape(url)}</code></td></tr>"
            for name, url in self._endpoints.items()
        )
        routes = ", ".join(html.escape(key) for key in sorted(self._gateway.api.routes))
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Local stack</title></head><body>"
            "<h1>Local stack</h1>"
            f"<table>{rows}</table>"
            f"<p>Routes: {routes}</p>"
            f"<p>Open connections: <strong id='connections'>{len(self._gateway.connections)}</strong></p>"
            f"<p>A speaker token: <code>GET {TOKEN_PATH}?email=…</code></p>"
            "<p><a href='/speaker.html'>Speaker page</a> · <a href='/'>Listener page</a></p>"
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def speaker_token(self, request: web.Request) -> web.Response:
        # The stack binds loopback only; this also holds if it is ever put behind a proxy.
        if not _is_loopback(request.remote) or "X-Forwarded-For" in request.headers:
            return web.Response(status=403, text="speaker tokens are handed out to this machine only\n")
        email = request.query.get("email") or DEMO_SPEAKER_EMAIL
        if "@" not in email:
            return web.Response(status=400, text="email must be an address\n")
        token = await asyncio.get_running_loop().run_in_executor(None, self._speaker_token, email)
        return web.Response(text=token, headers={"Cache-Control": "no-store"})

    def _speaker_token(self, email: str) -> str:
        token = self._aws.speaker_token(email)  # also creates the speaker on first use
        if self._token_seconds is None:
            return token
        # The pool's own signer (moto runs in this process), with the claims a sign-in gives.
        from moto.cognitoidp.models import cognitoidp_backends
        from moto.core import DEFAULT_ACCOUNT_ID

        pool = cognitoidp_backends[DEFAULT_ACCOUNT_ID][REGION].user_pools[self._aws.user_pool_id]
        client_id = self._aws.user_pool_client_id
        short_lived, _ = pool.create_jwt(
            client_id,
            email,
            "id",
            expires_in=self._token_seconds,
            extra_data=pool.get_user_extra_data_by_client_id(client_id, email),
        )
        return str(short_lived)


def write_site(out_dir: Path, config: Mapping[str, Any]) -> list[Path]:
    """The page as static files for any web host: web/, the client, and config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for url_path, source in sorted(_site_files().items()):
        target = out_dir / url_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    config_file = out_dir / CONFIG_NAME
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    written.append(config_file)
    return written


def _stack_outputs(stack_name: str, region: str) -> dict[str, str]:
    import boto3  # only this command talks to AWS

    stacks = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack_name)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def _site_command(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack.local_pages",
        description="Write the page as static files configured for a deployed stack.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write the site into")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack-name", help="read the outputs of this CloudFormation stack")
    source.add_argument("--outputs", type=Path, help="a JSON file of the outputs ({OutputKey: OutputValue})")
    parser.add_argument("--region", default=None, help="the stack's region (default: AWS_DEFAULT_REGION)")
    parser.add_argument("--heartbeat-interval-seconds", type=float, default=DEFAULT_HEARTBEAT_INTERVAL_SECONDS)
    parser.add_argument(
        "--cognito-endpoint",
        default=None,
        help="sign in against this Cognito endpoint instead of the region's (the local stack's moto, for a test)",
    )
    arguments = parser.parse_args(argv)
    if arguments.outputs is not None:
        outputs = json.loads(arguments.outputs.read_text(encoding="utf-8"))
    else:
        import os

        outputs = _stack_outputs(arguments.stack_name, arguments.region or os.environ.get("AWS_DEFAULT_REGION", ""))
    missing = [key for key in ("WebSocketUrl", "UserPoolId", "UserPoolClientId") if not outputs.get(key)]
    if missing:
        print(f"page-site: error: the stack outputs lack {', '.join(missing)}", file=sys.stderr)
        return 2
    source_languages, target_languages = load_language_lists(
        [REPO_ROOT / "layers" / "session_manager" / "python", *map(Path, sys.path)]
    )
    auth = {
        "mode": "cognito",
        "region": outputs["UserPoolId"].split("_", 1)[0],
        "userPoolClientId": outputs["UserPoolClientId"],
    }
    if arguments.cognito_endpoint:
        auth["endpoint"] = arguments.cognito_endpoint
    config = page_config(
        outputs["WebSocketUrl"],
        auth,
        source_languages,
        target_languages,
        arguments.heartbeat_interval_seconds,
    )
    written = write_site(arguments.out, config)
    print(f"page-site: wrote {len(written)} files to {arguments.out}; upload them to any static host (docs/clients.md)")
    return 0


if __name__ == "__main__":
    sys.exit(_site_command())
