"""The client's rules without a network: caption order and de-duplication, backoff with full
jitter, the sentence table against docs/protocol.md, frames, ids and the CLI's argument checks."""

from __future__ import annotations

import random
import re
import string
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live_session_client import ERROR_SENTENCES, Caption, CaptionSequencer, ReconnectPolicy, explain_error
from live_session_client.cli import main, parse_pace
from live_session_client.protocol import ErrorCode, normalise_session_id, parse_frame
from live_session_client.sentences import END_SENTENCES, STATE_SENTENCES, describe, explain_end

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def caption(seq: int, *, final: bool = True, line: str | None = None, previous: int | None = None) -> Caption:
    return Caption("s", seq, line or f"line-{seq}", "es", f"text {seq}", final, None, previous_seq=previous)


def seqs(captions: list[Caption]) -> list[int]:
    return [c.seq for c in captions]


# ---------------------------------------------------------------- captions


def test_the_first_caption_waits_for_the_reorder_window_then_shows():
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    assert sequencer.accept(caption(5)) == []
    clock.now += 1.0
    assert seqs(sequencer.release_due()) == [5]
    assert sequencer.last_seq == 5


def test_consecutive_captions_show_at_once():
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    sequencer.accept(caption(1))
    clock.now += 1
    sequencer.release_due()
    assert seqs(sequencer.accept(caption(2))) == [2]
    assert seqs(sequencer.accept(caption(3))) == [3]


def test_an_early_caption_is_held_until_the_gap_fills():
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    sequencer.accept(caption(1))
    clock.now += 1
    sequencer.release_due()
    assert sequencer.accept(caption(3)) == []
    assert sequencer.holding
    assert seqs(sequencer.accept(caption(2))) == [2, 3]
    assert not sequencer.holding


def test_an_unfilled_gap_is_skipped_after_the_window():
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    sequencer.accept(caption(1))
    clock.now += 1
    sequencer.release_due()
    sequencer.accept(caption(3))
    clock.now += 0.5
    assert sequencer.release_due() == []
    assert sequencer.next_deadline() == pytest.approx(clock.now + 0.5)
    clock.now += 0.5
    assert seqs(sequencer.release_due()) == [3]
    # AND the missing line, when it comes after all, is shown late (marked, for its place), once
    (late,) = sequencer.accept(caption(2))
    assert (late.seq, late.late) == (2, True)
    assert sequencer.last_seq == 3
    assert sequencer.accept(caption(2)) == []
    assert sequencer.accept(caption(3)) == []


def test_a_dictated_line_whose_previous_line_is_shown_is_shown_at_once_across_the_partials_gap():
    # GIVEN a translated-language listener: it never gets the partials (seqs 2-4) of line 5
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    # the session's first final line names none: nothing can come before it, so no wait
    assert seqs(sequencer.accept(caption(1, previous=0))) == [1]
    # WHEN the final line 5 comes, naming line 1 as the one before it THEN it is shown at once
    assert seqs(sequencer.accept(caption(5, previous=1))) == [5]
    # AND a line that names one not shown yet waits for it, and both come out in order
    assert sequencer.accept(caption(9, previous=7)) == []
    assert seqs(sequencer.accept(caption(7, previous=5))) == [7, 9]
    assert sequencer.resume_after == 9


def test_a_partial_held_before_a_final_line_still_goes_first():
    # GIVEN a source-language listener whose first line seen is a partial (held: nothing shown yet)
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    assert sequencer.accept(caption(1, final=False, line="A")) == []
    # WHEN the line's final words come, naming no line before them THEN they wait behind it
    assert sequencer.accept(caption(2, line="A", previous=0)) == []
    clock.now += 1
    assert [(c.seq, c.final) for c in sequencer.release_due()] == [(1, False), (2, True)]


def test_a_final_line_missing_past_the_window_is_asked_for_again_and_the_replay_shows_only_it():
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    sequencer.accept(caption(1, previous=0))
    # GIVEN line 4 (after partials 2-3) names line 1; line 6 names 4, which does not come in time
    assert seqs(sequencer.accept(caption(4, previous=1))) == [4]
    assert sequencer.accept(caption(6, previous=5)) == []
    clock.now += 1
    assert seqs(sequencer.release_due()) == [6]
    # THEN a rejoin asks for what followed 4, not 6
    assert (sequencer.last_seq, sequencer.resume_after) == (6, 4)
    # AND the replay shows 5 (late) and neither 4 nor 6 again; the rejoin point is 6 again
    replayed = [*sequencer.accept(caption(5, previous=4)), *sequencer.accept(caption(6, previous=5))]
    assert [(c.seq, c.late) for c in replayed] == [(5, True)]
    assert sequencer.resume_after == 6


