// Live dictation for the speaker through the browser's own speech recognition (SpeechRecognition,
// or webkitSpeechRecognition in Chromium-based browsers and Safari). Words still being spoken go
// out as one line with `final: false`, replaced by the same `lineId` with `final: true` when the
// browser settles them (docs/protocol.md, "Live captions"). Without speech recognition the page
// hides the control and typing works as before.

/** How often a line still being spoken may be sent again: the server allows 5 captions a second
 * per session (CAPTIONS_PER_SECOND), and the final words must never be the ones refused. */
export const INTERIM_INTERVAL_MS = 700;

export const TEXTS = Object.freeze({
  start: "Start dictation",
  stop: "Stop dictation",
  listening: "Listening… speak clearly; each sentence is sent when you pause.",
  denied: "The microphone is blocked for this page. Allow it in the browser's site settings, or type instead.",
  noSpeech: "No speech heard. Dictation is still on.",
  failed: "Dictation stopped: {error}. You can type instead.",
});

/** The browser's recognizer constructor, or null. */
export function speechRecognitionIn(scope = globalThis) {
  return scope.SpeechRecognition ?? scope.webkitSpeechRecognition ?? null;
}

/**
 * @param {{
 *   language: string,                                   // the session's source language
 *   send: (text: string, options: {final: boolean, lineId: string}) => Promise<unknown>,
 *   onStatus?: (status: {running: boolean, text: string, error?: string}) => void,
 *   scope?: typeof globalThis, now?: () => number,
 * }} options
 * @returns {{supported: boolean, running: boolean, start(): void, stop(): void}}
 */
export function createDictation({ language, send, onStatus = () => undefined, scope = globalThis, now = Date.now }) {
  const Recognition = speechRecognitionIn(scope);
  let recognizer = null;
  let running = false;
  let lineCounter = 0;
  // One lineId per result index of the current recognizer run: a result keeps its index while
  // it is interim and when it turns final.
  let lineIds = new Map();
  let lastInterimAt = -Infinity;
  let runId = `${now().toString(36)}`;

  const lineIdFor = (index) => {
    if (!lineIds.has(index)) lineIds.set(index, `dictation-${runId}-${++lineCounter}`);
    return lineIds.get(index);
  };

  function deliver(text, final, lineId) {
    const trimmed = text.trim();
    if (!trimmed) return;
    send(trimmed.slice(0, 2000), { final, lineId }).catch((error) => {
      // A refused partial is harmless (its final line follows); a refused final line is shown.
      if (final) onStatus({ running, text: error?.sentence ?? String(error), error: "send" });
    });
  }

  function onResult(event) {
    let interimText = "";
    let interimIndex = null;
    for (let index = event.resultIndex; index < event.results.length; index++) {
      const result = event.results[index];
      const text = result[0]?.transcript ?? "";
      if (result.isFinal) {
        deliver(text, true, lineIdFor(index));
      } else {
        interimText += text;
        interimIndex ??= index;
      }
    }
    if (interimIndex !== null && now() - lastInterimAt >= INTERIM_INTERVAL_MS) {
      lastInterimAt = now();
      deliver(interimText, false, lineIdFor(interimIndex));
    }
  }

  function begin() {
    recognizer = new Recognition();
    recognizer.lang = language;
    recognizer.continuous = true;
    recognizer.interimResults = true;
    recognizer.maxAlternatives = 1;
    lineIds = new Map();
    runId = now().toString(36);
    recognizer.addEventListener("result", onResult);
    recognizer.addEventListener("error", (event) => {
      if (event.error === "no-speech" || event.error === "aborted") {
        if (event.error === "no-speech") onStatus({ running, text: TEXTS.noSpeech });
        return;
      }
      running = false;
      const denied = event.error === "not-allowed" || event.error === "service-not-allowed";
      onStatus({ running, text: denied ? TEXTS.denied : TEXTS.failed.replace("{error}", event.error), error: event.error });
    });
    // Browsers end a run after a pause or a minute; dictation stays on until the speaker stops it.
    recognizer.addEventListener("end", () => {
      if (running) begin();
    });
    recognizer.start();
  }

  return {
    supported: Recognition !== null,
    get running() {
      return running;
    },
    start() {
      if (!Recognition || running) return;
      running = true;
      try {
        begin();
        onStatus({ running, text: TEXTS.listening });
      } catch (error) {
        running = false;
        onStatus({ running, text: TEXTS.failed.replace("{error}", String(error?.message ?? error)), error: "start" });
      }
    },
    stop() {
      if (!running) return;
      running = false;
      recognizer?.stop();
      onStatus({ running, text: "" });
    },
  };
}
