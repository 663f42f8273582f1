"""Carries out the domain's notices: posts each message to its connections in parallel, bounded,
claiming each connection first where the notice says so. Used by ``handler.py`` (after the
caller's replies) and by the scheduled sweep.

A post that still fails after the client's own retries (botocore's standard mode: 3 attempts with
exponential backoff and jitter, store/clients.py) is posted again in a later round, after a pause
with full jitter, while the fan-out's retry budget lasts: a burst of PostToConnection throttling in
the middle of a fan-out must not leave a listener that was claimed untold. The budget keeps the
whole fan-out inside the shortest timeout of the functions that deliver notices (template.yaml).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from session_manager.errors import ServiceUnavailableError
from session_manager.observability import metrics
from session_manager.outcomes import Delivery, Notice
from session_manager.ports import ConnectionStore, Notifier

logger = Logger(child=True)

# No retry round starts after this long: a last round's posts (3 attempts, at most 1 + 2 s of
# botocore backoff) then end well inside sendCaption's 20 s and endSession's 29 s.
RETRY_BUDGET_SECONDS = 6.0
RETRY_PAUSE_SECONDS = 0.25  # doubled each round, at most RETRY_PAUSE_CAP_SECONDS, times a random share
RETRY_PAUSE_CAP_SECONDS = 2.0


@dataclass
class _Post:
    notice: Notice
    connection_id: str
    claimed: bool = False  # this process detached it from its session, so it alone tells it


class NoticeDelivery:
    def __init__(
        self,
        notifier: Notifier,
        connections: ConnectionStore,
        *,
        concurrency: int = 16,
        clean_up: Callable[[str], object] | None = None,
        retry_budget_seconds: float = RETRY_BUDGET_SECONDS,
        sleep: Callable[[float], object] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.connections = connections
        self.concurrency = concurrency
        self.clean_up = clean_up
        self.retry_budget_seconds = retry_budget_seconds
        self.sleep = sleep
        self.jitter = jitter
        self.clock = clock

    def carry_out(self, notices: Iterable[Notice]) -> Delivery:
        """Best effort: a failure to reach one connection never stops the others, and what was
        not delivered is counted (the sweeper tells orphans a broadcast missed)."""
        notices = list(notices)
        posts = [_Post(notice, connection_id) for notice in notices for connection_id in notice.connection_ids]
        delivery = Delivery()
        if not posts:
            return delivery
        started = self.clock()
        rounds, reposted = 0, 0
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(posts))) as pool:
            while posts:
                outcomes = list(pool.map(self._deliver, posts))
                for outcome in outcomes:
                    if outcome != "failed":
                        setattr(delivery, outcome, getattr(delivery, outcome) + 1)
                posts = [post for post, outcome in zip(posts, outcomes, strict=True) if outcome == "failed"]
                pause = min(RETRY_PAUSE_CAP_SECONDS, RETRY_PAUSE_SECONDS * 2**rounds) * self.jitter()
                if posts and self.clock() - started + pause < self.retry_budget_seconds:
                    self.sleep(pause)
                    rounds += 1
                    reposted += len(posts)
                    continue
                delivery.failed += len(posts)
                break
        untold = sum(1 for post in posts if post.claimed)
        metrics.add_metric(name="FanOutDuration", unit=MetricUnit.Milliseconds, value=(self.clock() - started) * 1000)
        if delivery.gone:
            metrics.add_metric(name="GoneConnections", unit=MetricUnit.Count, value=delivery.gone)
        kinds = sorted({notice.message.get("type", "") for notice in notices})
        retries = {"retryRounds": rounds, "reposted": reposted}
        if delivery.failed:
            # Claimed and untold: nobody will tell them. Failed before the claim: a listener of an
            # ended session is still attached, and the sweeper tells it as an orphan.
            logger.warning(
                "notices incomplete",
                extra={"notices": kinds, **delivery.counts(), **retries, "claimedUntold": untold},
            )
        else:
            logger.info("notices delivered", extra={"notices": kinds, **delivery.counts(), **retries})
        return delivery

    def _deliver(self, post: _Post) -> str:
        notice, connection_id = post.notice, post.connection_id
        try:
            if notice.claim_from_session and not post.claimed:
                if not self.connections.detach_from_session(connection_id, notice.claim_from_session):
                    return "skipped"  # someone else claimed it, and tells it
                post.claimed = True
            if self.notifier.send(connection_id, notice.message):
                return "delivered"
            if notice.clean_up_gone and self.clean_up is not None:
                self.clean_up(connection_id)  # conditional all the way: a racing $disconnect is fine
            return "gone"
        except ServiceUnavailableError:
            return "failed"
