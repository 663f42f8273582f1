"""The one place that turns API Gateway events into domain calls, and decisions into I/O.

Every client-visible outcome, success or error, reaches the client as a JSON message posted to
its connection; the integration itself only answers a status code. The notices a decision holds
for other connections are delivered after the caller's replies.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from session_manager.caller import Caller
from session_manager.clock import SystemClock, now_ms
from session_manager.errors import InternalError, RateLimitExceededError, SessionServiceError
from session_manager.observability import NAMESPACE, SERVICE, fingerprint, logger, metrics, traced
from session_manager.outcomes import Decision, Message
from session_manager.ports import Notifier
from session_manager.protocol import SESSION_ID_PATTERN, error_message, normalize_session_id, parse_body
from session_manager.services import Services, build_notifier, get_services

Route = Callable[[Services, Caller, dict[str, Any]], Decision]
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _observed(handler: LambdaHandler) -> LambdaHandler:
    logged = logger.inject_lambda_context(
        traced(handler), correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
    )
    return metrics.log_metrics(logged)


def websocket_route(route: Route) -> LambdaHandler:
    """Wrap a route: parse the frame, call the domain, post every reply or the error, then
    deliver the decision's notices."""

    @functools.wraps(route)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        caller = Caller.from_event(event)
        logger.append_keys(connection=fingerprint(caller.connection_id), userId=caller.user_id)
        services, body, decision = None, {}, Decision()
        try:
            services = get_services()
            body = parse_body(event.get("body"))
            decision = route(services, caller, body)
            replies = list(decision.replies)
        except SessionServiceError as error:
            replies = [_error_reply(error, caller, body)]
        except Exception:
            logger.exception("unexpected error")
            replies = [_error_reply(InternalError(), caller, body, logged=True)]
        _reply(services.notifier if services else build_notifier(), caller, replies)
        if services and decision.notices:
            services.delivery.carry_out(decision.notices)
        return {"statusCode": 200}

    return _observed(handler)


def _reply(notifier: Notifier, caller: Caller, replies: list[Message]) -> None:
    try:
        for reply in replies:
            if not notifier.send(caller.connection_id, reply):
                logger.info("reply not delivered: connection gone")
                return
    except SessionServiceError:
        # The outcome stands (it is stored); only telling the client failed. It will see the
        # state on its next request, and API Gateway would drop an error reply the same way.
        logger.exception("reply not delivered")


def lifecycle_route(route: Callable[[Services, Caller], Decision | None]) -> LambdaHandler:
    """Wrap $connect/$disconnect: nothing can be sent to the caller, so its outcome is a
    status; notices for other connections (a speaker who went away) are still delivered."""

    @functools.wraps(route)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        caller = Caller.from_event(event)
        logger.append_keys(connection=fingerprint(caller.connection_id), userId=caller.user_id)
        try:
            services = get_services()
            decision = route(services, caller)
        except SessionServiceError as error:
            report_error(error)
            return {"statusCode": error.status}
        except Exception:
            logger.exception("unexpected error")
            report_error(InternalError(), logged=True)
            return {"statusCode": 500}
        if decision is not None and decision.notices:
            services.delivery.carry_out(decision.notices)
        return {"statusCode": 200}

    return _observed(handler)


def scheduled(job: Callable[[Services], Any]) -> LambdaHandler:
    """Wrap a scheduled job that returns a report and the notices it decided."""

    @functools.wraps(job)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        services = get_services()
        report, notices = job(services)
        delivery = services.delivery.carry_out(notices)
        return {**asdict(report), "notices": delivery.counts()}

    return _observed(handler)


def queue_consumer(consume: Callable[[Services, dict[str, Any]], Decision]) -> LambdaHandler:
    """Wrap an SQS-triggered function: each record's decision is carried out; a record that
    fails is reported in batchItemFailures, so SQS delivers it again (and only it)."""

    @functools.wraps(consume)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        services = get_services()
        failures = []
        for record in event.get("Records", []):
            try:
                services.delivery.carry_out(consume(services, json.loads(record["body"])).notices)
            except Exception:
                logger.exception("queued fan-out failed", extra={"messageId": record.get("messageId")})
                failures.append({"itemIdentifier": record.get("messageId")})
        return {"batchItemFailures": failures}

    return _observed(handler)


def _error_reply(
    error: SessionServiceError, caller: Caller, body: dict[str, Any], *, logged: bool = False
) -> dict[str, Any]:
    if error.session_id is None and isinstance(body.get("sessionId"), str):
        # Every error about a request that named a session carries it (protocol.md), including
        # errors raised far from the request, such as SERVICE_UNAVAILABLE.
        error.session_id = normalize_session_id(body["sessionId"])
    report_error(error, logged=logged)
    return error_message(error, caller.request_id, now_ms(_ERROR_CLOCK))


# Error replies may be made before the services (and their clock) exist.
_ERROR_CLOCK = SystemClock()


def report_error(error: SessionServiceError, *, logged: bool = False) -> None:
    """Log (5xx with the stack trace) and count a client-visible error by its code."""
    # The class's own message, not the instance's: the latter may quote what a user typed
    # (people type emails into the session id box).
    fields = {"errorCode": error.code, "errorMessage": type(error).default_message, "status": error.status}
    if error.field:
        fields["field"] = error.field
    if error.session_id and SESSION_ID_PATTERN.fullmatch(error.session_id):
        fields["sessionId"] = error.session_id
    if not logged:
        if error.status >= 500:
            logger.error("request failed", extra=fields, exc_info=True)
        else:
            logger.warning("request refused", extra=fields)
    metrics.add_metric(name="ConnectionErrors", unit=MetricUnit.Count, value=1)
    if isinstance(error, RateLimitExceededError):
        metrics.add_metric(name="RateLimitExceeded", unit=MetricUnit.Count, value=1)
    with single_metric(name="ConnectionErrors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="ErrorCode", value=error.code)
