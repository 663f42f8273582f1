"""An asyncio client for the live-translation session service (docs/protocol.md).

`ListenerClient` and `SpeakerClient` keep one live WebSocket each, refresh it before the 2-hour
limit without a gap, reconnect after a drop, and report what happens as events carrying plain
sentences (sentences.py). The command line: `python -m live_session_client listen|speak ...`.
"""

from live_session_client.backoff import ReconnectPolicy
from live_session_client.captions import Caption, CaptionSequencer
from live_session_client.errors import (
    ClientStoppedError,
    ConnectFailedError,
    LiveSessionError,
    NoAnswerError,
    RequestRefusedError,
)
from live_session_client.events import CaptionReceived, ClientEvent, ClientState, Notice, NoticeKind, StateChanged
from live_session_client.link import LinkTimings
from live_session_client.listener import ListenerClient
from live_session_client.sentences import ERROR_SENTENCES, explain_error
from live_session_client.session_client import ClientOptions
from live_session_client.speaker import SpeakerClient

__all__ = [
    "ERROR_SENTENCES",
    "Caption",
    "CaptionReceived",
    "CaptionSequencer",
    "ClientEvent",
    "ClientOptions",
    "ClientState",
    "ClientStoppedError",
    "ConnectFailedError",
    "LinkTimings",
    "ListenerClient",
    "LiveSessionError",
    "NoAnswerError",
    "Notice",
    "NoticeKind",
    "ReconnectPolicy",
    "RequestRefusedError",
    "SpeakerClient",
    "StateChanged",
    "explain_error",
]
