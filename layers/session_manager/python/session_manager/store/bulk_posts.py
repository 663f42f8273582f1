"""PostToConnection to many connections at once: the transport of a fan-out.

botocore is synchronous: a fan-out of 500 posts through its client spent 1.3-2.0 ms of CPU per
post in this project's measurements, GIL-bound however many threads post (docs/benchmarks.md,
"The fan-out's transport"), and that, not the network, was what a caption to a room waited for.
So a fan-out sends its posts over aiohttp on one event loop, with bounded parallelism, each
signed with SigV4 as botocore's signer signs it (store/post_signing.py; the client's endpoint,
region and credentials, its URL encoding of the connection id): the same requests the client
sends, at about a quarter of the CPU. Single posts (a caller's own reply, the sweeper's
notices) still go through the client.

What is hand-written here, and why: the retries. A post that got no answer (no connection, a
read timeout) is sent again at once, up to 3 attempts, as botocore would; a post that was
answered with an error gets one attempt a round: NoticeDelivery's rounds
(session_manager/delivery.py) post again everything that failed, after a pause with full
jitter, so a throttled burst backs off as a whole instead of post by post. A refusal that no
retry can fix (403: the function may not call the API; 413; 400) is logged as an error with
its status and error type, so a missing permission is loud, never a silent shortfall of
listeners.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.utils import percent_encode

from session_manager.store.post_signing import PostSigner

logger = Logger(child=True)

# API Gateway's name for the @connections API when it signs a request (botocore's
# apigatewaymanagementapi model: signingName).
SIGNING_NAME = "execute-api"
DELIVERED, GONE, FAILED = "delivered", "gone", "failed"
# A post with no answer at all (no connection, or none within the read timeout) is sent again at
# once, after a short jittered pause, as botocore's standard mode retries a connection error or a
# read timeout: a busy moment must not cost a listener a line (the answer may have been lost
# after the post landed: clients drop a repeated seq). An answer, any answer, is for the rounds.
UNANSWERED_ATTEMPTS = 3
UNANSWERED_PAUSE_SECONDS = 0.25
# Worth another round: the account-wide throttle, API Gateway's own trouble.
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def load_transport() -> None:
    """Import the fan-out's transport now, in a function's init, not at its first fan-out.

    For the caption functions (functions/send_caption/app.py, functions/caption_fan_out/app.py):
    importing aiohttp took 0.25-0.4 s here, and a fresh environment's first caption waiting that
    long lets the next caption, fanned out by a warm environment, overtake it by more than a
    listener's reorder window (decision 77). In init it is paid once, before any request (and
    SnapStart would snapshot it); other functions, which rarely fan out, keep their cold start."""
    import aiohttp  # noqa: F401
    import yarl  # noqa: F401


@dataclass(frozen=True)
class PostAnswer:
    outcome: str  # DELIVERED, GONE or FAILED
    status: int | None = None  # the HTTP status; None when no answer came (timeout, connection)
    error_type: str = ""

    @property
    def refused(self) -> bool:
        """A failure that another attempt cannot fix."""
        return self.outcome == FAILED and self.status is not None and self.status not in _RETRYABLE_STATUSES


class BulkPoster:
    """Posts (connection id, body) pairs to the @connections API of ``client`` (a boto3
    ``apigatewaymanagementapi`` client: its endpoint and region), at most ``concurrency`` at a
    time. Each fan-out runs on an event loop and an aiohttp session of its own, closed when it
    ends: no connection outlives the fan-out that opened it, so none goes stale between
    captions (a post on a connection the API closed while idle would fail and wait a retry
    round), and nothing is left for a SnapStart snapshot or another thread to inherit."""

    def __init__(self, client, *, concurrency: int, connect_timeout: float, read_timeout: float) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._endpoint = client.meta.endpoint_url.rstrip("/")
        self._region = client.meta.region_name
        self._concurrency = concurrency
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._credentials = None

    def url(self, connection_id: str) -> str:
        # botocore's own encoding of a URI label (serialize.py: percent_encode), so the request,
        # and the path its signature covers, are the client's.
        return f"{self._endpoint}/@connections/{percent_encode(connection_id)}"

    def post_all(self, posts: Sequence[tuple[str, bytes]]) -> list[PostAnswer]:
        """One attempt per post; the answers in the order of ``posts``."""
        if not posts:
            return []
        signer = PostSigner(self._frozen_credentials(), SIGNING_NAME, self._region, self._endpoint)
        answers = asyncio.run(self._post_all(signer, posts))
        refused = Counter(f"{answer.status} {answer.error_type}".strip() for answer in answers if answer.refused)
        if refused:
            logger.error("posts refused by the @connections API", extra={"refused": dict(refused)})
        return answers

    def _frozen_credentials(self):
        # Read at the first fan-out, not at import: SnapStart restores environments whose
        # credentials differ from the snapshot's. Refreshable credentials refresh themselves here.
        if self._credentials is None:
            self._credentials = boto3.Session().get_credentials()
            if self._credentials is None:
                raise RuntimeError("no AWS credentials to sign PostToConnection with")
        return self._credentials.get_frozen_credentials()

    async def _post_all(self, signer: PostSigner, posts: Sequence[tuple[str, bytes]]) -> list[PostAnswer]:
        import aiohttp  # at the first fan-out, or at init where load_transport() ran

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=min(self._concurrency, len(posts))),
            timeout=aiohttp.ClientTimeout(sock_connect=self._connect_timeout, sock_read=self._read_timeout),
            # Nothing the API answers needs cookies or decompressing.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        ) as session:
            gate = asyncio.Semaphore(self._concurrency)

            async def post(connection_id: str, body: bytes) -> PostAnswer:
                async with gate:
                    # Signed when its turn comes: signing every post before the first is sent
                    # would hold the whole fan-out back by the time of all the signatures.
                    url = self.url(connection_id)
                    headers = {"Host": signer.host, **signer.headers(url, body)}
                    for attempt in range(1, UNANSWERED_ATTEMPTS + 1):
                        answer = await _send(session, url, body, headers)
                        if answer.status is not None or attempt == UNANSWERED_ATTEMPTS:
                            return answer
                        await asyncio.sleep(random.uniform(0, UNANSWERED_PAUSE_SECONDS * attempt))
                    return answer

            return list(await asyncio.gather(*(post(connection_id, body) for connection_id, body in posts)))


async def _send(session, url: str, body: bytes, headers: dict[str, Any]) -> PostAnswer:
    import aiohttp
    from yarl import URL

    try:
        # encoded=True: the path is already botocore's encoding; quoting it again would post to
        # another connection id than the one signed.
        async with session.post(URL(url, encoded=True), data=body, headers=headers) as response:
            await response.read()
            status = response.status
            error_type = response.headers.get("x-amzn-ErrorType", "").split(":")[0]
    except (aiohttp.ClientError, TimeoutError):
        return PostAnswer(FAILED)
    if 200 <= status < 300:
        return PostAnswer(DELIVERED, status)
    if status == 410:
        return PostAnswer(GONE, status, error_type)
    return PostAnswer(FAILED, status, error_type)
