// The seat this tab listens from, kept in sessionStorage so that a reload (or a phone browser that
// discarded the tab and reloads it) takes it back where it was: the session, the language, the
// last caption shown (the rejoin's `lastSeq`, so the server replays exactly the missed lines) and
// the lines on screen (so the view is not empty while it rejoins). Per tab on purpose: another tab
// or next Sunday starts fresh; only the language is remembered beyond the tab (listener.js).

const SEAT_KEY = "liveTranslation.listenerSeat";

/**
 * @typedef {{sessionId: string, targetLanguage: string, sourceLanguage: string, lastSeq: number | null, lines: object[]}} Seat
 */

function isCaption(line) {
  return (
    line !== null &&
    typeof line === "object" &&
    Number.isSafeInteger(line.seq) &&
    line.seq >= 1 &&
    typeof line.lineId === "string" &&
    typeof line.text === "string"
  );
}

/** @returns {Seat | null} the stored seat, or null (none, blocked storage, or not one we wrote) */
export function storedSeat(storage = globalThis.sessionStorage) {
  let seat;
  try {
    seat = JSON.parse(storage?.getItem(SEAT_KEY) ?? "null");
  } catch {
    return null;
  }
  if (seat === null || typeof seat !== "object") return null;
  const { sessionId, targetLanguage, sourceLanguage, lastSeq, lines } = seat;
  if (typeof sessionId !== "string" || typeof targetLanguage !== "string") return null;
  if (lastSeq !== null && !(Number.isSafeInteger(lastSeq) && lastSeq >= 0)) return null;
  if (!Array.isArray(lines) || !lines.every(isCaption)) return null;
  return { sessionId, targetLanguage, sourceLanguage: typeof sourceLanguage === "string" ? sourceLanguage : "", lastSeq, lines };
}

/** @param {Seat} seat */
export function keepSeat(seat, storage = globalThis.sessionStorage) {
  try {
    storage?.setItem(SEAT_KEY, JSON.stringify(seat));
  } catch {
    // storage blocked or full: a reload then starts at the join view, nothing else changes
  }
}

export function forgetSeat(storage = globalThis.sessionStorage) {
  try {
    storage?.removeItem(SEAT_KEY);
  } catch {
    // storage blocked
  }
}
