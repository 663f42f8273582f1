"""Session ids: adjective-noun-NNN, clean, and allocated with a bounded number of tries."""

from __future__ import annotations

import re

import pytest

from session_manager.errors import SessionIdExhaustedError
from session_manager.ids import SessionIdGenerator
from session_manager.protocol import CreateSessionRequest, QualityTier
from tests.unit.harness import connect

ID_PATTERN = re.compile(r"^[a-z]+-[a-z]+-[1-9][0-9]{2}$")


class ScriptedIds:
    """Hands out the given ids in order, then fresh ones; counts every generate()."""

    def __init__(self, ids: list[str]) -> None:
        self.script = list(ids)
        self.calls = 0

    def generate(self) -> str:
        self.calls += 1
        if self.script:
            return self.script.pop(0)
        return f"fresh-lamb-{100 + self.calls}"


def test_every_generated_id_matches_the_pattern():
    generator = SessionIdGenerator.from_wordlists()

    ids = [generator.generate() for _ in range(5000)]

    assert [i for i in ids if not ID_PATTERN.match(i)] == []


def test_generated_numbers_span_100_to_999():
    generator = SessionIdGenerator.from_wordlists()

    numbers = {int(generator.generate().rsplit("-", 1)[1]) for _ in range(5000)}

    assert min(numbers) >= 100
    assert max(numbers) <= 999
    assert len(numbers) > 800  # the whole range is in use, not a slice of it


@pytest.mark.parametrize("kind", ["adjectives", "nouns"])
def test_each_word_list_has_at_least_100_unique_lowercase_ascii_words(kind):
    words = getattr(SessionIdGenerator.from_wordlists(), kind)

    assert len(set(words)) >= 100
    assert len(set(words)) == len(words)
    assert [w for w in words if not re.fullmatch(r"[a-z]+", w)] == []


def test_no_listed_word_is_blacklisted_on_its_own():
    generator = SessionIdGenerator.from_wordlists()

    assert [w for w in (*generator.adjectives, *generator.nouns) if not generator.is_clean(w)] == []


def test_every_generated_id_passes_the_blacklist():
    generator = SessionIdGenerator.from_wordlists()

    assert all(generator.is_clean(generator.generate()) for _ in range(2000))


def test_the_blacklist_catches_a_word_inside_a_part():
    generator = SessionIdGenerator(("pure",), ("lamb",), ("amb",))

    assert not generator.is_clean("pure-lamb-123")


def test_the_blacklist_catches_a_word_across_the_hyphens():
    # "pure" + "lamb" squeezed is "purelamb": "rel" spans the hyphen
    generator = SessionIdGenerator(("pure",), ("lamb",), ("rel",))

    assert not generator.is_clean("pure-lamb-123")


def test_the_blacklist_catches_a_word_spanning_noun_and_number():
    generator = SessionIdGenerator(("pure",), ("lamb",), ("b6",))

    assert not generator.is_clean("pure-lamb-666")


def test_the_generator_never_hands_out_an_id_with_a_blacklisted_word():
    # GIVEN two adjectives, one of which forms a blacklisted word with the noun across the hyphen
    generator = SessionIdGenerator(("pure", "holy"), ("lamb",), ("relam",))

    # WHEN many ids are generated
    ids = {generator.generate() for _ in range(300)}

    # THEN only the clean adjective is ever used
    assert {i.split("-")[0] for i in ids} == {"holy"}


def test_the_generator_gives_up_when_no_clean_id_exists():
    generator = SessionIdGenerator(("pure",), ("lamb",), ("purelamb",))

    with pytest.raises(RuntimeError):
        generator.generate()


def test_create_session_retries_past_ids_that_are_taken_and_logs_the_collisions(services, logs):
    # GIVEN three sessions exist, and the generator first offers exactly their ids
    taken = []
    for user in ("a", "b", "c"):
        services.speaker.ids = ScriptedIds([f"taken-lamb-{100 + len(taken)}"])
        speaker = connect(services, user_id=user)
        taken.append(
            services.sessions.create_session(speaker.caller, CreateSessionRequest("en", QualityTier.STANDARD))[
                "sessionId"
            ]
        )
    ids = ScriptedIds([*taken, "free-lamb-777"])
    services.speaker.ids = ids
    speaker = connect(services, user_id="speaker")

    # WHEN the speaker creates a session
    reply = services.sessions.create_session(speaker.caller, CreateSessionRequest("en", QualityTier.STANDARD))

    # THEN it gets the first free id on the fourth try, and each collision was logged
    assert reply["sessionId"] == "free-lamb-777"
    assert ids.calls == 4
    collisions = [line for line in logs.lines if line["message"] == "session id collision"]
    assert [(line["sessionId"], line["attempt"]) for line in collisions] == [(t, n) for n, t in enumerate(taken, 1)]
    assert services.stores.sessions.get("free-lamb-777").speaker_user_id == "speaker"


def test_create_session_gives_up_after_session_id_max_attempts(services, logs):
    # GIVEN a session exists and the generator only ever offers its id
    services.speaker.ids = ScriptedIds(["taken-lamb-100"])
    first = connect(services, user_id="first")
    services.sessions.create_session(first.caller, CreateSessionRequest("en", QualityTier.STANDARD))

    class AlwaysTaken(ScriptedIds):
        def generate(self) -> str:
            self.calls += 1
            return "taken-lamb-100"

    ids = AlwaysTaken([])
    services.speaker.ids = ids
    speaker = connect(services, user_id="second")

    # WHEN another speaker creates a session
    with pytest.raises(SessionIdExhaustedError) as raised:
        services.sessions.create_session(speaker.caller, CreateSessionRequest("en", QualityTier.STANDARD))

    # THEN exactly SESSION_ID_MAX_ATTEMPTS ids were tried, and the error is a 503 that was logged
    assert ids.calls == services.settings.session_id_max_attempts == 10
    assert (raised.value.code, raised.value.status) == ("SERVICE_UNAVAILABLE", 503)
    assert "session ids exhausted" in logs.messages("ERROR")
    assert services.stores.connections.get(speaker.connection_id).session_id is None
