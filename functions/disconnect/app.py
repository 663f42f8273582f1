"""$disconnect: a current speaker's close ends the session; a listener's frees its seat."""

from session_manager import lifecycle_route


@lifecycle_route
def handler(services, caller):
    services.connections.disconnect(caller.connection_id)
