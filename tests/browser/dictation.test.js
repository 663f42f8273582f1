// web/dictation.js against a scripted recognizer (the browser's SpeechRecognition cannot hear in a
// test): interim words as one line with final:false, the settled words with the same lineId and
// final:true, partials thinned to the server's per-second limit, restarts after the browser ends
// a run, a blocked microphone told plainly, and no recognizer at all reported as unsupported.
import assert from "node:assert/strict";
import { test } from "node:test";

import { INTERIM_INTERVAL_MS, TEXTS, createDictation } from "../../web/dictation.js";

function scriptedScope() {
  const runs = [];
  class FakeRecognition extends EventTarget {
    constructor() {
      super();
      runs.push(this);
      this.started = false;
      this.stopped = false;
    }
    start() {
      this.started = true;
    }
    stop() {
      this.stopped = true;
      this.dispatchEvent(new Event("end"));
    }
    /** results: [[text, isFinal], ...] as the browser lists them from index 0. */
    hear(resultIndex, results) {
      const event = new Event("result");
      event.resultIndex = resultIndex;
      event.results = results.map(([transcript, isFinal]) => Object.assign([{ transcript }], { isFinal }));
      this.dispatchEvent(event);
    }
    fail(error) {
      const event = new Event("error");
      event.error = error;
      this.dispatchEvent(event);
    }
  }
  return { scope: { webkitSpeechRecognition: FakeRecognition }, runs };
}

function recorder() {
  const sent = [];
  return { sent, send: async (text, options) => sent.push({ text, ...options }) };
}

test("no recognizer: unsupported, and start does nothing", () => {
  const dictation = createDictation({ language: "en", send: async () => assert.fail("nothing to send"), scope: {} });
  assert.equal(dictation.supported, false);
  dictation.start();
  assert.equal(dictation.running, false);
});

test("interim words go out as one partial line, the settled words replace it with final:true", async () => {
  const { scope, runs } = scriptedScope();
  const { sent, send } = recorder();
  let now = 0;
  const statuses = [];
  const dictation = createDictation({ language: "en", send, scope, now: () => now, onStatus: (status) => statuses.push(status) });
  assert.equal(dictation.supported, true);
  dictation.start();
  assert.equal(runs.length, 1);
  assert.equal(runs[0].lang, "en");
  assert.equal(runs[0].interimResults, true);
  assert.equal(statuses.at(-1).text, TEXTS.listening);
  runs[0].hear(0, [["In the beg", false]]);
  now += 100;
  runs[0].hear(0, [["In the beginning", false]]); // thinned: too soon after the last partial
  now += INTERIM_INTERVAL_MS;
  runs[0].hear(0, [["In the beginning was", false]]);
  runs[0].hear(0, [[" In the beginning was the Word ", true]]);
  runs[0].hear(1, [
    ["In the beginning was the Word", true],
    ["and the Word", false],
  ]);
  now += INTERIM_INTERVAL_MS;
  runs[0].hear(1, [
    ["In the beginning was the Word", true],
    ["and the Word was with God", true],
  ]);
  await new Promise((resolve) => setImmediate(resolve));
  const first = sent[0].lineId;
  const second = sent.at(-1).lineId;
  assert.notEqual(first, second);
  assert.deepEqual(sent, [
    { text: "In the beg", final: false, lineId: first },
    { text: "In the beginning was", final: false, lineId: first },
    { text: "In the beginning was the Word", final: true, lineId: first },
    { text: "and the Word was with God", final: true, lineId: second },
  ]);
});

test("a run the browser ends is started again until the speaker stops; lineIds stay unique", async () => {
  const { scope, runs } = scriptedScope();
  const { sent, send } = recorder();
  const dictation = createDictation({ language: "es", send, scope });
  dictation.start();
  runs[0].hear(0, [["uno", true]]);
  runs[0].dispatchEvent(new Event("end"));
  assert.equal(runs.length, 2, "restarted after the browser's pause");
  runs[1].hear(0, [["dos", true]]);
  dictation.stop();
  assert.equal(runs[1].stopped, true);
  assert.equal(runs.length, 2, "not restarted after stop");
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    sent.map((line) => line.text),
    ["uno", "dos"],
  );
  assert.notEqual(sent[0].lineId, sent[1].lineId);
});

test("a blocked microphone stops dictation with a plain sentence; silence does not", () => {
  const { scope, runs } = scriptedScope();
  const statuses = [];
  const dictation = createDictation({ language: "en", send: async () => undefined, scope, onStatus: (status) => statuses.push(status) });
  dictation.start();
  runs[0].fail("no-speech");
  assert.equal(dictation.running, true);
  runs[0].fail("not-allowed");
  assert.equal(dictation.running, false);
  assert.equal(statuses.at(-1).text, TEXTS.denied);
  runs[0].dispatchEvent(new Event("end"));
  assert.equal(runs.length, 1, "no restart after a refusal");
});

test("a refused final line is reported; a refused partial is not", async () => {
  const { scope, runs } = scriptedScope();
  const statuses = [];
  const refuse = async () => {
    throw Object.assign(new Error("x"), { sentence: "Too many tries from this network in a short time." });
  };
  createDictation({ language: "en", send: refuse, scope, onStatus: (status) => statuses.push(status) }).start();
  runs[0].hear(0, [["partial", false]]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(statuses.length, 1, "only the listening status");
  runs[0].hear(0, [["final words", true]]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(statuses.at(-1).error, "send");
});
