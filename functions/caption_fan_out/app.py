"""CaptionFanOutQueue: one page of a big session's caption fan-out per record."""

from session_manager import queue_consumer
from session_manager.outcomes import Decision, Notice


@queue_consumer
def handler(services, page):
    return Decision(notices=(Notice(tuple(page["connectionIds"]), page["message"], clean_up_gone=True),))
