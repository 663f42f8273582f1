"""SigV4 for a fan-out's PostToConnection requests, with what they share computed once.

Hand-written around botocore's signer, and why: botocore's ``SigV4Auth.add_auth`` rebuilds for
every request what is the same for every post of a fan-out (the host, the canonical headers, the
credential scope: urlsplit, header maps, strftime), about 0.19 ms of CPU a request, a third of a
post's CPU in a fan-out (docs/benchmarks.md, "The fan-out's transport"). Only the connection id's
path and the body differ between posts. So the shared parts are asked of botocore's own
``SigV4Auth`` once per fan-out (its ``headers_to_sign``, ``canonical_headers``,
``signed_headers``, ``credential_scope``, ``scope``), and per post only the canonical request's
path and payload hash change, then botocore's ``signature`` signs. The path is normalised and
encoded as botocore does it (``normalize_url_path``, then quoted again: SigV4's double encoding
for every service but S3). tests/unit/test_post_signing.py holds every header this produces to
``SigV4Auth.add_auth``'s at the same instant, for any connection id, body and credentials.
"""

from __future__ import annotations

from hashlib import sha256
from urllib.parse import quote, urlsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import get_current_datetime
from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"


class PostSigner:
    """Signs POSTs to URLs under ``endpoint`` with ``credentials`` (frozen) for ``service`` in
    ``region``, all at the instant the signer was made: make one per fan-out round (a signature
    is good for 15 minutes; a round lasts seconds)."""

    def __init__(self, credentials, service: str, region: str, endpoint: str) -> None:
        self._auth = SigV4Auth(credentials, service, region)
        template = AWSRequest(method="POST", url=endpoint)
        self.timestamp = get_current_datetime().strftime(SIGV4_TIMESTAMP)
        template.context["timestamp"] = self.timestamp
        template.headers["X-Amz-Date"] = self.timestamp
        if credentials.token:
            template.headers["X-Amz-Security-Token"] = credentials.token
        to_sign = self._auth.headers_to_sign(template)  # adds the endpoint's host, as botocore does
        # Sent as signed (lowercase, no default port), whatever the HTTP client would derive.
        self.host = to_sign["host"]
        # As botocore's canonical_request joins it: the headers, an empty line, the signed names.
        self._headers_block = self._auth.canonical_headers(to_sign) + "\n\n"
        self._signed_headers = self._auth.signed_headers(to_sign)
        self._scope = self._auth.credential_scope(template)
        self._template = template
        credential = self._auth.scope(template)
        self._authorization = f"{ALGORITHM} Credential={credential}, SignedHeaders={self._signed_headers}"
        self._headers = {"X-Amz-Date": self.timestamp}
        if credentials.token:
            self._headers["X-Amz-Security-Token"] = credentials.token
        self._payload_hashes: dict[bytes, str] = {}

    def headers(self, url: str, body: bytes) -> dict[str, str]:
        """The headers that sign a POST of ``body`` to ``url`` (already percent-encoded, as
        botocore's serializer encodes a URI label)."""
        payload_hash = self._payload_hashes.get(body)
        if payload_hash is None:  # the same message goes to every listener of a language
            payload_hash = self._payload_hashes[body] = sha256(body).hexdigest()
        path = quote(normalize_url_path(urlsplit(url).path), safe="/~")
        canonical = f"POST\n{path}\n\n{self._headers_block}{self._signed_headers}\n{payload_hash}"
        string_to_sign = f"{ALGORITHM}\n{self.timestamp}\n{self._scope}\n{sha256(canonical.encode()).hexdigest()}"
        signature = self._auth.signature(string_to_sign, self._template)
        return {**self._headers, "Authorization": f"{self._authorization}, Signature={signature}"}
