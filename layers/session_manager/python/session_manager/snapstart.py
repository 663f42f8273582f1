"""SnapStart: what execution environments restored from one snapshot must not share.

Lambda runs a SnapStart function's init once, snapshots the memory, and resumes every new
execution environment from that snapshot (template.yaml: authorizer, connect, createSession,
joinSession, heartbeat). Whatever init left in memory is therefore identical in all of them:

- session ids come from `secrets` (ids.py), which reads the operating system's entropy on every
  call, so they differ per environment without help;
- `random` would replay the same sequence everywhere: the retry jitter of store/dynamodb.py
  would synchronise every restored environment's retries, so it is reseeded;
- boto3 clients hold pooled sockets that did not survive the snapshot, and the token verifier's
  key cache ages by a monotonic clock that a restore makes meaningless: both are dropped and
  rebuilt on the first request (the services that hold them go with them).

Settings and word lists are read before the snapshot: a setting config.py rejects then fails
the version's publication, so the deploy stops before any traffic reaches it.

The hooks come from `snapshot_restore_py`, which Lambda's Python runtime provides; elsewhere
(tests, the local stack) it is absent and `enable()` registers nothing.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

from session_manager import services
from session_manager.config import get_settings
from session_manager.ids import SessionIdGenerator
from session_manager.observability import logger

try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # not on Lambda: nothing ever snapshots this process
    register_after_restore = register_before_snapshot = None

# The token verifier's module, imported by the functions that verify tokens (the authorizer)
# only: importing it here would load PyJWT and cryptography into every SnapStart function.
AUTH_MODULE = "session_manager.auth"


def per_environment_caches() -> tuple[Callable[..., object], ...]:
    """Everything cached per execution environment that must be rebuilt after a restore."""
    auth = sys.modules.get(AUTH_MODULE)
    verifier = (auth.get_token_verifier,) if auth is not None else ()
    return (*services.PER_ENVIRONMENT_CLIENTS, services.get_services, *verifier)


def prepare_snapshot() -> None:
    """Do once, before the snapshot, the reading every cold start would repeat."""
    get_settings()
    SessionIdGenerator.from_wordlists()


def refresh_after_restore() -> None:
    """Runs in each restored environment before its first request."""
    random.seed()  # from os.urandom: each environment its own sequence
    for cached in per_environment_caches():
        cached.cache_clear()
    logger.debug("restored from a SnapStart snapshot; clients and caches dropped")


def enable() -> bool:
    """Register the hooks with the Lambda runtime; False where there is no runtime to do so."""
    if register_before_snapshot is None or register_after_restore is None:
        return False
    register_before_snapshot(prepare_snapshot)
    register_after_restore(refresh_after_restore)
    return True
