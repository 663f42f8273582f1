// The caption order rules on a fake clock: seq order, duplicates dropped, a bounded wait for a
// line that arrives early, lines replaced by lineId, and the lastSeq a rejoin sends.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CaptionLines, CaptionSequencer, captionFromMessage } from "../caption-order.js";

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms) => (now += ms) };
}

const caption = (seq, extra = {}) => captionFromMessage({ type: "caption", sessionId: "faithful-shepherd-427", seq, lineId: `l${seq}`, language: "es", text: `[es] line ${seq}`, final: true, timestamp: 1, ...extra });
const seqs = (captions) => captions.map((shown) => shown.seq);

test("a message without a usable seq or text is no caption; defaults are filled in", () => {
  for (const bad of [null, "x", {}, { seq: 1 }, { text: "a" }, { seq: 0, text: "a" }, { seq: 1.5, text: "a" }, { seq: "2", text: "a" }, { seq: 2, text: 7 }]) {
    assert.equal(captionFromMessage(bad), null, JSON.stringify(bad));
  }
  const parsed = captionFromMessage({ seq: 4, text: "Hello" });
  assert.equal(parsed.lineId, "line-4");
  assert.equal(parsed.final, true);
  assert.equal(parsed.untranslated, false);
  assert.equal(captionFromMessage({ seq: 4, text: "Hi", final: false, untranslated: true }).final, false);
  assert.equal(captionFromMessage({ seq: 4, text: "Hi", untranslated: true }).untranslated, true);
});

test("after a known lastSeq the next lines are shown at once, in order", () => {
  const order = new CaptionSequencer({ lastSeq: 0 });
  assert.deepEqual(seqs(order.accept(caption(1))), [1]);
  assert.deepEqual(seqs(order.accept(caption(2))), [2]);
  assert.equal(order.lastSeq, 2);
  assert.equal(order.holding, false);
});

test("a line that arrives early waits for the one before it, and both come out in order", () => {
  const time = clock();
  const order = new CaptionSequencer({ lastSeq: 4, now: time.now });
  assert.deepEqual(seqs(order.accept(caption(6))), [], "6 waits for 5");
  assert.equal(order.holding, true);
  assert.equal(order.nextDeadline(), time.now() + 1000);
  time.advance(300);
  assert.deepEqual(seqs(order.accept(caption(5))), [5, 6]);
  assert.equal(order.lastSeq, 6);
  assert.equal(order.nextDeadline(), null);
});

test("a gap that never fills (a partial line of another language) holds a line for the window only", () => {
  const time = clock();
  const order = new CaptionSequencer({ lastSeq: 2, reorderWindowMs: 1000, now: time.now });
  assert.deepEqual(seqs(order.accept(caption(4))), []);
  time.advance(999);
  assert.deepEqual(seqs(order.releaseDue()), [], "still inside the window");
  time.advance(1);
  assert.deepEqual(seqs(order.releaseDue()), [4]);
  assert.deepEqual(seqs(order.accept(caption(5))), [5], "the line after it is not held again");
  const late = order.accept(caption(3));
  assert.deepEqual(late.map((shown) => [shown.seq, shown.late]), [[3, true]], "the missing line, after its window: shown late, marked");
  assert.equal(order.lastSeq, 5, "lastSeq stays the highest seq shown");
  assert.deepEqual(order.accept(caption(3)), [], "and never twice");
});

test("a late partial is dropped for its final words; seqs before a reload's lastSeq stay dropped", () => {
  const order = new CaptionSequencer({ lastSeq: 10, reorderWindowMs: 0 });
  assert.deepEqual(seqs(order.accept(caption(11))), [11]);
  assert.deepEqual(seqs(order.accept(caption(14))), [14]);
  assert.deepEqual(order.accept(caption(12, { lineId: "b", final: false })), [], "old words behind a newer line");
  assert.deepEqual(order.accept(caption(13, { lineId: "b" })).map((shown) => [shown.lineId, shown.late]), [["b", true]]);
  assert.deepEqual(order.accept(caption(9)), [], "at or below the lastSeq it started from: shown before the reload");
});

test("a line later than the 1,000 seqs remembered is dropped as forgotten", () => {
  const order = new CaptionSequencer({ lastSeq: 0, reorderWindowMs: 0 });
  order.accept(caption(1));
  for (let seq = 3; seq <= 1003; seq++) assert.deepEqual(seqs(order.accept(caption(seq))), [seq]);
  // 1,002 shown, 1,000 remembered: 1 and 3 are forgotten, and 2 is older than both
  for (const seq of [2, 3, 4]) assert.deepEqual(order.accept(caption(seq)), [], `seq ${seq}`);
});

