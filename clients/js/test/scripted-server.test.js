// The client against a scripted server over real sockets (ws on port 0): the cases the real stack
// cannot be made to produce on demand (the same broadcast on both connections of a refresh, a
// heartbeat that is never acknowledged, a server that stays away).
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket, { WebSocketServer } from "ws";

import { ListenerClient, SpeakerClient, State } from "../live-translation-client.js";

/** A server whose every connection is answered by `script(socket, message, server)`. */
async function scriptedServer(script) {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => server.once("listening", resolve));
  const sockets = [];
  server.on("connection", (socket) => {
    sockets.push(socket);
    socket.on("message", (data) => script(socket, JSON.parse(String(data)), sockets));
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}/dev`,
    sockets,
    close: () => new Promise((resolve) => {
      for (const socket of server.clients) socket.terminate();
      server.close(resolve);
    }),
  };
}

const send = (socket, message) => socket.send(JSON.stringify({ timestamp: Date.now(), ...message }));

function joinAndRefreshScript(socket, message) {
  if (message.action === "joinSession") {
    send(socket, { type: "sessionJoined", sessionId: message.sessionId, targetLanguage: message.targetLanguage, sourceLanguage: "en", connectionId: "L" });
  } else if (message.action === "heartbeat") {
    send(socket, { type: "heartbeatAck" });
  } else if (message.action === "refreshConnection") {
    send(socket, { type: "connectionRefreshComplete", sessionId: message.sessionId, role: "listener", targetLanguage: message.targetLanguage });
  }
}

function until(predicate, what, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (predicate()) resolve();
      else if (Date.now() - started > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

test("a refresh delivers a broadcast that reaches both connections once, and one that reaches only the old one too", async (t) => {
  const server = await scriptedServer(joinAndRefreshScript);
  t.after(() => server.close());
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60 });
  t.after(() => listener.close());
  const states = [];
  const captions = [];
  listener.on("state", (event) => states.push(event.state));
  listener.on("caption", (event) => captions.push(event.text));
  await listener.joinSession({ sessionId: "Faithful Shepherd 427", targetLanguage: "es" });
  const [old] = server.sockets;
  send(old, { type: "connectionRefreshRequired", sessionId: "faithful-shepherd-427", role: "listener", targetLanguage: "es", message: "refresh" });
  await listener.once("refreshed");
  const [, fresh] = server.sockets;
  assert.ok(fresh, "a second connection was opened");
  // The same broadcast on both (each with its own timestamp), then one the old one still carried.
  send(fresh, { type: "caption", seq: 1, text: "uno" });
  send(old, { type: "caption", seq: 1, text: "uno", timestamp: Date.now() + 1 });
  send(old, { type: "caption", seq: 2, text: "dos" });
  send(fresh, { type: "caption", seq: 3, text: "tres" });
  await until(() => captions.length >= 3, "three captions");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(captions, ["uno", "dos", "tres"]);
  await until(() => old.readyState === WebSocket.CLOSED, "the old connection to close");
  assert.deepEqual(states, ["connecting", "connected", "live"], "no visible break");
});

test("the old connection closes only after connectionRefreshComplete", async (t) => {
  let releaseComplete;
  const completeSent = new Promise((resolve) => {
    releaseComplete = resolve;
  });
  const server = await scriptedServer((socket, message) => {
    if (message.action === "refreshConnection") {
      completeSent.then(() => joinAndRefreshScript(socket, message));
    } else joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60 });
  t.after(() => listener.close());
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  const [old] = server.sockets;
  send(old, { type: "connectionRefreshRequired", sessionId: "faithful-shepherd-427", role: "listener", targetLanguage: "es", message: "refresh" });
  await until(() => server.sockets.length === 2, "the new connection");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(old.readyState, WebSocket.OPEN, "old connection kept while the refresh is unanswered");
  releaseComplete();
  await listener.once("refreshed");
  await until(() => old.readyState === WebSocket.CLOSED, "the old connection to close");
});

test("a heartbeat that is never acknowledged counts the connection as dead and the listener rejoins", async (t) => {
  let ackHeartbeats = false;
  const joins = [];
  const server = await scriptedServer((socket, message) => {
    if (message.action === "heartbeat" && !ackHeartbeats) return;
    if (message.action === "joinSession") joins.push(message);
    joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  const listener = new ListenerClient({
    url: server.url,
    WebSocket,
    heartbeatIntervalSeconds: 0.2,
    heartbeatAckTimeoutSeconds: 0.3,
    backoff: { initialDelaySeconds: 0.05, maxDelaySeconds: 0.1 },
  });
  t.after(() => listener.close());
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "fr" });
  ackHeartbeats = false;
  const reconnecting = await listener.once("state");
  assert.equal(reconnecting.state, State.RECONNECTING);
  assert.equal(reconnecting.error.code, "CONNECTION_LOST");
  ackHeartbeats = true;
  await listener.once("reconnected");
  assert.equal(listener.state, State.LIVE);
  // No caption shown yet: the rejoin asks for every kept line (docs/clients.md, captions in order).
  assert.deepEqual(joins.at(-1), { action: "joinSession", sessionId: "faithful-shepherd-427", targetLanguage: "fr", lastSeq: 0 });
});

test("checkConnection heartbeats at once, so a connection that died while the page slept is found without waiting for the next beat", async (t) => {
  let answering = true;
  const heartbeats = [];
  const server = await scriptedServer((socket, message) => {
    if (message.action === "heartbeat") {
      heartbeats.push(server.sockets.indexOf(socket));
      if (!answering) return;
    }
    joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  // An interval no test waits out: every heartbeat here is one checkConnection sent.
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 600, heartbeatAckTimeoutSeconds: 0.3 });
  t.after(() => listener.close());
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "fr" });
  listener.checkConnection();
  await until(() => heartbeats.length === 1, "the first check's heartbeat");
  listener.checkConnection(); // right after one: nothing new to learn, the heartbeat limit is spared
  await new Promise((resolve) => setTimeout(resolve, 400));
  assert.deepEqual(heartbeats, [0]);
  assert.equal(listener.state, State.LIVE);

  answering = false; // the line died silently, as a sleeping phone's does
  await new Promise((resolve) => setTimeout(resolve, 5_000)); // past the spared moment after a beat
  listener.checkConnection();
  const reconnecting = await listener.once("state");
  assert.equal(reconnecting.state, State.RECONNECTING);
  answering = true;
  await listener.once("reconnected");
  assert.equal(server.sockets.length, 2, "rejoined on a new connection");
});

test("reconnecting waits a jittered, growing delay and gives up after the bound in the state failed", async (t) => {
  const server = await scriptedServer(joinAndRefreshScript);
  const url = server.url;
  const draws = [];
  const listener = new ListenerClient({
    url,
    WebSocket,
    heartbeatIntervalSeconds: 60,
    connectTimeoutSeconds: 1,
    backoff: { initialDelaySeconds: 0.1, maxDelaySeconds: 0.4 },
    giveUpAfterSeconds: 1.5,
    random: () => {
      draws.push(1);
      return 0.999;
    },
  });
  t.after(() => listener.close());
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  const attempts = [];
  listener.on("reconnectFailed", (event) => attempts.push({ at: Date.now(), code: event.error.code }));
  await server.close(); // the service goes away for good
  const failed = await new Promise((resolve) => listener.on("state", (event) => event.state === State.FAILED && resolve(event)));
  assert.equal(failed.error.code, "GAVE_UP");
  assert.match(failed.error.sentence, /stopped trying/);
  assert.ok(attempts.length >= 3, `several attempts before giving up (${attempts.length})`);
  assert.ok(attempts.every((attempt) => attempt.code === "CONNECTION_FAILED"));
  assert.ok(draws.length >= attempts.length - 1, "every wait after the first attempt is drawn");
});

test("a rejoin answered SESSION_NOT_FOUND ends the session instead of retrying", async (t) => {
  let sessionGone = false;
  const server = await scriptedServer((socket, message) => {
    if (message.action === "joinSession" && sessionGone) {
      send(socket, { type: "error", code: "SESSION_NOT_FOUND", message: "No active session", status: 404, requestId: "r", sessionId: message.sessionId });
    } else joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60, backoff: { initialDelaySeconds: 0.05, maxDelaySeconds: 0.1 } });
  t.after(() => listener.close());
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  sessionGone = true;
  server.sockets[0].terminate();
  const ended = await listener.once("sessionEnded");
  assert.equal(ended.sessionId, "faithful-shepherd-427");
  assert.equal(listener.state, State.ENDED);
});

const REFRESH_NOW = { type: "connectionRefreshRequired", sessionId: "faithful-shepherd-427", role: "listener", targetLanguage: "es", message: "refresh" };
const SESSION_GONE = { type: "error", code: "SESSION_NOT_FOUND", message: "No active session", status: 404, requestId: "r", sessionId: "faithful-shepherd-427" };

/** A joined listener whose refreshes are answered SESSION_NOT_FOUND, then `afterRefused(old, refused)`. */
async function listenerWhoseRefreshFindsTheSessionGone(t, afterRefused) {
  const server = await scriptedServer((socket, message, sockets) => {
    if (message.action !== "refreshConnection") return joinAndRefreshScript(socket, message);
    send(socket, SESSION_GONE);
    afterRefused(sockets[0], socket);
  });
  t.after(() => server.close());
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60, backoff: { initialDelaySeconds: 0.05, maxDelaySeconds: 0.1 } });
  t.after(() => listener.close());
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  const endings = [];
  const states = [];
  listener.on("sessionEnded", (event) => endings.push(event));
  listener.on("state", (event) => states.push(event.state));
  send(server.sockets[0], REFRESH_NOW);
  return { server, listener, endings, states };
}

test("a refresh that finds the session gone ends with the notice the old connection still brings, once", async (t) => {
  // The speaker's End reached the server just before the refresh did; its notice reaches the old
  // connection after the refresh's answer.
  const { listener, endings, states } = await listenerWhoseRefreshFindsTheSessionGone(t, (old, refused) => {
    refused.once("close", () =>
      setTimeout(() => send(old, { type: "sessionEnded", sessionId: "faithful-shepherd-427", reason: "speakerEnded", message: "." }), 200),
    );
  });
  await until(() => listener.state === State.ENDED, "the listener to end");
  await new Promise((resolve) => setTimeout(resolve, 300)); // room for a second end, if one were coming
  assert.deepEqual(endings.map((event) => [event.reason, event.text]), [["speakerEnded", "The speaker ended the session."]]);
  assert.deepEqual(states, [State.ENDED]);
});

test("a refresh that finds the session gone ends as unknown when the old connection brings no notice", async (t) => {
  const { server, listener, endings, states } = await listenerWhoseRefreshFindsTheSessionGone(t, () => {});
  await until(() => listener.state === State.ENDED, "the listener to end");
  assert.deepEqual(endings.map((event) => [event.reason, event.text]), [["unknown", "The session has ended."]]);
  assert.deepEqual(states, [State.ENDED]);
  assert.equal(server.sockets.length, 2, "no reconnect after the end");
});

test("a refresh that finds the session gone as the old connection drops ends as unknown without reconnecting", async (t) => {
  const { server, listener, endings, states } = await listenerWhoseRefreshFindsTheSessionGone(t, (old) => old.terminate());
  await until(() => listener.state === State.ENDED, "the listener to end");
  await new Promise((resolve) => setTimeout(resolve, 300)); // room for a reconnect, if one were coming
  assert.deepEqual(endings.map((event) => event.reason), ["unknown"]);
  assert.deepEqual(states, [State.ENDED]);
  assert.equal(server.sockets.length, 2, "no reconnect");
});

test("a frame without type answers the pending request as an internal error", async (t) => {
  const server = await scriptedServer((socket) => socket.send(JSON.stringify({ message: "Internal server error", connectionId: "x", requestId: "y" })));
  t.after(() => server.close());
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60 });
  t.after(() => listener.close());
  await assert.rejects(listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" }), (error) => {
    assert.equal(error.code, "INTERNAL_ERROR");
    assert.equal(error.sentence, "Something went wrong on the server.");
    return true;
  });
});

test("a token source that never answers fails the connect in the connect timeout, and a throwing one as retryable", async (t) => {
  const server = await scriptedServer(joinAndRefreshScript);
  t.after(() => server.close());
  const hanging = new SpeakerClient({ url: server.url, WebSocket, connectTimeoutSeconds: 0.3, getToken: () => new Promise(() => {}) });
  t.after(() => hanging.close());
  await assert.rejects(hanging.connect(), { code: "CONNECTION_FAILED" });
  assert.equal(server.sockets.length, 0, "no socket was opened without a token");
  const throwing = new SpeakerClient({ url: server.url, WebSocket, getToken: async () => {
    throw new TypeError("Failed to fetch");
  } });
  t.after(() => throwing.close());
  await assert.rejects(throwing.connect(), (error) => error.code === "CONNECTION_FAILED" && error.retryable === true);
});

test("a captionAccepted for a line whose request timed out does not answer the next line's request", async (t) => {
  let firstLine = null;
  const server = await scriptedServer((socket, message) => {
    if (message.action === "createSession") {
      send(socket, { type: "sessionCreated", sessionId: "faithful-shepherd-427", sourceLanguage: "en", qualityTier: "standard", connectionId: "S", expiresAt: 2_000_000_000 });
    } else if (message.action === "sendCaption" && firstLine === null) {
      firstLine = message; // its answer is lost: no answer in time
    } else if (message.action === "sendCaption") {
      // the first line's answer turns up after all, just before this line's own
      send(socket, { type: "captionAccepted", sessionId: "faithful-shepherd-427", seq: 1, lineId: firstLine.lineId, final: true });
      send(socket, { type: "captionAccepted", sessionId: "faithful-shepherd-427", seq: 2, lineId: message.lineId, final: true });
    } else joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  const speaker = new SpeakerClient({ url: server.url, WebSocket, getToken: async () => "token", heartbeatIntervalSeconds: 60, requestTimeoutSeconds: 0.5 });
  t.after(() => speaker.close());
  await speaker.createSession({ sourceLanguage: "en" });
  await assert.rejects(speaker.sendCaption("one", { lineId: "typed-a" }), { code: "REQUEST_TIMEOUT" });
  assert.equal((await speaker.sendCaption("two", { lineId: "typed-b" })).seq, 2);
});

test("a refresh or rejoin answer tells the listener how the speaker is when the notice missed it", async (t) => {
  let speakerAway = true;
  const server = await scriptedServer((socket, message) => {
    if (message.action === "refreshConnection") {
      send(socket, { type: "connectionRefreshComplete", sessionId: message.sessionId, role: "listener", targetLanguage: message.targetLanguage, ...(speakerAway ? { speakerAway } : {}) });
    } else joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  const listener = new ListenerClient({
    url: server.url,
    WebSocket,
    heartbeatIntervalSeconds: 60,
    backoff: { initialDelaySeconds: 0.05, maxDelaySeconds: 0.1 },
  });
  t.after(() => listener.close());
  const told = [];
  listener.on("speakerAway", () => told.push("away"));
  listener.on("speakerReturned", () => told.push("returned"));
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  const refresh = (socket) => send(socket, { type: "connectionRefreshRequired", sessionId: "faithful-shepherd-427", role: "listener", targetLanguage: "es", message: "refresh" });
  // WHEN the speaker dropped during a refresh, and only the answer says so
  refresh(server.sockets[0]);
  await listener.once("refreshed");
  assert.deepEqual(told, ["away"]);
  assert.equal(listener.speakerAway, true);
  // AND it came back during the next refresh
  speakerAway = false;
  refresh(server.sockets[1]);
  await listener.once("refreshed");
  assert.deepEqual(told, ["away", "returned"]);
  // AND it dropped again, and the listener's own connection drops: the rejoin's answer says so
  send(server.sockets[2], { type: "speakerAway", sessionId: "faithful-shepherd-427", reconnectGraceSeconds: 30 });
  await until(() => told.length === 3, "the speakerAway notice");
  server.sockets[2].terminate();
  await listener.once("reconnected");
  // (the scripted join answer carries no speakerAway: the speaker came back meanwhile)
  assert.deepEqual(told, ["away", "returned", "away", "returned"]);
  assert.equal(listener.speakerAway, false);
});

test("a speaker notice that came on the new connection before its refresh answer wins over the answer", async (t) => {
  const server = await scriptedServer((socket, message) => {
    if (message.action === "refreshConnection") {
      // The speaker came back after the refresh read the session: its speakerReturned (which
      // found the new seat) overtakes the answer, which still says away.
      send(socket, { type: "speakerReturned", sessionId: message.sessionId, message: "back" });
      send(socket, { type: "connectionRefreshComplete", sessionId: message.sessionId, role: "listener", targetLanguage: message.targetLanguage, speakerAway: true });
    } else joinAndRefreshScript(socket, message);
  });
  t.after(() => server.close());
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60 });
  t.after(() => listener.close());
  const told = [];
  listener.on("speakerAway", () => told.push("away"));
  listener.on("speakerReturned", () => told.push("returned"));
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  send(server.sockets[0], { type: "speakerAway", sessionId: "faithful-shepherd-427", reconnectGraceSeconds: 30 });
  await until(() => told.length === 1, "the speakerAway notice");
  send(server.sockets[0], { type: "connectionRefreshRequired", sessionId: "faithful-shepherd-427", role: "listener", targetLanguage: "es", message: "refresh" });
  await listener.once("refreshed");
  assert.deepEqual(told, ["away", "returned"]);
  assert.equal(listener.speakerAway, false);
});

test("a final line found missing just before a drop is asked for again and shown late, once", async (t) => {
  const joins = [];
  const kept = [[4, 1], [7, 4], [8, 7]];
  const server = await scriptedServer((socket, message) => {
    joinAndRefreshScript(socket, message);
    if (message.action !== "joinSession") return;
    joins.push(message);
    // The rejoin's replay: every kept final line after lastSeq.
    if (joins.length > 1) for (const [seq, previousSeq] of kept) if (seq > message.lastSeq) send(socket, { type: "caption", seq, previousSeq, lineId: `l${seq}`, text: `line ${seq}` });
  });
  t.after(() => server.close());
  const listener = new ListenerClient({
    url: server.url,
    WebSocket,
    heartbeatIntervalSeconds: 60,
    captionReorderWindowMs: 300,
    backoff: { initialDelaySeconds: 0.05, maxDelaySeconds: 0.1 },
  });
  t.after(() => listener.close());
  const shown = [];
  listener.on("caption", (caption) => shown.push([caption.seq, caption.late === true]));
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  const line = (seq, previousSeq) => send(server.sockets[0], { type: "caption", seq, previousSeq, lineId: `l${seq}`, text: `line ${seq}` });
  line(1, 0);
  line(4, 1);
  await until(() => shown.length === 2, "lines 1 and 4");
  // Line 7's invocation is slow: 8, which names it, is shown without it after the window.
  line(8, 7);
  await until(() => shown.length === 3, "line 8");
  server.sockets[0].terminate();
  await listener.once("reconnected");
  await until(() => shown.length === 4, "line 7");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(joins[1].lastSeq, 6);
  assert.deepEqual(shown, [[1, false], [4, false], [8, false], [7, true]]);
});

test("a dictated line is shown at once: it names the line before it, so the partials' gap is no reason to wait", async (t) => {
  const server = await scriptedServer(joinAndRefreshScript);
  t.after(() => server.close());
  // A reorder window far longer than the test's waits: any line held for it would time out.
  const listener = new ListenerClient({ url: server.url, WebSocket, heartbeatIntervalSeconds: 60, captionReorderWindowMs: 60_000 });
  t.after(() => listener.close());
  const shown = [];
  listener.on("caption", (caption) => shown.push(caption.seq));
  await listener.joinSession({ sessionId: "faithful-shepherd-427", targetLanguage: "es" });
  // The session's first line, then one after partial lines (2-4) this listener never gets.
  for (const [seq, previousSeq] of [[1, 0], [5, 1], [9, 5]]) send(server.sockets[0], { type: "caption", seq, previousSeq, lineId: `l${seq}`, text: `line ${seq}` });
  await until(() => shown.length === 3, "lines 1, 5 and 9");
  assert.deepEqual(shown, [1, 5, 9]);
});
