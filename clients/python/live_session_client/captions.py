"""Captions in order, each shown once, across refreshes, reconnects and invocations that cross.

The server numbers captions per session (`seq`). A listener can see a line twice (the old and the
new connection overlap during a refresh; a resumed connection replays from `lastSeq`) or early
(two invocations fanning out consecutive lines can cross). Seqs also have gaps a listener will
never fill: partial lines go to source-language listeners only. A final line names the final line
before it (`previousSeq`), so one whose previous line is shown is shown at once, whatever the gap
(decision 80). Any other line that arrives ahead of a gap (and the very first line seen) is held
for at most `reorder_window_seconds`, then shown anyway; a final line it named that is still
missing then is asked for again at the next rejoin or refresh (`resume_after`).
A final line that comes later still (its invocation was slower than the window on a busy
moment) is shown late, marked `late`, rather than lost: it was never shown, and a listener's
screen puts it in its place by seq (decision 77). Seqs are remembered, not just the highest, so
late never means twice. A final line with the same lineId and words as one already shown is a
speaker's resend after a lost answer (decision 78): its seq counts as shown, nothing is shown again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

# The seqs shown are remembered (for a late line: shown once, never twice) this many at a time; a
# line later than that many others is older than anything a listener still reads, and dropped.
REMEMBERED_SEQS = 1000
# Finished lines' ids and words, for late partials and resends (a 90-minute service has a few
# thousand lines, and neither comes that late).
REMEMBERED_FINAL_LINES = 1000
# A final line found missing (a later one named it as `previousSeq` and it did not come within the
# reorder window) is asked for again at a rejoin or refresh for this long: it may have been on its
# way on the connection that dropped. The server keeps lines CAPTION_HISTORY_SECONDS (default
# 120), so older ones cannot come back.
MISSING_REMEMBERED_SECONDS = 120.0


@dataclass(frozen=True)
class Caption:
    session_id: str
    seq: int
    line_id: str | None
    language: str | None
    text: str
    final: bool
    timestamp: int | None
    untranslated: bool = False
    late: bool = False  # came after lines with higher seqs were shown: goes in its place by seq
    previous_seq: int | None = None  # final lines: the final line before this one (0: none)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Caption | None:
        """None for a caption message without a usable seq or text."""
        seq, text = message.get("seq"), message.get("text")
        if type(seq) is not int or not isinstance(text, str):
            return None
        line_id = message.get("lineId")
        return cls(
            session_id=str(message.get("sessionId", "")),
            seq=seq,
            line_id=line_id if isinstance(line_id, str) else None,
            language=message.get("language") if isinstance(message.get("language"), str) else None,
            text=text,
            final=message.get("final", True) is not False,
            timestamp=message.get("timestamp") if type(message.get("timestamp")) is int else None,
            untranslated=message.get("untranslated") is True,
            previous_seq=previous if type(previous := message.get("previousSeq")) is int and previous >= 0 else None,
        )


class CaptionSequencer:
    """Feed it every caption from every connection; it hands back the ones to show, in order.

    `last_seq` is the highest seq shown; `resume_after` is what to send as `lastSeq` when rejoining."""

    def __init__(self, reorder_window_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.reorder_window_seconds = reorder_window_seconds
        self._clock = clock
        self._last_seq: int | None = None
        self._held: dict[int, tuple[Caption, float]] = {}
        self._final_lines: dict[str, tuple[int, str]] = {}  # lineId -> (seq, words) of its final, oldest first
        self._shown: dict[int, None] = {}  # the seqs shown, oldest first (an ordered set)
        self._floor = 0  # seqs at or below this are forgotten: stale whatever they carry
        self._missing: dict[int, float] = {}  # final lines named by a later one, not shown -> when

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    @property
    def resume_after(self) -> int | None:
        """What a rejoin or refresh sends as `lastSeq`: the highest seq shown, or just before the
        oldest final line found missing in the last MISSING_REMEMBERED_SECONDS, so that a line
        still on its way on the connection that dropped comes back with the replay (decision 80).
        The replayed lines already shown are dropped as seen."""
        horizon = self._clock() - MISSING_REMEMBERED_SECONDS
        while self._missing and next(iter(self._missing.values())) < horizon:
            del self._missing[next(iter(self._missing))]
        return min(self._missing) - 1 if self._missing else self._last_seq

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def next_deadline(self) -> float | None:
        """When the oldest held caption must be released (clock time), or None."""
        if not self._held:
            return None
        return min(arrived for _, arrived in self._held.values()) + self.reorder_window_seconds

    def accept(self, caption: Caption) -> list[Caption]:
        """The captions now ready to show, in seq order (possibly none)."""
        if self._is_stale(caption):
            return []
        if self._last_seq is not None and caption.seq < self._last_seq:
            return self._show(replace(caption, late=True))
        if self._is_next(caption):
            return [*self._show(caption), *self._release(waited_since=-math.inf)]
        # Also the first caption: a line fanned out just before it may still be on its way.
        self._held.setdefault(caption.seq, (caption, self._clock()))
        return self.release_due()

    def release_due(self) -> list[Caption]:
        """Held captions whose wait is over, and those consecutive to them."""
        return self._release(waited_since=self._clock() - self.reorder_window_seconds)

    def _release(self, waited_since: float) -> list[Caption]:
        """Held captions, lowest seq first, while each is next or arrived by `waited_since`."""
        ready: list[Caption] = []
        while self._held:
            seq = min(self._held)
            caption, arrived = self._held[seq]
            if arrived > waited_since and not self._is_next(caption):
                break
            del self._held[seq]
            if not self._is_stale(caption):
                ready.extend(self._show(caption))
        return ready

    def flush(self) -> list[Caption]:
        """Every held caption, in order (the session ended: nothing more will fill a gap)."""
        ready = []
        for seq in sorted(self._held):
            caption, _ = self._held.pop(seq)
            if not self._is_stale(caption):
                ready.extend(self._show(caption))
        return ready

    def _is_next(self, caption: Caption) -> bool:
        """Nothing this listener gets can still come before it: the seq after the last one shown,
        or a final line whose previous final line is shown (the seqs between are partial lines,
        which only source-language listeners get, decision 80). The session's first final line
        names none (0): nothing comes before it even when it is the first line seen. A line held
        before it (a source-language listener's partial) still goes first."""
        if self._last_seq is not None and caption.seq == self._last_seq + 1:
            return True
        previous = caption.previous_seq if caption.final else None
        if previous is None or min(self._held, default=caption.seq) < caption.seq:
            return False
        if self._last_seq is None:
            return previous == 0
        return caption.seq > self._last_seq and self._has_shown(previous)

    def _has_shown(self, seq: int) -> bool:
        return seq <= self._floor or seq in self._shown

    def _is_stale(self, caption: Caption) -> bool:
        if caption.seq <= self._floor or caption.seq in self._shown:
            return True
        if caption.final:
            return False
        # A partial behind a line already shown, or of a line already finished, would bring back
        # old words; its line's final words are on their way.
        if self._last_seq is not None and caption.seq < self._last_seq:
            return True
        return caption.line_id is not None and caption.line_id in self._final_lines

    def _show(self, caption: Caption) -> list[Caption]:
        previous = caption.previous_seq
        # (Before the first line shown, a line may be from before the listener joined.)
        if self._last_seq is not None and caption.final and previous is not None and not self._has_shown(previous):
            self._note_missing(previous)
        self._missing.pop(caption.seq, None)
        self._last_seq = max(caption.seq, self._last_seq or 0)
        self._shown[caption.seq] = None
        if len(self._shown) > REMEMBERED_SEQS:
            forgotten = next(iter(self._shown))
            del self._shown[forgotten]
            self._floor = max(self._floor, forgotten)
        if caption.final and caption.line_id is not None:
            # The same final words under the same lineId: the speaker sent the line again after
            # its answer was lost (decision 78). Its seq is taken, nothing new is shown.
            # An older final of a line (the first send, late) must not replace a newer one either.
            shown = self._final_lines.get(caption.line_id)
            if shown is not None and (shown[1] == caption.text or caption.seq < shown[0]):
                return []
            self._final_lines.pop(caption.line_id, None)
            self._final_lines[caption.line_id] = (caption.seq, caption.text)
            if len(self._final_lines) > REMEMBERED_FINAL_LINES:
                del self._final_lines[next(iter(self._final_lines))]
        return [caption]

    def _note_missing(self, seq: int) -> None:
        self._missing[seq] = self._clock()
        if len(self._missing) > REMEMBERED_SEQS:
            del self._missing[next(iter(self._missing))]
