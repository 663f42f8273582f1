// Captions in order, each shown once, across refreshes, rejoins and invocations that cross
// (docs/protocol.md, "Live captions"; the Python client's twin is
// clients/python/live_session_client/captions.py, decision 49 in docs/decisions.md).
//
// The server numbers captions per session (`seq`). A listener can get a line twice (the old and the
// new connection overlap during a refresh; a rejoin replays from `lastSeq`) or early (two
// invocations fanning out consecutive lines can cross). Seqs also have gaps a listener never fills:
// partial lines go to source-language listeners only. A final line names the final line before it
// (`previousSeq`), so one whose previous line is shown is shown at once, whatever the gap (decision
// 80). Any other line that arrives ahead of a gap (and the very first line seen) is held for at
// most `reorderWindowMs`, then shown anyway; a final line it named that is still missing then is
// asked for again at the next rejoin or refresh (`resumeAfter`). A final line
// that comes later still (its invocation was slower than the window on a busy moment) is shown
// late, marked `late`, rather than lost: it was never shown, and CaptionLines puts it in its place
// by seq (decision 77). Seqs are remembered, not just the highest, so late never means twice. A
// final line with the same lineId and words as one already shown is a speaker's resend after a
// lost answer (decision 78): its seq counts as shown, and nothing is shown again.
//
// Pure: no timers, no sockets. The caller asks `nextDeadline()` and calls `releaseDue()` then.

/** How long a line ahead of a gap waits for the lines before it (decision 49). */
export const DEFAULT_REORDER_WINDOW_MS = 1000;
// A finished line's id and words are remembered so that a late partial of it cannot bring old words
// back and a resend of it is not shown twice;
// a 90-minute service has a few thousand lines, and a partial is never that late.
const REMEMBERED_FINAL_LINES = 1000;
// The seqs shown are remembered (a late line is shown once, never twice) this many at a time; a
// line later than that many others is older than anything a listener still reads, and dropped.
const REMEMBERED_SEQS = 1000;
// A final line found missing (a later one named it as `previousSeq` and it did not come within the
// reorder window) is asked for again at a rejoin or refresh for this long: it may have been on its
// way on the connection that dropped. The server keeps lines CAPTION_HISTORY_SECONDS (default
// 120), so older ones cannot come back.
const MISSING_REMEMBERED_MS = 120_000;
/** How many lines a CaptionLines keeps (older ones scroll away). */
export const DEFAULT_KEPT_LINES = 200;

/**
 * A `caption` message as the rest of the client uses it, or null when it has no usable seq or text.
 * @param {any} message
 * @returns {import("./caption-order.js").Caption | null}
 */
export function captionFromMessage(message) {
  if (!message || typeof message !== "object") return null;
  const { seq, text } = message;
  if (!Number.isSafeInteger(seq) || seq < 1 || typeof text !== "string") return null;
  return {
    type: "caption",
    sessionId: typeof message.sessionId === "string" ? message.sessionId : "",
    seq,
    lineId: typeof message.lineId === "string" && message.lineId ? message.lineId : `line-${seq}`,
    language: typeof message.language === "string" ? message.language : null,
    text,
    final: message.final !== false,
    timestamp: Number.isFinite(message.timestamp) ? message.timestamp : null,
    untranslated: message.untranslated === true,
    previousSeq: Number.isSafeInteger(message.previousSeq) && message.previousSeq >= 0 ? message.previousSeq : null,
  };
}

/** Feed it every caption from every connection; it hands back the ones to show, in seq order. */
export class CaptionSequencer {
  /** @param {{reorderWindowMs?: number, lastSeq?: number | null, now?: () => number}} [options] */
  constructor({ reorderWindowMs = DEFAULT_REORDER_WINDOW_MS, lastSeq = null, now = Date.now } = {}) {
    if (!(reorderWindowMs >= 0)) throw new RangeError("reorderWindowMs must be a number >= 0");
    if (lastSeq !== null && !(Number.isSafeInteger(lastSeq) && lastSeq >= 0)) throw new RangeError("lastSeq must be an integer >= 0 or null");
    this.reorderWindowMs = reorderWindowMs;
    this._now = now;
    this._lastSeq = lastSeq;
    /** @type {Map<number, {caption: any, arrivedAt: number}>} */
    this._held = new Map();
    /** @type {Map<string, {seq: number, text: string}>} lineId -> the final words shown for it, oldest first */
    this._finalLines = new Map();
    /** @type {Set<number>} the seqs shown, oldest first */
    this._shown = new Set();
    // Seqs at or below this are stale whatever they carry: forgotten, or shown before a reload.
    this._floor = lastSeq ?? 0;
    /** @type {Map<number, number>} final lines named by a later one and not shown -> when noted */
    this._missing = new Map();
  }

