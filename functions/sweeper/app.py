"""Every minute: close silent connections, end expired and unreclaimed sessions, tell orphaned
listeners, repair listener counts."""

from session_manager import scheduled


@scheduled
def handler(services):
    sweep = services.sweeper.sweep()
    return sweep.report, sweep.notices
