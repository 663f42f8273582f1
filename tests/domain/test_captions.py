"""Live captions: numbered once, translated once per language in use, each listener gets its
language's lines in order, and a listener who dropped resumes without a gap."""

from __future__ import annotations

import pytest

from session_manager.errors import (
    ForbiddenError,
    InvalidParametersError,
    RateLimitExceededError,
    SessionNotFoundError,
)
from session_manager.protocol import JoinSessionRequest, RefreshConnectionRequest, Role, parse_send_caption
from tests.domain.conftest import build_domain


def captions_to(domain, caller) -> list[dict]:
    return [m for m in domain.notifier.messages_to(caller.connection_id) if m["type"] == "caption"]


def test_each_listener_gets_its_languages_lines_in_order_translated_once_per_language(domain):
    speaker, session_id = domain.create(source_language="en")
    english, spanish, french = (
        domain.join(session_id, "en"),
        domain.join(session_id, "es"),
        domain.join(session_id, "fr"),
    )
    second_spanish = domain.join(session_id, "es")

    accepted = [domain.caption(speaker, text).first for text in ("In the beginning", "was the Word")]

    assert [(a["type"], a["seq"]) for a in accepted] == [("captionAccepted", 1), ("captionAccepted", 2)]
    assert [c["text"] for c in captions_to(domain, english)] == ["In the beginning", "was the Word"]
    assert [c["text"] for c in captions_to(domain, spanish)] == ["[es] In the beginning", "[es] was the Word"]
    assert [c["text"] for c in captions_to(domain, second_spanish)] == ["[es] In the beginning", "[es] was the Word"]
    assert [(c["seq"], c["language"]) for c in captions_to(domain, french)] == [(1, "fr"), (2, "fr")]
    # one Translate call per caption, for exactly the languages in use other than the source
    assert [sorted(targets) for _, _, targets in domain.translator.calls] == [["es", "fr"], ["es", "fr"]]
    line = captions_to(domain, french)[0]
    assert {"sessionId", "seq", "lineId", "language", "text", "final", "timestamp"} <= set(line)
    assert line["final"] is True and line["lineId"] == "line-1"


def test_a_line_still_being_spoken_reaches_source_language_listeners_only_untranslated(domain):
    speaker, session_id = domain.create(source_language="en")
    english, spanish = domain.join(session_id, "en"), domain.join(session_id, "es")

    domain.caption(speaker, "In the beg", final=False, lineId="l7")
    domain.caption(speaker, "In the beginning", final=True, lineId="l7")

    assert [(c["text"], c["final"], c["lineId"]) for c in captions_to(domain, english)] == [
        ("In the beg", False, "l7"),
        ("In the beginning", True, "l7"),
    ]
    assert [c["text"] for c in captions_to(domain, spanish)] == ["[es] In the beginning"]
    assert len(domain.translator.calls) == 1
    assert [line.text for line in domain.captions.since(session_id, "en", 0, 0)] == ["In the beginning"]


def test_a_language_that_fails_to_translate_gets_the_line_marked_untranslated_and_holds_no_one_back(domain):
    speaker, session_id = domain.create(source_language="en")
    spanish, german = domain.join(session_id, "es"), domain.join(session_id, "de")
    domain.translator.failing.add("de")

    domain.caption(speaker, "Grace and peace")

    assert captions_to(domain, spanish)[0]["text"] == "[es] Grace and peace"
    (line,) = captions_to(domain, german)
    assert (line["text"], line["untranslated"]) == ("Grace and peace", True)


def test_captions_per_second_are_limited_per_session():
    domain = build_domain(captions_per_second=2)
    speaker, session_id = domain.create()
    domain.caption(speaker, "one")
    domain.caption(speaker, "two")

    with pytest.raises(RateLimitExceededError) as raised:
        domain.caption(speaker, "three")

    assert raised.value.retry_after == 1 and raised.value.session_id == session_id
    domain.clock.advance(1)
    assert domain.caption(speaker, "three").first["seq"] == 3


def test_only_the_current_speaker_may_send_captions(domain):
    speaker, session_id = domain.create()
    listener = domain.join(session_id)
    with pytest.raises(ForbiddenError):
        domain.caption(listener, "hello")
    anonymous = domain.connect()
    with pytest.raises(ForbiddenError):
        domain.caption(anonymous, "hello")

    new = domain.connect(user_id="speaker-1")
    domain.services.speaker.refresh_connection(new, RefreshConnectionRequest(session_id, Role.SPEAKER, None))
    with pytest.raises(ForbiddenError):
        domain.caption(speaker, "from the old connection")
    assert domain.caption(new, "from the new one").first["seq"] == 1


def test_captions_for_an_ended_session_are_refused_as_not_found(domain):
    speaker, _ = domain.create()
    domain.carry_out(domain.services.speaker.end_session(speaker))

    with pytest.raises(SessionNotFoundError):
        domain.caption(speaker, "too late")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"text": "   "}, "text"), ({"text": "x" * 2001}, "text"), ({}, "text"), ({"text": "a", "final": "yes"}, "final")],
)
def test_a_malformed_caption_is_a_400_naming_the_field(body, field):
    with pytest.raises(InvalidParametersError) as raised:
        parse_send_caption(body)
    assert raised.value.field == field


