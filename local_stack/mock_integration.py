"""A WebSocket route with a MOCK integration, answered by the gateway itself as API Gateway does:
the request template gives the status code, the integration response whose key matches it gives
the response template, and a route response sends the rendered template back to the client.

The templates are Velocity in API Gateway. This is not a Velocity engine: it substitutes the
`$context` variables API Gateway documents for WebSocket APIs (apigateway-websocket-api-mapping-
template-reference) that the local gateway knows, and refuses anything else (`$input`, `$util`,
directives, unknown names) when the template is loaded, with a TemplateError naming the route and
the construct, so a template the local stack cannot render never answers something made up."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local_stack.errors import TemplateError

DEFAULT_KEY = "$default"

# The documented $context variables a local connection has (dotted as in a template).
SUPPORTED_CONTEXT = frozenset(
    {
        "apiId",
        "connectedAt",
        "connectionId",
        "domainName",
        "eventType",
        "extendedRequestId",
        "identity.sourceIp",
        "identity.userAgent",
        "messageDirection",
        "requestId",
        "requestTime",
        "requestTimeEpoch",
        "routeKey",
        "stage",
    }
)
# Whatever the authorizer put in its context; absent keys render empty, as API Gateway's do.
_AUTHORIZER_PREFIX = "authorizer."

# A Velocity reference ($name.path, $!name, ${name}, $!{name}) or directive (#if, #set, ##, #*, #{if}).
_REFERENCE = re.compile(r"\$!?(?:\{(?P<formal>[^}]*)\}|(?P<bare>[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z][A-Za-z0-9_-]*)*))")
_DIRECTIVE = re.compile(r"#(?:[A-Za-z{]|#|\*)")
_CONTEXT_PREFIX = "context."


@dataclass(frozen=True)
class IntegrationResponse:
    key: str  # $default or /regex/ against the status code
    template: str | None  # None: the integration's output is passed on unchanged


@dataclass(frozen=True)
class MockIntegration:
    route_key: str
    request_template: str | None
    responses: tuple[IntegrationResponse, ...]
    # Without a route response the route is one-way: the MOCK runs and nothing is sent back.
    two_way: bool

    def answer(self, context: Mapping[str, Any]) -> str | None:
        """The frame to send back, or None (one-way, or no integration response matched: API
        Gateway then sends nothing either)."""
        status = self._status(context)
        response = self._response_for(status)
        if not self.two_way or response is None:
            return None
        if response.template is None:
            return ""
        return render(response.template, context, self.route_key)

    def _status(self, context: Mapping[str, Any]) -> int:
        if self.request_template is None:
            return 200
        rendered = render(self.request_template, context, self.route_key)
        try:
            document = json.loads(rendered)
            return int(document.get("statusCode", 200)) if isinstance(document, dict) else 200
        except (ValueError, TypeError):
            raise TemplateError(
                f"route {self.route_key}: the MOCK request template must render a JSON object with statusCode, "
                f"got {rendered[:80]!r}"
            ) from None

    def _response_for(self, status: int) -> IntegrationResponse | None:
        for response in self.responses:
            if response.key != DEFAULT_KEY and re.fullmatch(response.key.strip("/"), str(status)):
                return response
        return next((response for response in self.responses if response.key == DEFAULT_KEY), None)


def selected_template(route_key: str, what: str, expression: Any, templates: Any) -> str | None:
    """The template a static TemplateSelectionExpression picks (`\\$default` is the key $default)."""
    if not templates:
        return None
    if not isinstance(templates, Mapping):
        raise TemplateError(f"route {route_key}: {what} templates must be a mapping of key to template")
    key = DEFAULT_KEY if expression in (None, "") else str(expression)
    if key.startswith("\\$"):
        key = key[1:]
    elif key.startswith("$") and key != DEFAULT_KEY:
        raise TemplateError(
            f"route {route_key}: {what} TemplateSelectionExpression {key!r} is evaluated per request; "
            "the local stack supports a static key only (for example \\$default)"
        )
    if key not in templates:
        raise TemplateError(f"route {route_key}: {what} TemplateSelectionExpression selects {key!r}, no such template")
    template = templates[key]
    check(str(template), route_key)
    return str(template)


def check(template: str, route_key: str) -> None:
    """Refuses, naming the route and the construct, what render() cannot do."""
    directive = _DIRECTIVE.search(template)
    if directive is not None:
        raise TemplateError(
            f"route {route_key}: the local stack does not run Velocity directives ({_excerpt(template, directive)}); "
            "only $context variables are substituted"
        )
    for match in _references(template):
        name = _context_name(match)
        if name is None or not (name in SUPPORTED_CONTEXT or name.startswith(_AUTHORIZER_PREFIX)):
            raise TemplateError(
                f"route {route_key}: the local stack cannot render {match.group(0)!r} in a MOCK template; "
                f"it supports $context.<name> for {', '.join(sorted(SUPPORTED_CONTEXT))} and authorizer.<key>"
            )


def render(template: str, context: Mapping[str, Any], route_key: str) -> str:
    """Substitutes `$context.<name>`; `context` is the request context a Lambda integration would get."""
    check(template, route_key)

    def value(match: re.Match[str]) -> str:
        name = _context_name(match)
        assert name is not None  # check() refused the rest
        found: Any = context
        for part in name.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        if found is None:
            return ""
        if isinstance(found, bool):
            return "true" if found else "false"
        return str(found)

    return _REFERENCE.sub(value, template)


def _references(template: str) -> list[re.Match[str]]:
    return list(_REFERENCE.finditer(template))


def _context_name(match: re.Match[str]) -> str | None:
    name = match.group("formal") if match.group("formal") is not None else match.group("bare")
    return name[len(_CONTEXT_PREFIX) :] if name.startswith(_CONTEXT_PREFIX) else None


def _excerpt(template: str, match: re.Match[str]) -> str:
    return repr(template[match.start() : match.start() + 12])
