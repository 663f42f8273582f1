"""The fan-out's own rounds (session_manager/delivery.py) for posts that fail (one attempt per
post per round, store/bulk_posts.py): a claimed listener is posted again, never claimed twice, and told once;
past the retry budget the outcome is counted and logged. In process, with a scripted notifier:
what happens over the wire is test_degradation.py's."""

from __future__ import annotations

import threading
from collections import Counter

from session_manager.delivery import CLAIM_BATCH, RETRY_PAUSE_CAP_SECONDS, NoticeDelivery
from session_manager.errors import ServiceUnavailableError
from session_manager.outcomes import Notice


class ScriptedNotifier:
    """Refuses each connection's first `failures[connection_id]` posts (as a throttled post is
    refused), then takes them."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.told: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def send(self, connection_id: str, message: dict) -> bool:
        with self._lock:
            self.attempts[connection_id] += 1
            if self.failures.get(connection_id, 0) > 0:
                self.failures[connection_id] -= 1
                raise ServiceUnavailableError()
            self.told[connection_id] += 1
        return True

    def send_all(self, posts) -> list[str]:
        outcomes = []
        for connection_id, message in posts:
            try:
                outcomes.append("delivered" if self.send(connection_id, message) else "gone")
            except ServiceUnavailableError:
                outcomes.append("failed")
        return outcomes

    def close(self, connection_id: str) -> bool:
        return True


class ClaimingConnections:
    """detach_from_session succeeds once per connection, as the conditional write does."""

    def __init__(self) -> None:
        self.claims: Counter[str] = Counter()
        self._lock = threading.Lock()

    def detach_from_session(self, connection_id: str, session_id: str) -> bool:
        with self._lock:
            self.claims[connection_id] += 1
            return self.claims[connection_id] == 1


class PausedClock:
    """Time that passes only in the delivery's pauses."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def _ended(listeners: list[str]) -> Notice:
    return Notice(tuple(listeners), {"type": "sessionEnded"}, claim_from_session="bountiful-nest-167")


def test_posts_refused_in_the_first_round_are_posted_again_and_each_listener_is_told_once():
    listeners = [f"c{n}" for n in range(12)]
    notifier = ScriptedNotifier({"c0": 2, "c1": 1, "c5": 3})
    connections = ClaimingConnections()
    clock = PausedClock()
    delivery = NoticeDelivery(notifier, connections, sleep=clock.sleep, jitter=lambda: 1.0, clock=clock)

    outcome = delivery.carry_out([_ended(listeners)])

    assert outcome.counts() == {"delivered": 12, "gone": 0, "skipped": 0, "failed": 0}
    assert notifier.told == Counter({listener: 1 for listener in listeners})
    assert connections.claims == Counter({listener: 1 for listener in listeners})  # claimed once, kept
    assert notifier.attempts["c5"] == 4
    # backoff: doubling pauses (here with the jitter's largest share), capped
    assert clock.pauses == [0.25, 0.5, 1.0]


def test_past_the_retry_budget_what_was_not_told_is_counted_failed_and_logged(caplog):
    notifier = ScriptedNotifier({"c1": 1_000})
    connections = ClaimingConnections()
    clock = PausedClock()
    delivery = NoticeDelivery(
        notifier, connections, sleep=clock.sleep, jitter=lambda: 0.5, clock=clock, retry_budget_seconds=3.0
    )

    with caplog.at_level("WARNING"):
        outcome = delivery.carry_out([_ended(["c0", "c1"])])

    assert outcome.counts() == {"delivered": 1, "gone": 0, "skipped": 0, "failed": 1}
    assert notifier.told == Counter({"c0": 1})
    # half of each doubling pause, at most half the cap; no round once the next pause would pass 3 s
    assert clock.pauses == [0.125, 0.25, 0.5, 1.0, RETRY_PAUSE_CAP_SECONDS / 2]
    (warning,) = [record for record in caplog.records if record.getMessage() == "notices incomplete"]
    assert (warning.failed, warning.claimedUntold, warning.retryRounds) == (1, 1, 5)


def test_a_batch_of_claimed_listeners_is_told_while_the_next_batch_is_claimed():
    listeners = [f"c{n}" for n in range(150)]
    connections = ClaimingConnections()
    notifier = ScriptedNotifier({})
    second_batch_claimed = threading.Event()
    claim = connections.detach_from_session

    def claiming(connection_id: str, session_id: str) -> bool:
        claimed = claim(connection_id, session_id)
        if len(connections.claims) >= 2 * CLAIM_BATCH:
            second_batch_claimed.set()
        return claimed

    connections.detach_from_session = claiming
    sends, send_all = [], notifier.send_all

    def sending(posts):
        if not sends:
            # The first batch's posts are out while the second batch is being claimed: a fan-out
            # that claimed everyone first, or waited for each batch's posts, never gets here.
            assert second_batch_claimed.wait(10)
        sends.append(len(posts))
        return send_all(posts)

    notifier.send_all = sending

    outcome = NoticeDelivery(notifier, connections).carry_out([_ended(listeners)])

    assert outcome.counts() == {"delivered": 150, "gone": 0, "skipped": 0, "failed": 0}
    assert sends == [CLAIM_BATCH, CLAIM_BATCH, 150 - 2 * CLAIM_BATCH]
    assert notifier.told == Counter({listener: 1 for listener in listeners})
    assert connections.claims == Counter({listener: 1 for listener in listeners})
