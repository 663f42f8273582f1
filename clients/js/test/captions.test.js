// Captions through the JavaScript client against the real local stack (its Translate emulator
// marks each line with its language: `[es] ...`): each listener gets exactly its language's lines
// in seq order, once, through a cut network and a rejoin, and through forced refreshes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { ListenerClient, SpeakerClient, State } from "../live-translation-client.js";
import { startStack, warmUp } from "./support/local-stack.js";

const PARAMETERS = {
  HEARTBEAT_INTERVAL_SECONDS: "1",
  HEARTBEAT_TIMEOUT_SECONDS: "60",
  RATE_LIMIT_HEARTBEATS_PER_MIN: "200",
  CAPTIONS_PER_SECOND: "50",
};

function until(predicate, what, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

/**
 * A WebSocket whose network can be cut, as a phone's is: while cut, nothing arrives on an open
 * socket (the server still sends, and those lines are lost) and a new one cannot connect.
 */
function cuttableNetwork() {
  const network = { cut: false, refusedConnects: 0 };
  network.WebSocket = class extends WebSocket {
    constructor(url) {
      if (network.cut) network.refusedConnects++;
      super(network.cut ? "ws://127.0.0.1:9/" : url);
    }
    addEventListener(type, listener, options) {
      if (type !== "message") return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => network.cut || listener(event), options);
    }
  };
  return network;
}

function captionsOf(client) {
  const shown = [];
  client.on("caption", (caption) => shown.push(caption));
  return shown;
}

describe("captions against the local stack", () => {
  let stack;
  const clients = [];
  const options = { WebSocket, heartbeatIntervalSeconds: 1, connectTimeoutSeconds: 60, requestTimeoutSeconds: 60 };
  const speaker = (extra = {}) => {
    const client = new SpeakerClient({ url: stack.info.websocketUrl, getToken: () => stack.speakerToken(), ...options, heartbeatAckTimeoutSeconds: 60, ...extra });
    clients.push(client);
    return client;
  };
  const listener = (extra = {}) => {
    const client = new ListenerClient({ url: stack.info.websocketUrl, ...options, heartbeatAckTimeoutSeconds: 60, backoff: { initialDelaySeconds: 0.2, maxDelaySeconds: 1 }, ...extra });
    clients.push(client);
    return client;
  };

  before(async () => {
    stack = await startStack({ parameters: PARAMETERS });
    await warmUp(stack);
  });
  after(async () => {
    for (const client of clients) client.close();
    await stack?.stop();
  });

  test("each language gets its lines in seq order; the source language also the words still being spoken", async () => {
    const host = speaker();
    const { sessionId } = await host.createSession({ sourceLanguage: "en" });
    const english = listener();
    const spanish = listener();
    const french = listener();
    await english.joinSession({ sessionId, targetLanguage: "en" });
    await spanish.joinSession({ sessionId, targetLanguage: "es" });
    await french.joinSession({ sessionId, targetLanguage: "fr" });
    const [englishShown, spanishShown, frenchShown] = [english, spanish, french].map(captionsOf);

    const partial = await host.sendCaption("In the beg", { final: false, lineId: "l1" });
    const line = await host.sendCaption("In the beginning was the Word", { lineId: "l1" });
    const second = await host.sendCaption("and the Word was with God");
    assert.deepEqual(
      [partial, line, second].map(({ type, seq, final }) => [type, seq, final]),
      [
        ["captionAccepted", 1, false],
        ["captionAccepted", 2, true],
        ["captionAccepted", 3, true],
      ],
    );
    assert.equal(second.lineId, "line-3", "the server's default lineId");

    await until(() => englishShown.length === 3 && spanishShown.length === 2 && frenchShown.length === 2, "every listener's lines");
    assert.deepEqual(
      englishShown.map(({ seq, lineId, text, final }) => [seq, lineId, text, final]),
      [
        [1, "l1", "In the beg", false],
        [2, "l1", "In the beginning was the Word", true],
        [3, "line-3", "and the Word was with God", true],
      ],
    );
    assert.deepEqual(
      spanishShown.map(({ seq, language, text }) => [seq, language, text]),
      [
        [2, "es", "[es] In the beginning was the Word"],
        [3, "es", "[es] and the Word was with God"],
      ],
    );
    assert.deepEqual(
      frenchShown.map(({ seq, text, sessionId: shownIn }) => [seq, text, shownIn]),
      [
        [2, "[fr] In the beginning was the Word", sessionId],
        [3, "[fr] and the Word was with God", sessionId],
      ],
    );
    assert.equal(spanish.lastSeq, 3);
    await host.endSession();
  });

  test("a listener whose network is cut rejoins by itself and gets every missed line once, in order", async () => {
    const host = speaker();
    const { sessionId } = await host.createSession({ sourceLanguage: "en" });
    const network = cuttableNetwork();
    const phone = listener({ WebSocket: network.WebSocket, heartbeatAckTimeoutSeconds: 2 });
    await phone.joinSession({ sessionId, targetLanguage: "es" });
    const shown = captionsOf(phone);
    const sent = [];
    for (const text of ["one", "two"]) sent.push(await host.sendCaption(text));
    await until(() => shown.length === 2, "the lines before the cut");

    network.cut = true;
    for (const text of ["three", "four", "five"]) sent.push(await host.sendCaption(text));
    await until(() => phone.state === State.RECONNECTING, "the cut noticed (heartbeat not acknowledged)");
    sent.push(await host.sendCaption("six"));
    await until(() => network.refusedConnects >= 1, "a reconnect tried while the network is still cut");
    assert.equal(shown.length, 2, "nothing arrived while cut");

    network.cut = false;
    await until(() => phone.state === State.LIVE, "the rejoin");
    sent.push(await host.sendCaption("seven"));
    await until(() => shown.length >= 7, "the missed lines and the live one");
    await new Promise((resolve) => setTimeout(resolve, 1500)); // room for a duplicate to show up
    assert.deepEqual(
      shown.map(({ seq, text }) => [seq, text]),
      sent.map(({ seq }, index) => [seq, `[es] ${["one", "two", "three", "four", "five", "six", "seven"][index]}`]),
    );
    assert.equal(phone.lastSeq, sent.at(-1).seq);
    await host.endSession();
  });

  test("a new client for the same seat resumes from the lastSeq it is given", async () => {
    const host = speaker();
    const { sessionId } = await host.createSession({ sourceLanguage: "en" });
    const before = listener();
    await before.joinSession({ sessionId, targetLanguage: "de" });
    const beforeShown = captionsOf(before);
    for (const text of ["a", "b"]) await host.sendCaption(text);
    await until(() => beforeShown.length === 2, "the first lines");
    const lastSeq = before.lastSeq;
    before.close(); // a page reload
    for (const text of ["c", "d"]) await host.sendCaption(text);

    const after = listener();
    const afterShown = captionsOf(after);
    await after.joinSession({ sessionId, targetLanguage: "de", lastSeq });
    await until(() => afterShown.length === 2, "the lines missed during the reload");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(
      afterShown.map(({ text }) => text),
      ["[de] c", "[de] d"],
    );
    await assert.rejects(after.joinSession({ sessionId, targetLanguage: "de", lastSeq: -1 }), TypeError);
    await host.endSession();
  });

  test("sendCaption from a speaker without a live session, or with bad arguments, is refused plainly", async () => {
    const host = speaker();
    await assert.rejects(host.sendCaption(42), TypeError);
    await assert.rejects(host.sendCaption("x", { final: "yes" }), TypeError);
    await host.createSession({ sourceLanguage: "en" });
    await assert.rejects(host.sendCaption("   "), (error) => error.code === "INVALID_PARAMETERS" && error.details?.field === "text");
    await host.endSession();
    await assert.rejects(host.sendCaption("after the end"), (error) => error.code === "SESSION_ENDED");
  });
});

