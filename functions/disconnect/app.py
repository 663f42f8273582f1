"""$disconnect: a listener's close frees its seat; a current speaker's close starts the
reconnect grace (or ends the session when there is none)."""

from session_manager import lifecycle_route


@lifecycle_route
def handler(services, caller):
    return services.connections.disconnect(caller.connection_id).decision
