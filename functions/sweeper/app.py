"""Every minute: close silent connections, end expired sessions, repair listener counts."""

from dataclasses import asdict

from session_manager import scheduled


@scheduled
def handler(services):
    return asdict(services.sweeper.sweep())
