// The client against the real local stack (python -m local_stack run), over real sockets.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { ListenerClient, SpeakerClient, State } from "../live-translation-client.js";
import { startStack, warmUp } from "./support/local-stack.js";

// Refresh due after 1.2 s, heartbeats every second: a refresh happens within seconds.
const FAST = {
  CONNECTION_REFRESH_MINUTES: "0.02",
  CONNECTION_WARNING_MINUTES: "0.5",
  HEARTBEAT_INTERVAL_SECONDS: "1",
  RATE_LIMIT_HEARTBEATS_PER_MIN: "200",
  MAX_LISTENERS_PER_SESSION: "3",
  SPEAKER_RECONNECT_GRACE_SECONDS: "15",
};

function until(predicate, what, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = async () => {
      try {
        if (await predicate()) return resolve();
      } catch {
        // not yet
      }
      if (Date.now() - started > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

function recorder(client, ...types) {
  return recordInto([], client, ...types);
}

function recordInto(seen, client, ...types) {
  for (const type of types) client.on(type, (event) => seen.push({ type, ...event }));
  return seen;
}

async function dropFromServer(stack, connectionId) {
  const url = `${stack.info.managementEndpoint}/@connections/${encodeURIComponent(connectionId)}`;
  const response = await fetch(url, { method: "DELETE" });
  assert.equal(response.status, 204, `DELETE @connections answered ${response.status}`);
}

describe("against the local stack", () => {
  let stack;
  const clients = [];
  const speaker = (options = {}) => {
    const client = new SpeakerClient({ url: stack.info.websocketUrl, WebSocket, heartbeatIntervalSeconds: 1, getToken: () => stack.speakerToken(), ...options });
    clients.push(client);
    return client;
  };
  const listener = (options = {}) => {
    const client = new ListenerClient({ url: stack.info.websocketUrl, WebSocket, heartbeatIntervalSeconds: 1, backoff: { initialDelaySeconds: 0.2, maxDelaySeconds: 1 }, ...options });
    clients.push(client);
    return client;
  };

  before(async () => {
    stack = await startStack({ parameters: FAST, scheduleSeconds: 1 });
    await warmUp(stack);
  });
  after(async () => {
    for (const client of clients) client.close();
    await stack?.stop();
  });

  test("a speaker creates, listeners join by typed ids, the speaker sees them per language, and End reaches everyone once", async () => {
    // Heartbeats every 30 s: no refresh (each briefly counts a listener twice) during this test.
    const host = speaker({ heartbeatIntervalSeconds: 30 });
    const created = await host.createSession({ sourceLanguage: "en" });
    assert.match(created.sessionId, /^[a-z]+-[a-z]+-[1-9][0-9]{2}$/);
    assert.equal(host.state, State.LIVE);
    const spanish = listener({ heartbeatIntervalSeconds: 30 });
    const french = listener({ heartbeatIntervalSeconds: 30 });
    const [, second, number] = created.sessionId.split("-");
    await spanish.joinSession({ sessionId: ` ${created.sessionId.toUpperCase()} `, targetLanguage: "es" });
    await french.joinSession({ sessionId: `${created.sessionId.split("-")[0]} ${second}${number}`, targetLanguage: "fr" });
    await until(async () => {
      const status = await host.getSessionStatus();
      return status.languageDistribution.es === 1 && status.languageDistribution.fr === 1;
    }, "one listener per language");
    const endings = recordInto(recorder(spanish, "sessionEnded"), french, "sessionEnded");
    const ended = await host.endSession();
    assert.equal(ended.reason, "speakerEnded");
    await until(() => endings.length === 2, "both listeners told");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(endings.length, 2, "each listener told once");
    assert.ok(endings.every((event) => event.text === "The speaker ended the session."));
    assert.equal(spanish.state, State.ENDED);
  });

  test("both sides pass several forced refreshes without leaving the live state, and End still reaches the listener once", async () => {
    const host = speaker();
    const created = await host.createSession({ sourceLanguage: "en" });
    const guest = listener();
    await guest.joinSession({ sessionId: created.sessionId, targetLanguage: "de" });
    const hostStates = recorder(host, "state");
    const guestStates = recorder(guest, "state");
    const hostRefreshes = recorder(host, "refreshed");
    const guestRefreshes = recorder(guest, "refreshed");
    // The speaker keeps asking for its status straight through the switches: none may be refused.
    const statusErrors = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        await host.getSessionStatus().catch((error) => statusErrors.push(error.code));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    await until(() => hostRefreshes.length >= 2 && guestRefreshes.length >= 2, "two refreshes on each side", 40_000);
    polling = false;
    await poller;
    assert.deepEqual(statusErrors, [], "no request lost or refused across a refresh");
    assert.deepEqual(hostStates, []);
    assert.deepEqual(guestStates, []);
    assert.equal(hostRefreshes[0].role, "speaker");
    assert.ok(hostRefreshes[0].expiresAt > created.expiresAt - 1, "a speaker refresh moves the expiry");
    const status = await host.getSessionStatus(); // answered on the new connection: it is the speaker now
    assert.equal(status.sessionId, created.sessionId);
    const endings = recorder(guest, "sessionEnded");
    await host.endSession();
    await until(() => endings.length === 1, "the listener told");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(endings.length, 1);
  });

  test("a listener dropped by the server rejoins the same session and language by itself", async () => {
    const host = speaker();
    const created = await host.createSession({ sourceLanguage: "en" });
    const guest = listener({ heartbeatIntervalSeconds: 30 }); // no refresh during this test
    const joined = await guest.joinSession({ sessionId: created.sessionId, targetLanguage: "pt" });
    const states = recorder(guest, "state");
    await dropFromServer(stack, joined.connectionId);
    const rejoined = await guest.once("reconnected");
    assert.equal(rejoined.sessionId, created.sessionId);
    assert.equal(rejoined.targetLanguage, "pt");
    assert.notEqual(rejoined.connectionId, joined.connectionId);
    assert.deepEqual(states.map((event) => event.state), [State.RECONNECTING, State.LIVE]);
    assert.equal(states[0].text, "Connection lost. Reconnecting…");
    await host.endSession();
  });

  test("every error a listener can meet arrives as its code and plain sentence", async () => {
    const guest = listener();
    await assert.rejects(guest.joinSession({ sessionId: "unheard-nowhere-101", targetLanguage: "es" }), {
      code: "SESSION_NOT_FOUND",
      sentence: "No session is running with that id.",
    });
    await assert.rejects(guest.joinSession({ sessionId: "shepherd", targetLanguage: "es" }), { code: "INVALID_SESSION_ID" });
    const host = speaker();
    const created = await host.createSession({ sourceLanguage: "en" });
    await assert.rejects(guest.joinSession({ sessionId: created.sessionId, targetLanguage: "sw" }), { code: "UNSUPPORTED_LANGUAGE" });
    await assert.rejects(guest.joinSession({ sessionId: created.sessionId, targetLanguage: "ES" }), { code: "INVALID_LANGUAGE" });
    // Heartbeats every 30 s: a seat refreshing (the FAST stack asks after 1.2 s) counts twice for
    // a moment, and the third seat's join, slow on a busy machine, would find the session full.
    const seats = [0, 1, 2].map(() => listener({ heartbeatIntervalSeconds: 30 }));
    for (const seat of seats) await seat.joinSession({ sessionId: created.sessionId, targetLanguage: "es" });
    await assert.rejects(guest.joinSession({ sessionId: created.sessionId, targetLanguage: "es" }), {
      code: "SESSION_FULL",
      sentence: "This session is full.",
    });
    assert.equal(guest.state, State.CONNECTED, "a failed join leaves the connection usable");
    await host.endSession();
  });

  test("a speaker token of another user cannot take over the session", async () => {
    const host = speaker();
    const created = await host.createSession({ sourceLanguage: "en" });
    const intruder = speaker({ getToken: () => stack.speakerToken("someone-else@example.org") });
    await assert.rejects(intruder.resumeSession(created.sessionId), { code: "FORBIDDEN" });
    await host.endSession();
  });

  test("a speaker who reloads the page takes the session back from a new connection", async () => {
    const first = speaker({ heartbeatIntervalSeconds: 30 });
    const created = await first.createSession({ sourceLanguage: "en" });
    const reloaded = speaker({ heartbeatIntervalSeconds: 30 });
    const complete = await reloaded.resumeSession(created.sessionId);
    assert.equal(complete.sessionId, created.sessionId);
    assert.equal(reloaded.state, State.LIVE);
    first.close();
    await reloaded.endSession();
  });

  test("a speaker dropped within the grace reclaims the session; listeners hear away and back, a listener joining meanwhile too", async () => {
    let release = () => {};
    let held = null;
    const host = speaker({
      heartbeatIntervalSeconds: 30,
      backoff: { initialDelaySeconds: 0.2, maxDelaySeconds: 1 },
      getToken: async () => {
        await held;
        return stack.speakerToken();
      },
    });
    const created = await host.createSession({ sourceLanguage: "en" });
    const guest = listener({ heartbeatIntervalSeconds: 30 });
    await guest.joinSession({ sessionId: created.sessionId, targetLanguage: "es" });
    const notices = recorder(guest, "speakerAway", "speakerReturned");
    const hostStates = recorder(host, "state");
    held = new Promise((resolve) => {
      release = resolve;
    });
    await dropFromServer(stack, created.connectionId);
    await until(() => notices.length === 1, "speakerAway");
    assert.equal(notices[0].type, "speakerAway");
    assert.equal(guest.speakerAway, true);
    assert.equal(guest.state, State.LIVE, "the listener stays in the session");
    const late = listener({ heartbeatIntervalSeconds: 30 });
    const lateNotices = recorder(late, "speakerAway");
    const lateJoin = await late.joinSession({ sessionId: created.sessionId, targetLanguage: "fr" });
    assert.equal(lateJoin.speakerAway, true);
    assert.equal(lateNotices.length, 1, "a listener joining while the speaker is away is told so");
    release();
    await host.once("reconnected");
    await until(() => notices.length === 2, "speakerReturned");
    assert.equal(notices[1].type, "speakerReturned");
    assert.equal(guest.speakerAway, false);
    assert.deepEqual(hostStates.map((event) => event.state), [State.RECONNECTING, State.LIVE]);
    const status = await host.getSessionStatus();
    assert.equal(status.sessionId, created.sessionId);
    const endings = recordInto(recorder(guest, "sessionEnded"), late, "sessionEnded");
    await host.endSession();
    await until(() => endings.length === 2, "both listeners told of the end");
  });

  test("a speaker who stays away past the grace loses the session; listeners hear it ended", async () => {
    let offline = false; // from the drop on, the laptop never gets a token (or a network) again
    const host = speaker({
      heartbeatIntervalSeconds: 30,
      getToken: () => (offline ? new Promise(() => {}) : stack.speakerToken()),
    });
    const created = await host.createSession({ sourceLanguage: "en" });
    offline = true;
    const guest = listener({ heartbeatIntervalSeconds: 30 });
    await guest.joinSession({ sessionId: created.sessionId, targetLanguage: "es" });
    const ending = guest.once("sessionEnded");
    await dropFromServer(stack, created.connectionId);
    await guest.once("speakerAway");
    const ended = await ending;
    assert.equal(ended.reason, "speakerDisconnected");
    assert.equal(ended.text, "The speaker's connection was lost and did not come back; the session has ended.");
  });
});
