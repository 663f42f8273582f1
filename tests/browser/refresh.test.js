// The page through forced connection refreshes (CONNECTION_REFRESH_MINUTES in seconds, from an
// ENV_VARS file), and a listener rate limited for failed joins. Its own stack: both change limits.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { startStack } from "../../clients/js/test/support/local-stack.js";
import { DESKTOP, PHONE, browserSkipReason, launchChromium, warmUp } from "./support.js";

const skip = browserSkipReason() ?? false;
const FAILED_JOINS_PER_MINUTE = 3;
const PARAMETERS = {
  CONNECTION_REFRESH_MINUTES: "0.05", // due 3 s after each connection opens
  CONNECTION_WARNING_MINUTES: "0.5",
  HEARTBEAT_INTERVAL_SECONDS: "1",
  HEARTBEAT_TIMEOUT_SECONDS: "60",
  RATE_LIMIT_HEARTBEATS_PER_MIN: "200",
  RATE_LIMIT_FAILED_JOINS_PER_MIN: String(FAILED_JOINS_PER_MINUTE),
};

/** Counts the page's WebSockets and records every text its connection badge shows. */
async function watch(page) {
  const sockets = [];
  page.on("websocket", (socket) => sockets.push(socket));
  await page.evaluate(() => {
    globalThis.badgeTexts = [];
    globalThis.viewChanges = 0;
    const badge = document.getElementById("connection-state");
    new MutationObserver(() => globalThis.badgeTexts.push(badge.textContent)).observe(badge, { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => globalThis.viewChanges++).observe(document.querySelector("main"), { attributes: true, subtree: true, attributeFilter: ["hidden"] });
  });
  return {
    sockets,
    seen: () => page.evaluate(() => ({ badgeTexts: globalThis.badgeTexts, viewChanges: globalThis.viewChanges })),
  };
}

describe("the page across refreshes", { skip }, () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack({ parameters: PARAMETERS, scheduleSeconds: 1 });
    browser = await launchChromium();
    await warmUp(stack);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test("forced refreshes pass on both sides without a visible break, and End still reaches the listener", async () => {
    const speaker = await (await browser.newContext({ viewport: DESKTOP })).newPage();
    await speaker.goto(new URL("speaker.html", stack.info.pageUrl).href);
    await speaker.getByRole("button", { name: "Sign in as the demo speaker" }).click();
    await speaker.getByRole("button", { name: "Start session" }).click();
    await speaker.locator("#session-id").filter({ hasText: /^[a-z]+-[a-z]+-[1-9][0-9]{2}$/ }).waitFor({ timeout: 60_000 });
    const sessionId = await speaker.locator("#session-id").textContent();
    const listener = await (await browser.newContext({ viewport: PHONE })).newPage();
    await listener.goto(`${stack.info.pageUrl}?session=${sessionId}`);
    await listener.getByLabel("Your language").selectOption("es");
    await listener.getByRole("button", { name: "Join" }).click();
    await listener.getByText(`Session ${sessionId}, in Español.`).waitFor();
    const speakerWatch = await watch(speaker);
    const listenerWatch = await watch(listener);
    // Two refreshes each: a third socket opened and the second one closed again.
    for (const { sockets } of [speakerWatch, listenerWatch]) {
      const deadline = Date.now() + 60_000;
      while (!(sockets.length >= 2 && sockets[0].isClosed() && sockets[1].isClosed())) {
        assert.ok(Date.now() < deadline, `two refreshes within a minute (saw ${sockets.length} new sockets)`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    assert.deepEqual(await speakerWatch.seen(), { badgeTexts: [], viewChanges: 0 }, "the speaker saw no break");
    assert.deepEqual(await listenerWatch.seen(), { badgeTexts: [], viewChanges: 0 }, "the listener saw no break");
    assert.equal(await listener.locator("#error").isHidden(), true);
    assert.equal(await speaker.locator("#session-id").textContent(), sessionId);
    await speaker.getByRole("button", { name: "End session" }).click();
    await speaker.getByRole("button", { name: "End for everyone" }).click();
    await listener.getByText("The speaker ended the session.").waitFor();
    await speaker.context().close();
    await listener.context().close();
  });

  test("a listener over the failed-join limit reads the rate-limit sentence with the wait", async () => {
    const listener = await (await browser.newContext({ viewport: PHONE })).newPage();
    await listener.goto(stack.info.pageUrl);
    await listener.locator("body[data-ready=true]").waitFor();
    // Limits count in clock minutes: a boundary between two tries starts the count again, so
    // keep trying (bounded) until the limit answers; every try before it is "no such session".
    // (The previous test's refreshes racing its End may have counted as failed joins already.)
    const sentences = [];
    for (let attempt = 0; attempt < 3 * FAILED_JOINS_PER_MINUTE + 1; attempt++) {
      await listener.getByLabel("Session id").fill(`unheard-nowhere-${101 + attempt}`);
      await listener.getByRole("button", { name: "Join" }).click();
      await listener.getByRole("alert").waitFor();
      sentences.push(await listener.locator("#error-sentence").textContent());
      if (sentences.at(-1) !== "No session is running with that id.") break;
      await listener.evaluate(() => {
        document.getElementById("error").hidden = true;
      });
    }
    assert.equal(sentences.at(-1), "Too many tries from this network in a short time.", sentences.join(" | "));
    assert.match(await listener.locator("#error-next").textContent(), /^Wait \d+ seconds, then try again\.$/);
    await listener.context().close();
  });
});
