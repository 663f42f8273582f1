"""$connect REQUEST authorizer: verified speakers and anonymous listeners get in."""

from session_manager import snapstart
from session_manager.auth import authorize_connect, get_token_verifier
from session_manager.observability import logger

snapstart.enable()  # SnapStart hooks: nothing unique may come from the snapshot


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    return authorize_connect(event, get_token_verifier())