  /** The highest seq shown (null before the first). */
  get lastSeq() {
    return this._lastSeq;
  }

  /**
   * What a rejoin or refresh sends as `lastSeq`: the highest seq shown, or just before the oldest
   * final line found missing in the last MISSING_REMEMBERED_MS, so that a line still on its way on
   * the connection that dropped comes back with the replay (decision 80). The replayed lines
   * already shown are dropped as seen.
   */
  get resumeAfter() {
    const horizon = this._now() - MISSING_REMEMBERED_MS;
    for (const [seq, at] of this._missing) {
      if (at >= horizon) break;
      this._missing.delete(seq);
    }
    return this._missing.size ? Math.min(...this._missing.keys()) - 1 : this._lastSeq;
  }

  /** True while a line waits for the ones before it. */
  get holding() {
    return this._held.size > 0;
  }

  /** When (in `now()` time) the oldest held line must be shown, or null. */
  nextDeadline() {
    let oldest = Infinity;
    for (const { arrivedAt } of this._held.values()) oldest = Math.min(oldest, arrivedAt);
    return oldest === Infinity ? null : oldest + this.reorderWindowMs;
  }

  /**
   * The captions now ready to show, in seq order (possibly none).
   * @param {any} caption a captionFromMessage() result
   */
  accept(caption) {
    if (!caption || this._isStale(caption)) return [];
    if (this._lastSeq !== null && caption.seq < this._lastSeq) return this._show({ ...caption, late: true });
    if (this._isNext(caption)) return [...this._show(caption), ...this._release(-Infinity)];
    // Also the first caption: a line fanned out just before it may still be on its way.
    if (!this._held.has(caption.seq)) this._held.set(caption.seq, { caption, arrivedAt: this._now() });
    return this.releaseDue();
  }

  /** Held captions whose wait is over, and the ones consecutive to them. */
  releaseDue() {
    return this._release(this._now() - this.reorderWindowMs);
  }

  /** Held captions, lowest seq first, while each is next or arrived by `waitedSince`. */
  _release(waitedSince) {
    const ready = [];
    while (this._held.size) {
      const seq = Math.min(...this._held.keys());
      const { caption, arrivedAt } = this._held.get(seq);
      if (arrivedAt > waitedSince && !this._isNext(caption)) break;
      this._held.delete(seq);
      if (!this._isStale(caption)) ready.push(...this._show(caption));
    }
    return ready;
  }

  /** Every held caption, in order (the session ended: nothing will fill a gap any more). */
  flush() {
    const ready = [];
    for (const seq of [...this._held.keys()].sort((a, b) => a - b)) {
      const { caption } = this._held.get(seq);
      this._held.delete(seq);
      if (!this._isStale(caption)) ready.push(...this._show(caption));
    }
    return ready;
  }

  /**
   * Nothing this listener gets can still come before `caption`: the seq after the last one shown,
   * or a final line whose previous final line is shown (the seqs between are partial lines, which
   * only source-language listeners get, decision 80). The session's first final line names none
   * (0): nothing comes before it even when it is the first line seen. A line held before it (a
   * source-language listener's partial) still goes first.
   */
  _isNext(caption) {
    if (this._lastSeq !== null && caption.seq === this._lastSeq + 1) return true;
    const previous = caption.final ? (caption.previousSeq ?? null) : null;
    if (previous === null) return false;
    for (const seq of this._held.keys()) if (seq < caption.seq) return false;
    if (this._lastSeq === null) return previous === 0;
    return caption.seq > this._lastSeq && this._hasShown(previous);
  }

  _hasShown(seq) {
    return seq <= this._floor || this._shown.has(seq);
  }

