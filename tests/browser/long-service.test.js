// A 90-minute service on the local stack with the page as the only client, time-compressed: the
// speaker's token lasts 1 s (LOCAL_SPEAKER_TOKEN_SECONDS; the authorizer adds 30 s of leeway), a
// connection is asked to refresh at 36 s (CONNECTION_REFRESH_MINUTES 0.6, the 100 minutes of a
// real one) and the gateway closes idle connections after 30 s and any after 75 s (its 10-minute
// and 2-hour limits). Through all of it a speaker page types lines and two listener pages read
// them: the speaker page outlives its sign-in token through a forced refresh, its Wi-Fi drops
// (Playwright's offline mode) and it takes the session back with a fresh token, a listener's
// phone sleeps (the page frozen, as a locked phone freezes it) and wakes up. No line is lost,
// none is shown twice, and the speaker never has to sign in again or resend anything.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import WebSocket from "ws";

import { startStack } from "../../clients/js/test/support/local-stack.js";
import { LAPTOP, PHONE, browserSkipReason, launchChromium, startSessionOnPage, warmUp } from "./support.js";

const skip = browserSkipReason() ?? false;
const TOKEN_SECONDS = 1;
const AUTHORIZER_LEEWAY_SECONDS = 30; // session_manager/auth.py, CLOCK_LEEWAY_SECONDS
const PARAMETERS = {
  CONNECTION_REFRESH_MINUTES: "0.6",
  CONNECTION_WARNING_MINUTES: "1",
  HEARTBEAT_INTERVAL_SECONDS: "1",
  HEARTBEAT_TIMEOUT_SECONDS: "60",
  RATE_LIMIT_HEARTBEATS_PER_MIN: "200",
  // Short, so that a page that gave up at the grace (as the speaker page did) would show here:
  // the grace starts only once the server notices the drop, which a silent one is not.
  SPEAKER_RECONNECT_GRACE_SECONDS: "5",
};
const IDLE_TIMEOUT_SECONDS = 30;
const MAX_CONNECTION_SECONDS = 75;
const BLIP_MS = 20_000;
const SLEEP_MS = 15_000;
const PACE_MS = 1_500;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tokenOf(socketUrl) {
  return new URL(socketUrl).searchParams.get("token");
}

function expiryOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")).exp;
}

