"""Carries out the domain's notices: posts each message to its connections in parallel, bounded,
claiming each connection first where the notice says so. Used by ``handler.py`` (after the
caller's replies) and by the scheduled sweep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from session_manager.errors import ServiceUnavailableError
from session_manager.observability import metrics
from session_manager.outcomes import Delivery, Notice
from session_manager.ports import ConnectionStore, Notifier

logger = Logger(child=True)


class NoticeDelivery:
    def __init__(
        self,
        notifier: Notifier,
        connections: ConnectionStore,
        *,
        concurrency: int = 16,
        clean_up: Callable[[str], object] | None = None,
    ) -> None:
        self.notifier = notifier
        self.connections = connections
        self.concurrency = concurrency
        self.clean_up = clean_up

    def carry_out(self, notices: Iterable[Notice]) -> Delivery:
        """Best effort: a failure to reach one connection never stops the others, and what was
        not delivered is counted (the sweeper tells orphans a broadcast missed)."""
        notices = list(notices)
        work = [(notice, connection_id) for notice in notices for connection_id in notice.connection_ids]
        delivery = Delivery()
        if not work:
            return delivery
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(work))) as pool:
            for outcome in pool.map(lambda job: self._deliver(*job), work):
                setattr(delivery, outcome, getattr(delivery, outcome) + 1)
        metrics.add_metric(
            name="FanOutDuration", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
        if delivery.gone:
            metrics.add_metric(name="GoneConnections", unit=MetricUnit.Count, value=delivery.gone)
        kinds = sorted({notice.message.get("type", "") for notice in notices})
        if delivery.failed:
            logger.warning("notices incomplete", extra={"notices": kinds, **delivery.counts()})
        else:
            logger.info("notices delivered", extra={"notices": kinds, **delivery.counts()})
        return delivery

    def _deliver(self, notice: Notice, connection_id: str) -> str:
        try:
            if notice.claim_from_session and not self.connections.detach_from_session(
                connection_id, notice.claim_from_session
            ):
                return "skipped"  # someone else claimed it, and tells it
            if self.notifier.send(connection_id, notice.message):
                return "delivered"
            if notice.clean_up_gone and self.clean_up is not None:
                self.clean_up(connection_id)  # conditional all the way: a racing $disconnect is fine
            return "gone"
        except ServiceUnavailableError:
            return "failed"