  _isStale(caption) {
    if (caption.seq <= this._floor || this._shown.has(caption.seq)) return true;
    if (caption.final) return false;
    // A partial behind a line already shown, or of a line already finished, would bring old words
    // back; its line's final words are on their way.
    if (this._lastSeq !== null && caption.seq < this._lastSeq) return true;
    return this._finalLines.has(caption.lineId);
  }

  _show(caption) {
    const previous = caption.previousSeq ?? null;
    // (Before the first line shown, a line may be from before the listener joined.)
    if (this._lastSeq !== null && caption.final && previous !== null && !this._hasShown(previous)) {
      this._missing.set(previous, this._now());
      if (this._missing.size > REMEMBERED_SEQS) this._missing.delete(this._missing.keys().next().value);
    }
    this._missing.delete(caption.seq);
    this._lastSeq = Math.max(caption.seq, this._lastSeq ?? 0);
    this._shown.add(caption.seq);
    if (this._shown.size > REMEMBERED_SEQS) {
      const forgotten = this._shown.values().next().value;
      this._shown.delete(forgotten);
      this._floor = Math.max(this._floor, forgotten);
    }
    if (caption.final) {
      // The same final words under the same lineId: the speaker sent the line again after its
      // answer was lost (decision 78). An older final of a line (the first send, late) must not
      // replace a newer one either. Its seq is taken, nothing new is shown.
      const shown = this._finalLines.get(caption.lineId);
      if (shown && (shown.text === caption.text || caption.seq < shown.seq)) return [];
      this._finalLines.delete(caption.lineId);
      this._finalLines.set(caption.lineId, { seq: caption.seq, text: caption.text });
      if (this._finalLines.size > REMEMBERED_FINAL_LINES) this._finalLines.delete(this._finalLines.keys().next().value);
    }
    return [caption];
  }
}

/**
 * The lines on screen: a caption whose `lineId` is already there replaces that line's text (the
 * final words of a line that was shown while still spoken), a late one goes in its place by seq,
 * any other is a new line at the end.
 */
export class CaptionLines {
  /** @param {{keep?: number}} [options] */
  constructor({ keep = DEFAULT_KEPT_LINES } = {}) {
    if (!(Number.isSafeInteger(keep) && keep >= 1)) throw new RangeError("keep must be an integer >= 1");
    this.keep = keep;
    /** @type {Map<string, any>} lineId -> the caption shown for it, oldest first */
    this._lines = new Map();
    /** @type {Map<string, number>} lineId -> the seq it first appeared with (its place) */
    this._placedAt = new Map();
  }

  /**
   * @param {any} caption a caption the sequencer released
   * @returns {{line: any, replaced: boolean, dropped: string[]}} `dropped`: lineIds scrolled away
   */
  apply(caption) {
    const replaced = this._lines.has(caption.lineId);
    if (!replaced && caption.late) {
      // Before the first line that appeared after it; the others keep their places. Rare (a line
      // slower than the reorder window), and at most `keep` lines: rebuilding the map is fine.
      const entries = [...this._lines];
      const at = entries.findIndex(([lineId]) => this._placedAt.get(lineId) > caption.seq);
      entries.splice(at === -1 ? entries.length : at, 0, [caption.lineId, caption]);
      this._lines = new Map(entries);
    } else {
      this._lines.set(caption.lineId, caption); // Map.set on an existing key keeps its place
    }
    if (!replaced) this._placedAt.set(caption.lineId, caption.seq);
    const dropped = [];
    while (this._lines.size > this.keep) {
      const oldest = this._lines.keys().next().value;
      this._lines.delete(oldest);
      this._placedAt.delete(oldest);
      dropped.push(oldest);
    }
    return { line: caption, replaced, dropped };
  }

  /** The lines, oldest first. */
  get lines() {
    return [...this._lines.values()];
  }

  /** The lineId of the line shown right after `lineId`, or null for the last one. */
  after(lineId) {
    let found = false;
    for (const key of this._lines.keys()) {
      if (found) return key;
      found = key === lineId;
    }
    return null;
  }

  clear() {
    this._lines.clear();
    this._placedAt.clear();
  }
}