describe("captions through forced refreshes", () => {
  let stack;
  const clients = [];

  before(async () => {
    // A refresh due 1.2 s after each connection opens: several during the test.
    stack = await startStack({ parameters: { ...PARAMETERS, CONNECTION_REFRESH_MINUTES: "0.02", CONNECTION_WARNING_MINUTES: "0.5" } });
    await warmUp(stack);
  });
  after(async () => {
    for (const client of clients) client.close();
    await stack?.stop();
  });

  test("lines sent across make-before-break refreshes on both sides arrive once each, in order", async () => {
    const common = { WebSocket, heartbeatIntervalSeconds: 1, heartbeatAckTimeoutSeconds: 60, connectTimeoutSeconds: 60, requestTimeoutSeconds: 60 };
    const host = new SpeakerClient({ url: stack.info.websocketUrl, getToken: () => stack.speakerToken(), ...common });
    const phone = new ListenerClient({ url: stack.info.websocketUrl, ...common });
    clients.push(host, phone);
    let refreshes = 0;
    phone.on("refreshed", () => refreshes++);
    const { sessionId } = await host.createSession({ sourceLanguage: "en" });
    await phone.joinSession({ sessionId, targetLanguage: "pt" });
    const shown = captionsOf(phone);
    const sent = [];
    for (let line = 1; refreshes < 2 || line <= 12; line++) {
      assert.ok(line < 400, "two listener refreshes while lines were sent");
      sent.push(await host.sendCaption(`line ${line}`));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await until(() => shown.length >= sent.length, "every line");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(
      shown.map(({ seq }) => seq),
      sent.map(({ seq }) => seq),
    );
    assert.deepEqual(
      shown.map(({ text }) => text),
      sent.map((_, index) => `[pt] line ${index + 1}`),
    );
  });
});