test("the very first line seen is held briefly, since the one before it may be on its way", () => {
  const time = clock();
  const order = new CaptionSequencer({ now: time.now });
  assert.equal(order.lastSeq, null);
  assert.deepEqual(seqs(order.accept(caption(8))), []);
  assert.deepEqual(seqs(order.accept(caption(7))), [], "still waiting: no known start");
  time.advance(1000);
  assert.deepEqual(seqs(order.releaseDue()), [7, 8]);
});

test("duplicates (a refresh overlap, a replay after lastSeq) are dropped, held or shown", () => {
  const time = clock();
  const order = new CaptionSequencer({ lastSeq: 0, now: time.now });
  assert.deepEqual(seqs(order.accept(caption(1))), [1]);
  assert.deepEqual(seqs(order.accept(caption(1))), []);
  assert.deepEqual(seqs(order.accept(caption(3))), []);
  assert.deepEqual(seqs(order.accept(caption(3))), [], "a held line twice is held once");
  assert.deepEqual(seqs(order.accept(caption(2))), [2, 3]);
  for (const seq of [1, 2, 3]) assert.deepEqual(order.accept(caption(seq)), []);
  time.advance(5000);
  assert.deepEqual(order.releaseDue(), []);
});

test("a rejoin resumes from lastSeq: the replayed lines after it once, then live ones", () => {
  const first = new CaptionSequencer({ lastSeq: 0 });
  for (const seq of [1, 2, 3]) first.accept(caption(seq));
  const resumed = new CaptionSequencer({ lastSeq: first.lastSeq });
  const shown = [];
  for (const seq of [2, 3, 4, 5, 5, 6]) shown.push(...resumed.accept(caption(seq)));
  assert.deepEqual(seqs(shown), [4, 5, 6]);
});

test("a late partial of a line already finished does not bring old words back", () => {
  const order = new CaptionSequencer({ lastSeq: 0 });
  assert.deepEqual(seqs(order.accept(caption(1, { lineId: "a", final: false }))), [1]);
  assert.deepEqual(seqs(order.accept(caption(2, { lineId: "a" }))), [2]);
  const time = clock();
  const later = new CaptionSequencer({ lastSeq: 2, now: time.now });
  later.accept(caption(4, { lineId: "b" }));
  assert.deepEqual(seqs(later.accept(caption(3, { lineId: "b", final: false }))), [3, 4], "partial then final of b, in seq order");
});

test("flush shows every held line in order when nothing more can fill a gap", () => {
  const order = new CaptionSequencer({ lastSeq: 0 });
  order.accept(caption(5));
  order.accept(caption(3));
  assert.deepEqual(seqs(order.flush()), [3, 5]);
  assert.equal(order.holding, false);
});

test("bad options fail loudly", () => {
  assert.throws(() => new CaptionSequencer({ reorderWindowMs: -1 }), RangeError);
  assert.throws(() => new CaptionSequencer({ lastSeq: -1 }), RangeError);
  assert.throws(() => new CaptionSequencer({ lastSeq: "3" }), RangeError);
  assert.throws(() => new CaptionLines({ keep: 0 }), RangeError);
});

test("random arrival orders with duplicates always come out once each, ascending", () => {
  let state = 42;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 200; round++) {
    const time = clock();
    const order = new CaptionSequencer({ lastSeq: 0, now: time.now });
    const arrivals = [];
    for (let seq = 1; seq <= 20; seq++) {
      arrivals.push(seq);
      if (random() < 0.3) arrivals.push(seq);
    }
    // Neighbours swap (two invocations crossing), never further than the window covers.
    for (let index = 0; index + 1 < arrivals.length; index++) {
      if (random() < 0.4) [arrivals[index], arrivals[index + 1]] = [arrivals[index + 1], arrivals[index]];
    }
    const shown = [];
    for (const seq of arrivals) {
      time.advance(10);
      shown.push(...order.accept(caption(seq)));
    }
    time.advance(1000);
    shown.push(...order.releaseDue());
    assert.deepEqual(seqs(shown), Array.from({ length: 20 }, (_, index) => index + 1), `round ${round}: ${arrivals}`);
  }
});

