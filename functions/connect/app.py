"""$connect: the per-IP connection-attempt limit, then the connection is recorded."""

from session_manager import lifecycle_route, snapstart

snapstart.enable()  # SnapStart hooks: nothing unique may come from the snapshot


@lifecycle_route
def handler(services, caller):
    services.connections.connect(caller)