def test_a_missing_line_is_not_asked_for_after_the_server_dropped_it_nor_one_before_the_first_line():
    from live_session_client.captions import MISSING_REMEMBERED_SECONDS

    clock = FakeClock()
    sequencer = CaptionSequencer(0.0, clock)
    # the first line seen names one from before this listener joined: not missing
    sequencer.accept(caption(8, previous=6))
    sequencer.release_due()
    assert sequencer.resume_after == 8
    sequencer.accept(caption(12, previous=10))
    assert sequencer.resume_after == 9
    clock.now += MISSING_REMEMBERED_SECONDS + 1
    assert sequencer.resume_after == 12


@given(st.lists(st.booleans(), min_size=1, max_size=30), st.data())
def test_every_final_line_named_and_not_shown_is_after_the_rejoin_point(partial_gaps, data):
    # the session's final lines, some after partial lines (gaps a translated listener never fills)
    finals, seq = [], 0
    for gap in partial_gaps:
        seq += 3 if gap else 1
        finals.append(caption(seq, previous=finals[-1].seq if finals else 0))
    arrivals = data.draw(st.lists(st.sampled_from(finals), max_size=60))
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    shown: list[Caption] = []
    for arrival in arrivals:
        clock.now += data.draw(st.sampled_from([0.0, 0.1, 0.6, 1.5]))
        shown += [*sequencer.accept(arrival), *sequencer.release_due()]
        seen = {c.seq for c in shown}
        named_missing = [c.previous_seq for c in shown[1:] if c.previous_seq and c.previous_seq not in seen]
        assert all(sequencer.resume_after < missing for missing in named_missing)
    assert len({c.seq for c in shown}) == len(shown)


def test_a_late_partial_is_dropped_for_its_final_words():
    clock = FakeClock()
    sequencer = CaptionSequencer(0.0, clock)
    assert seqs(sequencer.accept(caption(1))) == [1]
    assert seqs(sequencer.accept(caption(4))) == [4]
    # a partial behind a line already shown would put old words on screen
    assert sequencer.accept(caption(2, final=False, line="B")) == []
    # its final version, late too, is shown
    assert [(c.seq, c.line_id, c.late) for c in sequencer.accept(caption(3, line="B"))] == [(3, "B", True)]


def test_a_line_later_than_the_remembered_seqs_is_dropped_as_forgotten():
    from live_session_client.captions import REMEMBERED_SEQS

    sequencer = CaptionSequencer(0.0, FakeClock())
    sequencer.accept(caption(1))
    for seq in range(3, REMEMBERED_SEQS + 4):
        assert seqs(sequencer.accept(caption(seq))) == [seq]
    # 1 and 3 are forgotten (1,002 shown, 1,000 kept): 2 is older than anything still remembered
    assert sequencer.accept(caption(2)) == []
    assert sequencer.accept(caption(3)) == []
    assert sequencer.accept(caption(4)) == []


def test_a_partial_line_after_its_final_version_is_ignored():
    clock = FakeClock()
    sequencer = CaptionSequencer(0.0, clock)
    assert seqs(sequencer.accept(caption(1, final=False, line="A"))) == [1]
    assert seqs(sequencer.accept(caption(3, final=True, line="A"))) == [3]
    assert sequencer.accept(caption(4, final=False, line="A")) == []


def test_flush_shows_everything_held_in_order():
    sequencer = CaptionSequencer(10.0, FakeClock())
    for seq in (4, 2, 9):
        sequencer.accept(caption(seq))
    assert seqs(sequencer.flush()) == [2, 4, 9]


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=120), st.randoms())
def test_any_arrival_order_shows_every_final_line_once_in_order_but_the_late_ones(arrivals, rng):
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    shown: list[int] = []
    late: list[int] = []
    for seq in arrivals:
        clock.now += rng.choice([0.0, 0.1, 0.6, 1.5])
        for released in (sequencer.accept(caption(seq)), sequencer.release_due()):
            shown += [c.seq for c in released if not c.late]
            late += [c.seq for c in released if c.late]
    shown += seqs(sequencer.flush())
    # every line received is shown, once; those shown in their turn ascending
    assert sorted(shown + late) == sorted(set(arrivals))
    assert shown == sorted(shown)
    # a late line is one that came after a higher one was shown
    assert all(any(other > seq for other in shown) for seq in late)