test("lines are replaced by lineId where they stand, new ones appended, the oldest dropped past the limit", () => {
  const lines = new CaptionLines({ keep: 3 });
  assert.equal(lines.apply(caption(1, { lineId: "a", final: false, text: "In the beg" })).replaced, false);
  lines.apply(caption(2, { lineId: "b", text: "Second" }));
  const replaced = lines.apply(caption(3, { lineId: "a", text: "In the beginning was the Word" }));
  assert.equal(replaced.replaced, true);
  assert.deepEqual(
    lines.lines.map((line) => [line.lineId, line.text]),
    [
      ["a", "In the beginning was the Word"],
      ["b", "Second"],
    ],
  );
  lines.apply(caption(4, { lineId: "c" }));
  assert.deepEqual(lines.apply(caption(5, { lineId: "d" })).dropped, ["a"]);
  assert.deepEqual(
    lines.lines.map((line) => line.lineId),
    ["b", "c", "d"],
  );
});

test("a late line goes in its place by seq, and the view can find the line after it", () => {
  const lines = new CaptionLines({ keep: 3 });
  for (const seq of [1, 2, 4]) lines.apply(caption(seq));
  assert.equal(lines.after("l2"), "l4");
  assert.equal(lines.after("l4"), null);
  const { dropped } = lines.apply({ ...caption(3), late: true });
  assert.deepEqual(dropped, ["l1"]);
  assert.deepEqual(lines.lines.map((line) => line.seq), [2, 3, 4]);
  assert.equal(lines.after("l3"), "l4");
  lines.apply({ ...caption(1), late: true });
  assert.deepEqual(lines.lines.map((line) => line.seq), [2, 3, 4], "older than every line kept: scrolled away at once");
});

test("a final line sent again with its lineId (its answer was lost) is shown once; new words under it are shown", () => {
  const order = new CaptionSequencer({ lastSeq: 0, reorderWindowMs: 0 });
  assert.deepEqual(seqs(order.accept(caption(1, { lineId: "typed-a", text: "Grace" }))), [1]);
  assert.deepEqual(order.accept(caption(2, { lineId: "typed-a", text: "Grace" })), [], "the resend");
  assert.equal(order.lastSeq, 2, "its seq counts as shown: the next line is not held for it");
  assert.deepEqual(seqs(order.accept(caption(3, { lineId: "typed-b", text: "Peace" }))), [3]);
  assert.deepEqual(seqs(order.accept(caption(4, { lineId: "typed-a", text: "Grace and mercy" }))), [4], "other words replace the line");
  const held = new CaptionSequencer({ lastSeq: 0, reorderWindowMs: 1000, now: clock().now });
  assert.deepEqual(held.accept(caption(2, { lineId: "typed-c", text: "Amen" })), [], "the resend, ahead of the first send, waits");
  assert.deepEqual(seqs(held.accept(caption(1, { lineId: "typed-c", text: "Amen" }))), [1], "then the line is shown once");
});

test("the first send of a line, arriving after its resend (different words: it went out untranslated), does not replace it", () => {
  const order = new CaptionSequencer({ lastSeq: 4, reorderWindowMs: 0 });
  assert.deepEqual(seqs(order.accept(caption(6, { lineId: "typed-a", text: "[es] Gracia" }))), [6]);
  assert.deepEqual(order.accept(caption(5, { lineId: "typed-a", text: "Grace", untranslated: true })), [], "older words of a line shown");
  const time = clock();
  const held = new CaptionSequencer({ reorderWindowMs: 1000, now: time.now });
  assert.deepEqual(held.accept(caption(2, { lineId: "typed-c", text: "Amen" })), []);
  assert.deepEqual(held.accept(caption(1, { lineId: "typed-c", text: "Amen" })), [], "both held: no known start yet");
  time.advance(1000);
  assert.deepEqual(seqs(held.releaseDue()), [1], "the resend, held with it, is not shown");
  assert.equal(held.lastSeq, 2);
});

test("a late line goes before the first line that appeared after it; the others keep their places", () => {
  const lines = new CaptionLines({ keep: 10 });
  lines.apply(caption(3, { lineId: "x", final: false, text: "In the beg" }));
  lines.apply(caption(4, { lineId: "t", text: "Typed" }));
  lines.apply(caption(5, { lineId: "x", text: "In the beginning" })); // replaced where it stands
  lines.apply({ ...caption(2, { lineId: "z", text: "Late" }), late: true });
  assert.deepEqual(lines.lines.map((line) => line.lineId), ["z", "x", "t"]);
  assert.equal(lines.after("z"), "x");
  lines.apply({ ...caption(6, { lineId: "w" }), late: true }); // later than every place: at the end
  assert.deepEqual(lines.lines.map((line) => line.lineId), ["z", "x", "t", "w"]);
});