/** The status of a handshake with this token: 101 when it is accepted. */
function handshakeStatus(url, token) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
    socket.once("open", () => {
      socket.close();
      resolve(101);
    });
    socket.once("unexpected-response", (request, response) => {
      resolve(response.statusCode);
      request.destroy();
    });
    socket.once("error", (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

/** Every WebSocket the page opens, with its URL, in order. */
function socketsOf(page) {
  const sockets = [];
  page.on("websocket", (socket) => sockets.push(socket));
  return sockets;
}

const state = (page) => page.evaluate(() => document.getElementById("connection-state").dataset.state);
const waitForState = (page, expected) =>
  page.waitForFunction((wanted) => document.getElementById("connection-state").dataset.state === wanted, expected);

async function waitFor(predicate, what, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await pause(200);
  }
}

/** A refresh (or reconnect) happened: a later socket is open and the first one is closed. */
const movedOn = (sockets) => sockets.length >= 2 && sockets[0].isClosed() && !sockets.at(-1).isClosed();

describe("a service on the local stack with the page alone", { skip }, () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack({
      parameters: PARAMETERS,
      scheduleSeconds: 1,
      environment: { LOCAL_SPEAKER_TOKEN_SECONDS: String(TOKEN_SECONDS) },
      idleTimeoutSeconds: IDLE_TIMEOUT_SECONDS,
      maxConnectionSeconds: MAX_CONNECTION_SECONDS,
    });
    browser = await launchChromium();
    await warmUp(stack);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test("captions keep flowing across a token expiry, forced refreshes, a speaker's Wi-Fi drop and a sleeping phone, each line once", async () => {
    const speakerContext = await browser.newContext({ viewport: LAPTOP });
    const speaker = await speakerContext.newPage();
    const speakerSockets = socketsOf(speaker);
    const sessionId = await startSessionOnPage(speaker, stack.info.pageUrl);
    const signInToken = tokenOf(speakerSockets[0].url());
    assert.ok(expiryOf(signInToken) - Date.now() / 1000 <= TOKEN_SECONDS + 5, "the stack handed out a short-lived token");

    const listeners = {};
    for (const language of ["es", "fr"]) {
      const context = await browser.newContext({ viewport: PHONE });
      const page = await context.newPage();
      const sockets = socketsOf(page);
      await page.goto(`${stack.info.pageUrl}?session=${sessionId}`);
      await page.locator("body[data-ready=true]").waitFor();
      await page.getByLabel("Your language").selectOption(language);
      await page.getByRole("button", { name: "Join" }).click();
      await waitForState(page, "live");
      listeners[language] = { context, page, sockets };
    }

    const spoken = [];
    const say = async () => {
      const line = `Line ${spoken.length + 1} of the service`;
      spoken.push(line);
      await speaker.getByLabel("Type or paste what you say").fill(line);
      await speaker.getByLabel("Type or paste what you say").press("Enter");
    };
    const sent = () => speaker.locator("#sent-captions li").count();

    // The sign-in token expires; the forced refresh opens its connection with a fresh one.
    await waitFor(async () => {
      await say();
      await pause(PACE_MS);
      return movedOn(speakerSockets);
    }, "the speaker's forced refresh");
    assert.equal(await handshakeStatus(stack.info.websocketUrl, signInToken), 401, "by now the sign-in token is expired");
    assert.ok(tokenOf(speakerSockets[1].url()) !== signInToken, "the refresh connected with a fresh token");
    await waitFor(async () => (await sent()) === spoken.length, "every line so far accepted");

    // The speaker's Wi-Fi drops and a listener's phone sleeps, both for longer than the grace.
    const sleeper = listeners.fr;
    const lifecycle = await sleeper.context.newCDPSession(sleeper.page);
    await lifecycle.send("Page.setWebLifecycleState", { state: "frozen" });
    await speakerContext.setOffline(true);
    const offlineAt = Date.now();
    await waitForState(speaker, "reconnecting");
    for (let line = 0; line < 3; line++) await say(); // waiting in the page until it is back
    await pause(Math.max(0, offlineAt + SLEEP_MS - Date.now()));
    await lifecycle.send("Page.setWebLifecycleState", { state: "active" });
    await pause(Math.max(0, offlineAt + BLIP_MS - Date.now()));
    assert.equal(await state(speaker), "reconnecting", "still trying after the grace: the server has not noticed the drop");
    const socketsBeforeReturn = speakerSockets.length;
    await speakerContext.setOffline(false);
    await waitForState(speaker, "live");
    const reclaim = speakerSockets.slice(socketsBeforeReturn).find((socket) => !socket.isClosed());
    assert.ok(reclaim, "the session was taken back on a new connection");
    assert.ok(![signInToken, tokenOf(speakerSockets[1].url())].includes(tokenOf(reclaim.url())), "with a fresh token");

    // On until each listener was moved to a new connection too (the frozen one after it woke).
    await waitFor(async () => {
      await say();
      await pause(PACE_MS);
      return movedOn(listeners.es.sockets) && movedOn(listeners.fr.sockets);
    }, "both listeners' refreshes");
    await say();
    await waitFor(async () => (await sent()) === spoken.length, "every line accepted");

    for (const [language, { page }] of Object.entries(listeners)) {
      const expected = spoken.map((line) => `[${language}] ${line}`);
      await page.waitForFunction(
        (count) => document.querySelectorAll("#captions .caption-line").length >= count,
        expected.length,
      );
    }
    await pause(1500); // room for a duplicate to show up
    const sentLines = await speaker.locator("#sent-captions li").evaluateAll((items) => items.map((item) => ({ seq: Number(item.dataset.seq), text: item.textContent })));
    assert.deepEqual(sentLines.map(({ text }) => text), spoken.slice(-30), "the speaker's list: every line sent once, in order");
    assert.equal(await speaker.getByLabel("Type or paste what you say").inputValue(), "", "nothing came back to be sent again");
    assert.equal(await speaker.locator("#ended-view").isHidden(), true);
    for (const [language, { page }] of Object.entries(listeners)) {
      const shown = await page.evaluate(() =>
        [...document.querySelectorAll("#captions .caption-line")].map((line) => ({ seq: Number(line.dataset.seq), text: line.querySelector(".caption-text").textContent })),
      );
      assert.deepEqual(shown.map(({ text }) => text), spoken.map((line) => `[${language}] ${line}`), `${language}: every line once, in order`);
      const seqs = shown.map(({ seq }) => seq);
      assert.deepEqual(seqs.slice(-sentLines.length), sentLines.map(({ seq }) => seq), `${language}: the speaker's numbers`);
      assert.equal(await state(page), "live");
    }
    for (const context of [speakerContext, listeners.es.context, listeners.fr.context]) await context.close();
  });
});
