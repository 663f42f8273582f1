// The client's pure rules: ids, backoff, the plain-sentence table.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import WebSocket from "ws";

import {
  ClientError,
  describeError,
  ErrorCode,
  ListenerClient,
  MESSAGES,
  normalizeSessionId,
  backoffDelayMs,
  SpeakerClient,
  State,
} from "../live-translation-client.js";

test("a typed id is forgiven its case, spaces, underscores and a missing hyphen", () => {
  for (const typed of [
    "faithful-shepherd-427",
    " Faithful-Shepherd-427 ",
    "FAITHFUL SHEPHERD 427",
    "faithful-shepherd427",
    "faithful shepherd-427",
    "Faithful_Shepherd_427",
    "faithful--shepherd--427",
  ]) {
    assert.equal(normalizeSessionId(typed), "faithful-shepherd-427", typed);
  }
});

test("text that cannot be an id is null", () => {
  for (const typed of ["", "   ", "shepherd427", "faithful-shepherd-42", "faithful-shepherd-042", "a-b-c-427", "faithful-shepherd-4270", null]) {
    assert.equal(normalizeSessionId(typed), null, String(typed));
  }
});

test("backoff is full jitter under an exponential ceiling that stops at the cap", () => {
  const backoff = { initialDelaySeconds: 1, maxDelaySeconds: 30 };
  assert.equal(backoffDelayMs(0, backoff, () => 0), 0);
  assert.equal(backoffDelayMs(0, backoff, () => 0.5), 500);
  assert.equal(backoffDelayMs(3, backoff, () => 0.5), 4000);
  assert.equal(backoffDelayMs(10, backoff, () => 0.5), 15000);
  assert.ok(backoffDelayMs(10, backoff, () => 0.999999) < 30000);
});

test("many clients dropped at once spread their first retries over the whole window", () => {
  const delays = Array.from({ length: 500 }, () => backoffDelayMs(4, { initialDelaySeconds: 1, maxDelaySeconds: 30 }));
  const seconds = new Set(delays.map((ms) => Math.floor(ms / 1000)));
  assert.equal(seconds.size, 16, "500 phones use every second of the 16-second window");
});

test("every error code has a plain sentence and a next step", () => {
  for (const code of Object.values(ErrorCode)) {
    const entry = MESSAGES.errors[code];
    assert.ok(entry, code);
    assert.match(entry.sentence, /^[A-Z].*\.$/, code);
    assert.match(entry.next, /^[A-Z].*\.$/, code);
    assert.doesNotMatch(entry.sentence, /[A-Z]{2,}_[A-Z]+/, `${code} reads as words, not a code`);
  }
  for (const state of Object.values(State)) assert.ok(MESSAGES.states[state], state);
});

test("retryAfter is filled into the next step", () => {
  assert.equal(describeError({ code: "RATE_LIMIT_EXCEEDED", retryAfter: 37 }).next, "Wait 37 seconds, then try again.");
  const error = new ClientError("RATE_LIMIT_EXCEEDED", { retryAfter: 5 });
  assert.equal(error.next, "Wait 5 seconds, then try again.");
  assert.equal(error.retryable, true);
});

test("an unknown code reads as an internal error, never as nothing", () => {
  assert.equal(describeError("NOT_A_CODE").sentence, MESSAGES.errors.INTERNAL_ERROR.sentence);
});

test("a translated table replaces every text", () => {
  const spanish = structuredClone(MESSAGES);
  spanish.errors.SESSION_FULL = { sentence: "Esta sesión está llena.", next: "Inténtelo de nuevo en unos minutos." };
  const error = new ClientError("SESSION_FULL", { messages: spanish });
  assert.equal(error.sentence, "Esta sesión está llena.");
  assert.equal(error.message, "Esta sesión está llena.");
});

test("the page's vendored QR encoder is the pinned npm package, unchanged", () => {
  const pinned = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url))).devDependencies["qrcode-generator"];
  const vendored = readFileSync(new URL(`../../../web/vendor/qrcode-generator-${pinned}.mjs`, import.meta.url), "utf8");
  const installed = readFileSync(new URL("../../../node_modules/qrcode-generator/dist/qrcode.mjs", import.meta.url), "utf8");
  assert.ok(vendored === installed, `web/vendor/qrcode-generator-${pinned}.mjs differs from node_modules: copy it again`);
});

test("bad options fail at construction with a sentence naming them", () => {
  assert.throws(() => new ListenerClient({ url: "http://x", WebSocket }), /ws:\/\/ or wss:\/\//);
  if (typeof globalThis.WebSocket !== "function") {
    assert.throws(() => new ListenerClient({ url: "ws://127.0.0.1:1/dev", WebSocket: undefined }), /pass options.WebSocket/);
  }
  assert.throws(() => new SpeakerClient({ url: "ws://127.0.0.1:1/dev", WebSocket }), /getToken/);
});