test("a dictated line whose previous line is shown is shown at once across the partials' gap", () => {
  const time = clock();
  const order = new CaptionSequencer({ reorderWindowMs: 1000, now: time.now });
  // The session's first final line names none: nothing can come before it, so no wait.
  assert.deepEqual(seqs(order.accept(caption(1, { previousSeq: 0 }))), [1]);
  // A translated-language listener never gets the partials (seqs 2-4) of line 5.
  assert.deepEqual(seqs(order.accept(caption(5, { previousSeq: 1 }))), [5]);
  // A line naming one not shown yet waits for it, and both come out in order.
  assert.deepEqual(order.accept(caption(9, { previousSeq: 7 })), []);
  assert.deepEqual(seqs(order.accept(caption(7, { previousSeq: 5 }))), [7, 9]);
  assert.equal(order.resumeAfter, 9);
});

test("a final line missing past the window is asked for again, the replay shows only it, and the ask ends with the server's history", () => {
  const time = clock();
  const order = new CaptionSequencer({ reorderWindowMs: 1000, now: time.now });
  // The first line seen names one from before this listener joined: not missing.
  order.accept(caption(2, { previousSeq: 1 }));
  order.accept(caption(4, { previousSeq: 3 }));
  time.advance(1000);
  assert.deepEqual(seqs(order.releaseDue()), [2, 4]);
  assert.equal(order.resumeAfter, 2);
  order.accept(caption(3, { previousSeq: 2 }));
  assert.equal(order.resumeAfter, 4);
  // Line 6 names 5, which does not come in time.
  assert.deepEqual(order.accept(caption(6, { previousSeq: 5 })), []);
  time.advance(1000);
  assert.deepEqual(seqs(order.releaseDue()), [6]);
  assert.deepEqual([order.lastSeq, order.resumeAfter], [6, 4]);
  const replayed = [...order.accept(caption(5, { previousSeq: 4 })), ...order.accept(caption(6, { previousSeq: 5 }))];
  assert.deepEqual(replayed.map((shown) => [shown.seq, shown.late === true]), [[5, true]]);
  assert.equal(order.resumeAfter, 6);
  order.accept(caption(9, { previousSeq: 8 }));
  time.advance(1000);
  assert.deepEqual(seqs(order.releaseDue()), [9]);
  assert.equal(order.resumeAfter, 7);
  time.advance(121_000);
  assert.equal(order.resumeAfter, 9);
});

test("random arrivals of dictated lines: every final line named and not shown is after the rejoin point", () => {
  let state = 11;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 300; round++) {
    const finals = [];
    for (let seq = 0, index = 0; index < 20; index++) {
      seq += random() < 0.5 ? 3 : 1;
      finals.push(caption(seq, { previousSeq: finals.at(-1)?.seq ?? 0 }));
    }
    const time = clock();
    const order = new CaptionSequencer({ reorderWindowMs: 1000, now: time.now });
    const shown = [];
    for (let index = 0; index < 40; index++) {
      time.advance([0, 100, 600, 1500][Math.floor(random() * 4)]);
      shown.push(...order.accept(finals[Math.floor(random() * finals.length)]), ...order.releaseDue());
      const seen = new Set(shown.map((line) => line.seq));
      for (const line of shown.slice(1)) {
        if (line.previousSeq && !seen.has(line.previousSeq)) assert.ok(order.resumeAfter < line.previousSeq, `round ${round}: ${line.previousSeq} missing, resume ${order.resumeAfter}`);
      }
    }
    assert.equal(new Set(shown.map((line) => line.seq)).size, shown.length, `round ${round}: a line shown twice`);
  }
});

test("a partial held before a final line still goes first", () => {
  const time = clock();
  const order = new CaptionSequencer({ reorderWindowMs: 1000, now: time.now });
  // A source-language listener whose first line seen is a partial (held: nothing shown yet).
  assert.deepEqual(order.accept(caption(1, { final: false, lineId: "A" })), []);
  assert.deepEqual(order.accept(caption(2, { lineId: "A", previousSeq: 0 })), []);
  time.advance(1000);
  assert.deepEqual(order.releaseDue().map((shown) => [shown.seq, shown.final]), [[1, false], [2, true]]);
});