@given(st.permutations(list(range(1, 30))))
def test_a_shuffle_within_the_window_comes_out_in_order(order):
    clock = FakeClock()
    sequencer = CaptionSequencer(5.0, clock)
    shown: list[int] = []
    for seq in order:
        shown += seqs(sequencer.accept(caption(seq)))
    clock.now += 5
    shown += seqs(sequencer.release_due())
    assert shown == list(range(1, 30))


def test_caption_messages_without_seq_or_text_are_not_captions():
    assert Caption.from_message({"type": "caption", "seq": "1", "text": "x"}) is None
    assert Caption.from_message({"type": "caption", "seq": 1}) is None
    parsed = Caption.from_message({"type": "caption", "seq": 1, "text": "x", "final": False})
    assert parsed is not None and not parsed.final


# ---------------------------------------------------------------- backoff


def test_backoff_ceiling_doubles_up_to_the_cap():
    policy = ReconnectPolicy(base_seconds=1, cap_seconds=30)
    assert [policy.ceiling(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.ceiling(10_000) == 30


def test_full_jitter_spreads_500_clients_over_the_whole_window():
    # GIVEN 500 phones dropped at once, each with its own randomness
    delays = [ReconnectPolicy(random=random.Random(n)).delay(4) for n in range(500)]
    # THEN every delay lies in [0, 16] s and they are spread over it, not bunched in one second
    assert all(0 <= d <= 16 for d in delays)
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(16)]
    assert max(per_second) < 500 * 0.15
    assert min(per_second) > 0


@pytest.mark.parametrize(
    "kwargs", [{"base_seconds": 0}, {"base_seconds": 5, "cap_seconds": 1}, {"give_up_after_seconds": 0}]
)
def test_a_policy_that_cannot_work_is_refused(kwargs):
    with pytest.raises(ValueError):
        ReconnectPolicy(**kwargs)


# ---------------------------------------------------------------- sentences


def documented_error_codes() -> set[str]:
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    table = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))


def test_every_documented_error_code_has_a_sentence():
    documented = documented_error_codes()
    assert documented, "the error table of docs/protocol.md was not found"
    assert documented <= set(ERROR_SENTENCES), documented - set(ERROR_SENTENCES)
    assert set(ErrorCode) == set(ERROR_SENTENCES)


@pytest.mark.parametrize("code", sorted(ERROR_SENTENCES))
def test_each_error_sentence_is_plain_and_complete(code):
    sentence = explain_error({"type": "error", "code": code, "message": "internal words", "retryAfter": 12})
    assert "{" not in sentence and "}" not in sentence and "?" not in sentence
    assert sentence.endswith(".") and code not in sentence and "internal words" not in sentence


def test_rate_limit_sentence_names_the_wait_and_survives_its_absence():
    assert explain_error({"code": "RATE_LIMIT_EXCEEDED", "retryAfter": 37}) == (
        "Too many tries from here. Wait 37 seconds and try again."
    )
    assert (
        explain_error({"code": "RATE_LIMIT_EXCEEDED"}) == "Too many tries from here. Wait a few seconds and try again."
    )


def test_parameter_sentence_names_the_field_when_given():
    body = {"code": "INVALID_PARAMETERS", "details": {"field": "sourceLanguage", "reason": "missing"}}
    assert "(sourceLanguage)" in explain_error(body)
    assert "()" not in explain_error({"code": "INVALID_PARAMETERS"})


def test_an_unknown_code_falls_back_to_the_servers_message():
    assert explain_error({"code": "NEW_THING", "message": "Something new."}) == (
        "The server refused the request (NEW_THING): Something new."
    )


def test_every_state_sentence_fills_from_its_fields():
    for situation, template in STATE_SENTENCES.items():
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        filled = describe(situation, **dict.fromkeys(names, "X"))
        assert "{" not in filled, situation
    assert set(END_SENTENCES) == {"speakerDisconnected", "speakerEnded", "expired"}
    assert explain_end("somethingNew") == "The session has ended."


