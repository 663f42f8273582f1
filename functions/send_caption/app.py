"""sendCaption: the speaker's line, numbered, translated once per language in use and fanned out."""

from session_manager import websocket_route
from session_manager.protocol import parse_send_caption


@websocket_route
def handler(services, caller, body):
    return services.captions.send_caption(caller, parse_send_caption(body))
