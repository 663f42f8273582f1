"""Carries out the domain's notices: posts each message to its connections in parallel, bounded,
claiming each connection first where the notice says so. Used by ``handler.py`` (after the
caller's replies) and by the scheduled sweep.

Each round claims what must be claimed (conditional writes, in parallel on a thread pool), then
hands every post that may be told to the notifier's fan-out (``Notifier.send_all``: one attempt
each, on one event loop, store/bulk_posts.py), then cleans up the connections that answered 410.
A post that failed is posted again in a later round, after a pause with full jitter, while the
fan-out's retry budget lasts: a burst of PostToConnection throttling in the middle of a fan-out
must not leave a listener that was claimed untold, and the rounds back off the whole burst at
once. The budget keeps the whole fan-out inside the shortest timeout of the functions that
deliver notices (template.yaml).
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

# No retry round starts after this long: a last round's posts (one attempt each, at most 1 s to
# connect and 3 s to answer) then end well inside sendCaption's 20 s and endSession's 29 s.
RETRY_BUDGET_SECONDS = 6.0
RETRY_PAUSE_SECONDS = 0.25  # doubled each round, at most RETRY_PAUSE_CAP_SECONDS, times a random share
RETRY_PAUSE_CAP_SECONDS = 2.0
# Connections claimed (sessionEnded's conditional detaches) before their posts go out: the posts
# of one batch are sent while the next is claimed, so the first listeners do not wait for all.
CLAIM_BATCH = 64


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
                outcomes = self._round(pool, posts)
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

    def _round(self, pool: ThreadPoolExecutor, posts: list[_Post]) -> list[str]:
        """One attempt at each post: the claims (conditional writes) in parallel on the pool, a
        batch at a time, each batch's claimed posts handed to the notifier's fan-out while the
        next batch is claimed, then the clean-ups of the gone. Each post's outcome: delivered,
        gone, skipped or failed (to be tried again)."""
        outcomes: list[str | None] = [None] * len(posts)
        claiming = [index for index, post in enumerate(posts) if post.notice.claim_from_session and not post.claimed]
        claimed_already = set(claiming)
        batches = [[index for index in range(len(posts)) if index not in claimed_already]]
        batches += [claiming[start : start + CLAIM_BATCH] for start in range(0, len(claiming), CLAIM_BATCH)]
        sends = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fan-out") as sender:
            for number, batch in enumerate(batches):
                if number:  # a batch to claim first
                    for index, claimed in zip(batch, pool.map(self._claim, [posts[i] for i in batch]), strict=True):
                        if claimed != "claimed":
                            outcomes[index] = claimed
                telling = [index for index in batch if outcomes[index] is None]
                if telling:
                    told = [(posts[i].connection_id, posts[i].notice.message) for i in telling]
                    sends.append((telling, sender.submit(self.notifier.send_all, told)))
            for telling, answers in sends:
                for index, answer in zip(telling, answers.result(), strict=True):
                    outcomes[index] = answer
        cleaning = [
            index
            for index, outcome in enumerate(outcomes)
            if outcome == "gone" and posts[index].notice.clean_up_gone and self.clean_up is not None
        ]
        for index, cleaned in zip(cleaning, pool.map(self._clean_up, [posts[i] for i in cleaning]), strict=True):
            outcomes[index] = cleaned
        return [outcome or "failed" for outcome in outcomes]

    def _claim(self, post: _Post) -> str:
        try:
            if not self.connections.detach_from_session(post.connection_id, post.notice.claim_from_session):
                return "skipped"  # someone else claimed it, and tells it
        except ServiceUnavailableError:
            return "failed"
        post.claimed = True
        return "claimed"

    def _clean_up(self, post: _Post) -> str:
        try:
            self.clean_up(post.connection_id)  # conditional all the way: a racing $disconnect is fine
        except ServiceUnavailableError:
            return "failed"
        return "gone"
