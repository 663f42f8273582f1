"""Moto in server mode on loopback: the template's DynamoDB tables and a Cognito user pool with a
demo speaker, whose tokens are real RS256 JWTs checked against the pool's JWKS over HTTP."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from local_stack import dynamodb_responses, faults, moto_dynamodb, translate_emulator
from local_stack.intrinsics import REGION
from local_stack.template import StackTemplate, TableDefinition

logger = logging.getLogger(__name__)

DEMO_SPEAKER_EMAIL = "speaker@example.org"
# Satisfies any Cognito password policy a template is likely to set (length, cases, digit, symbol).
DEMO_SPEAKER_PASSWORD = "Local-Speaker-Passw0rd"
_REQUIRED_AUTH_FLOWS = ("ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
REQUEST_COUNTS_PATH = "/_local/dynamodb-requests"
SERVICE_REQUEST_COUNTS_PATH = "/_local/aws-requests"
# X-Amz-Target prefixes of the JSON services the functions call, by the name the counts use.
_SERVICES_BY_TARGET_PREFIX = {
    "DynamoDB_": "dynamodb",
    "AWSShineFrontendService_": "translate",
    "AmazonSQS": "sqs",
}


class AwsRequestCounter:
    """WSGI middleware in front of moto and the Translate emulator: counts requests by service and
    operation. `GET /_local/dynamodb-requests` answers DynamoDB's counts so far and
    `GET /_local/aws-requests` every service's (`make bench` reports requests per operation from
    their differences)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.counts: dict[str, Counter[str]] = {service: Counter() for service in _SERVICES_BY_TARGET_PREFIX.values()}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in (
            REQUEST_COUNTS_PATH,
            SERVICE_REQUEST_COUNTS_PATH,
        ):
            with self._lock:
                counts = {service: dict(counted) for service, counted in self.counts.items()}
            document = counts["dynamodb"] if environ["PATH_INFO"] == REQUEST_COUNTS_PATH else counts
            body = json.dumps(document).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        service = next((name for prefix, name in _SERVICES_BY_TARGET_PREFIX.items() if target.startswith(prefix)), None)
        if service is not None:
            with self._lock:
                self.counts[service][target.partition(".")[2]] += 1
        return self.app(environ, start_response)


class EmbeddedAws:
    def __init__(self) -> None:
        # werkzeug logs every request moto serves, and a traceback for each call to a service
        # moto lacks; the console is for the functions' logs.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self.user_pool_id = ""
        self.user_pool_client_id = ""
        self.table_names: dict[str, str] = {}
        self._users_lock = threading.Lock()

    def start(self) -> None:
        # Isolation, cheap rollback and ClientRequestToken, as DynamoDB has them (see the module).
        moto_dynamodb.install()
        # Answers written at the cost of their items, not of moto's generic serializer (see the module).
        dynamodb_responses.install()
        _cache_moto_module_list()
        self._server.start()
        # werkzeug reads `app` per request, so wrapping it now covers every request.
        wsgi_server = self._server._server
        assert wsgi_server is not None
        # Translate, which moto lacks, answered on the same endpoint (see the module).
        self.translate = translate_emulator.install_on_moto(self._server)
        # In front of the emulator, so a caption's TranslateText calls are counted too.
        wsgi_server.app = AwsRequestCounter(wsgi_server.app)
        # Outermost: the fault knob (make fault) sees every request first.
        faults.install_on_moto(self._server)
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def provision(self, template: StackTemplate) -> None:
        dynamodb = self.client("dynamodb")
        for table in template.tables.values():
            _create_table(dynamodb, table)
            self.table_names[table.logical_id] = table.table_name
        self._create_user_pool(template)

    def _create_user_pool(self, template: StackTemplate) -> None:
        definition = template.user_pool
        pool_properties = definition.pool_properties
        cognito = self.client("cognito-idp")
        pool_arguments: dict[str, Any] = {"PoolName": str(pool_properties.get("UserPoolName") or "local-speakers")}
        if pool_properties.get("UsernameAttributes"):
            pool_arguments["UsernameAttributes"] = list(pool_properties["UsernameAttributes"])
        self.user_pool_id = cognito.create_user_pool(**pool_arguments)["UserPool"]["Id"]
        client_properties = definition.client_properties
        flows = list(client_properties.get("ExplicitAuthFlows") or [])
        flows += [flow for flow in _REQUIRED_AUTH_FLOWS if flow not in flows]
        self.user_pool_client_id = cognito.create_user_pool_client(
            UserPoolId=self.user_pool_id,
            ClientName=str(client_properties.get("ClientName") or "local-speaker-app"),
            ExplicitAuthFlows=flows,
        )["UserPoolClient"]["ClientId"]
        for logical_id, physical_id in (
            (definition.pool_logical_id, self.user_pool_id),
            (definition.client_logical_id, self.user_pool_client_id),
        ):
            if logical_id is not None:
                template.resolver.physical_ids[logical_id] = physical_id
        self._ensure_speaker(DEMO_SPEAKER_EMAIL)

    def _ensure_speaker(self, email: str) -> None:
        cognito = self.client("cognito-idp")
        with self._users_lock:
            try:
                cognito.admin_get_user(UserPoolId=self.user_pool_id, Username=email)
                return
            except cognito.exceptions.UserNotFoundException:
                pass
            cognito.admin_create_user(
                UserPoolId=self.user_pool_id,
                Username=email,
                UserAttributes=[
                    {"Name": "email", "Value": email},
                    {"Name": "email_verified", "Value": "true"},
                ],
                MessageAction="SUPPRESS",
            )
            cognito.admin_set_user_password(
                UserPoolId=self.user_pool_id, Username=email, Password=DEMO_SPEAKER_PASSWORD, Permanent=True
            )

    def speaker_token(self, email: str = DEMO_SPEAKER_EMAIL) -> str:
        """A fresh ID token of a demo speaker, created on first use."""
        self._ensure_speaker(email)
        result = self.client("cognito-idp").initiate_auth(
            ClientId=self.user_pool_client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": DEMO_SPEAKER_PASSWORD},
        )
        return str(result["AuthenticationResult"]["IdToken"])


def _cache_moto_module_list() -> None:
    """moto's dispatcher lists its own package directory (os.listdir, isdir each) on every request,
    under a lock all request threads share; the list never changes while the stack runs."""
    import moto.backends

    if getattr(moto.backends.list_of_moto_modules, "cached", False):
        return
    modules = tuple(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules.cached = True  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = list_of_moto_modules


def _create_table(dynamodb: Any, table: TableDefinition) -> None:
    properties = table.properties
    arguments: dict[str, Any] = {key: properties[key] for key in _TABLE_KEYS if key in properties}
    arguments["TableName"] = table.table_name
    arguments.setdefault("BillingMode", "PROVISIONED")
    for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if properties.get(index_kind):
            arguments[index_kind] = [_index(index) for index in properties[index_kind]]
    dynamodb.create_table(**arguments)
    ttl = properties.get("TimeToLiveSpecification")
    if isinstance(ttl, Mapping) and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=table.table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    return {key: index[key] for key in _INDEX_KEYS if key in index}
