"""The fan-out's signer (session_manager/store/post_signing.py) signs every post exactly as
botocore's SigV4Auth.add_auth does at the same instant: the same headers, byte for byte, for any
connection id, body, endpoint and credentials (with and without a session token)."""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from hypothesis import given
from hypothesis import strategies as st

from session_manager.store import post_signing
from session_manager.store.post_signing import PostSigner

INSTANT = datetime.datetime(2026, 12, 7, 23, 59, 58)
ENDPOINTS = [
    "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
    "http://127.0.0.1:8081/dev",
    "https://ABC123.execute-api.us-east-1.amazonaws.com:443/dev",
    "http://localhost:9000/a.b/../stage",
]


def botocores_headers(credentials, region: str, url: str, body: bytes) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return {name: value for name, value in request.headers.items() if name.lower() != "host"}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: INSTANT)
    monkeypatch.setattr(post_signing, "get_current_datetime", lambda *_, **__: INSTANT)


@given(
    connection_ids=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5),
    body=st.binary(max_size=300),
    endpoint=st.sampled_from(ENDPOINTS),
    token=st.sampled_from([None, "FwoGZXIvYXdzEJr//////////wEaDOl+token/with=odd&chars"]),
    region=st.sampled_from(["us-east-1", "eu-west-1"]),
)
def test_each_post_is_signed_as_botocore_signs_it(connection_ids, body, endpoint, token, region):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token).get_frozen_credentials()
    signer = PostSigner(credentials, "execute-api", region, endpoint)
    for connection_id in connection_ids:
        url = f"{endpoint}/@connections/{percent_encode(connection_id)}"
        assert signer.headers(url, body) == botocores_headers(credentials, region, url, body)


def test_a_different_body_or_path_gets_a_different_signature():
    credentials = Credentials("AKIDEXAMPLE", "secret", None).get_frozen_credentials()
    signer = PostSigner(credentials, "execute-api", "us-east-1", ENDPOINTS[0])
    url = f"{ENDPOINTS[0]}/@connections/abc%3D"
    signatures = {
        signer.headers(url, b"one")["Authorization"],
        signer.headers(url, b"two")["Authorization"],
        signer.headers(url.replace("abc", "abd"), b"one")["Authorization"],
    }
    assert len(signatures) == 3
    assert signer.headers(url, b"one") == botocores_headers(credentials, "us-east-1", url, b"one")
