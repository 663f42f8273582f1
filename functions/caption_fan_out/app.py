"""CaptionFanOutQueue: one page of a big session's caption fan-out per record."""

from session_manager import queue_consumer
from session_manager.outcomes import Decision, Notice
from session_manager.store.bulk_posts import load_transport

load_transport()  # init, not the first caption: an overtaken line comes late


@queue_consumer
def handler(services, page):
    return Decision(notices=(Notice(tuple(page["connectionIds"]), page["message"], clean_up_gone=True),))