def test_a_listener_who_rejoins_with_its_last_seq_gets_every_missed_line_once_in_order(domain):
    speaker, session_id = domain.create(source_language="en")
    listener = domain.join(session_id, "es")
    domain.caption(speaker, "one")
    domain.disconnect(listener)  # its phone drops
    domain.caption(speaker, "two")
    domain.caption(speaker, "three")

    back = domain.connect()
    decision = domain.services.listener.join_session(back, JoinSessionRequest(session_id, "es", last_seq=1))

    assert [reply["type"] for reply in decision.replies] == ["sessionJoined", "caption", "caption"]
    assert [(r["seq"], r["text"]) for r in decision.replies[1:]] == [(2, "[es] two"), (3, "[es] three")]


def test_lines_older_than_the_history_window_are_not_replayed():
    domain = build_domain(caption_history_seconds=10)
    speaker, session_id = domain.create(source_language="en")
    domain.join(session_id, "en")
    domain.caption(speaker, "old")
    domain.clock.advance(11)
    domain.caption(speaker, "new")

    back = domain.connect()
    decision = domain.services.listener.join_session(back, JoinSessionRequest(session_id, "en", last_seq=0))

    assert [r["text"] for r in decision.replies[1:]] == ["new"]


def test_a_listener_gone_mid_fan_out_is_cleaned_up_once(domain):
    speaker, session_id = domain.create(source_language="en")
    staying, gone = domain.join(session_id, "es"), domain.join(session_id, "es")
    domain.notifier.gone.add(gone.connection_id)

    domain.caption(speaker, "one")
    domain.caption(speaker, "two")  # no longer listed: its seat went with the first 410

    session = domain.session(session_id)
    assert (session.listener_count, session.language_counts["es"]) == (1, 1)
    assert gone.connection_id not in domain.tables.connections
    assert len(captions_to(domain, staying)) == 2


def test_languages_in_use_follow_joins_leaves_refreshes_and_disconnects(domain):
    _, session_id = domain.create(source_language="en")
    spanish, french = domain.join(session_id, "es"), domain.join(session_id, "fr")
    assert domain.session(session_id).languages_in_use == ["es", "fr"]

    domain.services.listener.leave_session(french)
    refreshed = domain.connect()
    domain.services.listener.refresh_connection(refreshed, RefreshConnectionRequest(session_id, Role.LISTENER, "es"))
    domain.disconnect(spanish)

    session = domain.session(session_id)
    assert session.languages_in_use == ["es"]
    assert (session.language_counts["es"], session.language_counts["fr"], session.listener_count) == (1, 0, 1)


def test_a_language_with_more_listeners_than_the_threshold_goes_through_the_queue():
    domain = build_domain(caption_queue_threshold=2, max_listeners_per_session=500)
    speaker, session_id = domain.create(source_language="en")
    many = [domain.join(session_id, "es") for _ in range(3)]
    few = domain.join(session_id, "fr")

    domain.caption(speaker, "Amen")

    ((ids, message),) = domain.queue.pages
    assert sorted(ids) == sorted(listener.connection_id for listener in many)
    assert message["text"] == "[es] Amen"
    assert all(not captions_to(domain, listener) for listener in many)
    assert captions_to(domain, few)[0]["text"] == "[fr] Amen"


def test_a_language_nobody_listens_in_costs_no_listener_lookup(domain, monkeypatch):
    speaker, session_id = domain.create(source_language="en")
    domain.join(session_id, "es")
    connections = domain.services.stores.connections
    looked_up: list[str] = []
    real_lookup = connections.listeners_in

    def recording_lookup(session: str, language: str):
        looked_up.append(language)
        return real_lookup(session, language)

    monkeypatch.setattr(connections, "listeners_in", recording_lookup)
    domain.caption(speaker, "Grace and peace")
    domain.caption(speaker, "Grace and", final=False, lineId="l2")

    assert looked_up == ["es"]  # not the source language, which no one here reads


def test_a_line_to_several_languages_looks_its_listeners_up_once_and_each_gets_its_own_language(domain, monkeypatch):
    speaker, session_id = domain.create(source_language="en")
    listeners = {language: [domain.join(session_id, language) for _ in range(2)] for language in ("en", "es", "fr")}
    someone_elses = domain.join(domain.create(source_language="en")[1], "es")
    connections = domain.services.stores.connections
    lookups: list[str] = []
    real_of, real_in = connections.listeners_of, connections.listeners_in

    def session_lookup(session: str):
        lookups.append("session")
        return real_of(session)

    def language_lookup(session: str, language: str):
        lookups.append(language)
        return real_in(session, language)

    monkeypatch.setattr(connections, "listeners_of", session_lookup)
    monkeypatch.setattr(connections, "listeners_in", language_lookup)
    domain.caption(speaker, "Grace and peace")

    assert lookups == ["session"]  # one Query for three languages, not one per language
    for language, seated in listeners.items():
        for listener in seated:
            (line,) = captions_to(domain, listener)
            assert line["language"] == language
    assert not captions_to(domain, someone_elses)