def test_a_frame_without_type_or_not_json_is_an_internal_error():
    crash = parse_frame('{"message": "Internal server error", "connectionId": "x", "requestId": "y"}')
    assert (crash["type"], crash["code"]) == ("error", "INTERNAL_ERROR")
    assert parse_frame("not json")["code"] == "INTERNAL_ERROR"
    assert parse_frame(b"\xff")["code"] == "INTERNAL_ERROR"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (" Faithful-Shepherd-427 ", "faithful-shepherd-427"),
        ("faithful shepherd 427", "faithful-shepherd-427"),
        ("faithful-shepherd427", "faithful-shepherd-427"),
        ("FAITHFUL_SHEPHERD_427", "faithful-shepherd-427"),
    ],
)
def test_typed_session_ids_are_forgiven(typed, expected):
    assert normalise_session_id(typed) == expected


# ---------------------------------------------------------------- CLI arguments


@pytest.mark.parametrize(("text", "seconds"), [("2s", 2.0), ("1.5s", 1.5), ("500ms", 0.5), ("3", 3.0)])
def test_pace_reads_durations(text, seconds):
    assert parse_pace(text) == seconds


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "choose a command: listen or speak"),
        (["listen", "--session", "a-b-123", "--lang", "es"], "the following arguments are required: --url"),
        (["listen", "--url", "http://x/dev", "--session", "a-b-123", "--lang", "es"], "is not a ws:// or wss://"),
        (["listen", "--url", "ws://x/dev", "--session", "shepherd", "--lang", "es"], "is not a session id"),
        (["listen", "--url", "ws://x/dev", "--session", "a-b-123", "--lang", "ES"], "is not a language code"),
        (
            ["listen", "--url", "ws://x/dev", "--session", "a-b-123", "--lang", "es", "--heartbeat-seconds", "0"],
            "is not a positive number",
        ),
        (["speak", "--url", "ws://x/dev"], "speak needs --token"),
        (["speak", "--url", "ws://x/dev", "--token", "t", "--pace", "0s"], "is not a pace"),
        (["speak", "--url", "ws://x/dev", "--token", "t", "--captions-from", "/nonexistent/file"], "cannot read"),
        (["sing"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, complaint, capsys, monkeypatch):
    monkeypatch.delenv("LIVE_SESSION_SPEAKER_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and complaint in err, err


def test_an_empty_captions_file_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["speak", "--url", "ws://x/dev", "--token", "t", "--captions-from", str(empty)])
    assert exited.value.code == 2 and "has no lines to send" in capsys.readouterr().err


def test_a_final_line_sent_again_with_its_line_id_is_shown_once_and_new_words_under_it_are_shown():
    sequencer = CaptionSequencer(0.0, FakeClock())
    line = Caption("s", 1, "typed-a", "es", "Gracia", True, None)
    assert seqs(sequencer.accept(line)) == [1]
    # the speaker's page sent it again after its answer was lost: a new seq, the same line
    assert sequencer.accept(replace(line, seq=2)) == []
    assert sequencer.last_seq == 2
    assert seqs(sequencer.accept(caption(3))) == [3]
    assert seqs(sequencer.accept(replace(line, seq=4, text="Gracia y paz"))) == [4]


def test_the_first_send_of_a_line_arriving_after_its_resend_does_not_replace_it():
    sequencer = CaptionSequencer(0.0, FakeClock())
    assert seqs(sequencer.accept(caption(1))) == [1]
    # the first send went out untranslated and slowly; the resend, translated, came first
    resend = Caption("s", 3, "typed-a", "es", "[es] Gracia", True, None)
    first_send = Caption("s", 2, "typed-a", "es", "Grace", True, None, untranslated=True)
    assert seqs(sequencer.accept(resend)) == [3]
    assert sequencer.accept(first_send) == []
    assert sequencer.accept(first_send) == []


def test_a_resend_held_with_its_first_send_is_shown_once():
    clock = FakeClock()
    sequencer = CaptionSequencer(1.0, clock)
    line = Caption("s", 2, "typed-c", "es", "Amén", True, None)
    assert sequencer.accept(line) == []
    assert sequencer.accept(replace(line, seq=1)) == []
    clock.now += 1.0
    assert seqs(sequencer.release_due()) == [1]
    assert sequencer.last_seq == 2
