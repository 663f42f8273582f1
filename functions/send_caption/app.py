"""sendCaption: the speaker's line, numbered, translated once per language in use and fanned out."""

from session_manager import websocket_route
from session_manager.protocol import parse_send_caption
from session_manager.store.bulk_posts import load_transport

load_transport()  # init, not the first caption: an overtaken line comes late


@websocket_route
def handler(services, caller, body):
    return services.captions.send_caption(caller, parse_send_caption(body))
