// The page in real Chromium against the local stack: the speaker and listener views end to end.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import qrcode from "qrcode-generator";
import WebSocket from "ws";

import { ListenerClient } from "../../clients/js/live-translation-client.js";
import { startStack } from "../../clients/js/test/support/local-stack.js";
import { DESKTOP, NARROW_PHONE, PHONE, accessibilityViolations, browserSkipReason, launchChromium, screenshot, startSessionOnPage, warmUp } from "./support.js";

const skip = browserSkipReason() ?? false;
const CAPACITY = 4;
// Heartbeats every second: a cut line is noticed in two.
const PARAMETERS = {
  HEARTBEAT_INTERVAL_SECONDS: "1",
  HEARTBEAT_TIMEOUT_SECONDS: "60",
  RATE_LIMIT_HEARTBEATS_PER_MIN: "200",
  MAX_LISTENERS_PER_SESSION: String(CAPACITY),
  SPEAKER_RECONNECT_GRACE_SECONDS: "20",
};

async function signInAndCreate(browser, { viewport = DESKTOP, sourceLanguage = "en" } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const connectionIds = [];
  page.on("websocket", (socket) =>
    socket.on("framereceived", ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type === "sessionCreated") connectionIds.push(message.connectionId);
    }),
  );
  return { context, page, connectionIds, sessionId: await startSessionOnPage(page, stackPageUrl(), sourceLanguage) };
}

let currentPageUrl;
const stackPageUrl = () => currentPageUrl;

async function listenerPage(browser, url, { viewport = PHONE, reducedMotion = "no-preference" } = {}) {
  const context = await browser.newContext({ viewport, reducedMotion });
  const page = await context.newPage();
  await page.goto(url);
  await page.locator("body[data-ready=true]").waitFor();
  return { context, page };
}

async function joinByTyping(page, typed, language) {
  await page.getByLabel("Session id").fill(typed);
  await page.getByLabel("Your language").selectOption(language);
  await page.getByRole("button", { name: "Join" }).click();
}

const badge = (page) => page.locator("#connection-state");

/** Every text the connection badge shows from now on, as the page's own observer saw it. */
async function recordBadge(page) {
  await page.evaluate(() => {
    globalThis.badgeTexts = [];
    const target = document.getElementById("connection-state");
    new MutationObserver(() => globalThis.badgeTexts.push(target.textContent)).observe(target, { childList: true, characterData: true, subtree: true });
  });
  return () => page.evaluate(() => globalThis.badgeTexts);
}

async function counts(page) {
  return page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#listener-counts li")].map((item) => [item.dataset.language, Number(item.querySelector("strong").textContent)])),
  );
}

describe("the page", { skip }, () => {
  let stack;
  let browser;
  const nodeClients = [];

  before(async () => {
    stack = await startStack({ parameters: PARAMETERS, scheduleSeconds: 1 });
    currentPageUrl = stack.info.pageUrl;
    browser = await launchChromium();
    await warmUp(stack);
  });
  after(async () => {
    for (const client of nodeClients) client.close();
    await browser?.close();
    await stack?.stop();
  });

  test("a speaker creates a session; listeners join by the QR link and by typed ids; counts per language follow; End reaches everyone", async () => {
    const speaker = await signInAndCreate(browser);
    const link = await speaker.page.locator("#short-link").getAttribute("href");
    assert.equal(link, new URL(`?session=${speaker.sessionId}`, stack.info.pageUrl).href);
    const expectedQr = qrcode(0, "M");
    expectedQr.addData(link);
    expectedQr.make();
    const shownModules = await speaker.page.locator("#qr svg path").getAttribute("d");
    const expectedModules = /<path d="([^"]+)"/.exec(expectedQr.createSvgTag({ cellSize: 6, margin: 2, scalable: true }))[1];
    assert.ok(shownModules === expectedModules, "the QR code encodes the link");

    const byQr = await listenerPage(browser, link);
    assert.equal(await byQr.page.getByLabel("Session id").inputValue(), speaker.sessionId, "the link fills the id in");
    await byQr.page.getByLabel("Your language").selectOption("es");
    await byQr.page.getByRole("button", { name: "Join" }).click();
    await byQr.page.getByText(`Session ${speaker.sessionId}, in Español.`).waitFor();
    await assert.doesNotReject(speaker.page.waitForFunction(() => document.querySelector("#listener-counts li[data-language=es] strong")?.textContent === "1"));

    const lower = await listenerPage(browser, stack.info.pageUrl);
    await joinByTyping(lower.page, speaker.sessionId, "es");
    const upper = await listenerPage(browser, stack.info.pageUrl, { viewport: NARROW_PHONE });
    await joinByTyping(upper.page, ` ${speaker.sessionId.toUpperCase().replace(/-/g, " ")} `, "fr");
    await upper.page.getByText(`Session ${speaker.sessionId}, in Français.`).waitFor();
    await speaker.page.waitForFunction(() => document.getElementById("listener-total").textContent === "3");
    assert.deepEqual(await counts(speaker.page), { es: 2, fr: 1 });
    assert.equal(await speaker.page.locator("#listener-counts li[data-language=fr] span").textContent(), "Français");

    await upper.page.getByRole("button", { name: "Leave" }).click();
    await speaker.page.waitForFunction(() => document.getElementById("listener-total").textContent === "2");
    assert.deepEqual(await counts(speaker.page), { es: 2 });

    await screenshot(speaker.page, "speaker-desktop");
    await speaker.page.setViewportSize(PHONE);
    await screenshot(speaker.page, "speaker-phone");
    await screenshot(byQr.page, "listener-phone");
    await byQr.page.setViewportSize(DESKTOP);
    await screenshot(byQr.page, "listener-desktop");

    await speaker.page.getByRole("button", { name: "End session" }).click();
    const dialog = speaker.page.getByRole("dialog", { name: "End the session for everyone?" });
    await dialog.waitFor();
    await dialog.getByRole("button", { name: "Keep going" }).click();
    assert.equal(await speaker.page.locator("#live-view").isVisible(), true, "Keep going keeps the session");
    await speaker.page.getByRole("button", { name: "End session" }).click();
    await dialog.getByRole("button", { name: "End for everyone" }).click();
    await speaker.page.getByText("The speaker ended the session.").waitFor();
    for (const listener of [byQr, lower]) {
      await listener.page.getByRole("heading", { name: "The session has ended" }).waitFor();
      assert.equal(await listener.page.locator("#ended-reason").textContent(), "The speaker ended the session.");
      assert.equal(await badge(listener.page).textContent(), "The session has ended");
    }
    await screenshot(lower.page, "listener-ended-phone");
    for (const context of [speaker.context, byQr.context, lower.context, upper.context]) await context.close();
  });

  test("every view is usable at 320 px, by keyboard alone, with no serious or critical accessibility violation", async () => {
    const speaker = await signInAndCreate(browser, { viewport: NARROW_PHONE });
    const listener = await listenerPage(browser, stack.info.pageUrl, { viewport: NARROW_PHONE, reducedMotion: "reduce" });
    const problems = { listenerJoin: await accessibilityViolations(listener.page) };
    // Keyboard only: the id box has focus on arrival; Tab to the language, arrows, Enter.
    await listener.page.keyboard.type(speaker.sessionId.toUpperCase());
    await listener.page.keyboard.press("Tab");
    assert.equal(await listener.page.evaluate(() => document.activeElement.id), "language");
    await listener.page.getByLabel("Your language").selectOption("de"); // picking an option by keys is the browser's own widget
    await listener.page.keyboard.press("Tab");
    assert.equal(await listener.page.evaluate(() => document.activeElement.id), "join-button");
    await listener.page.keyboard.press("Enter");
    await listener.page.getByText(`Session ${speaker.sessionId}, in Deutsch.`).waitFor();
    problems.listenerListening = await accessibilityViolations(listener.page);
    problems.speakerLive = await accessibilityViolations(speaker.page);
    for (const page of [speaker.page, listener.page]) {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.equal(overflow, 0, `no sideways scrolling at 320 px on ${page.url()}`);
    }
    const animation = await badge(listener.page).evaluate((element) => getComputedStyle(element, "::before").animationName);
    assert.equal(animation, "none", "reduced motion: nothing pulses");
    await speaker.page.getByRole("button", { name: "End session" }).focus();
    await speaker.page.keyboard.press("Enter");
    problems.speakerDialog = await accessibilityViolations(speaker.page);
    await speaker.page.keyboard.press("Tab"); // from "Keep going" (autofocus) to "End for everyone"
    await speaker.page.keyboard.press("Enter");
    await listener.page.getByRole("heading", { name: "The session has ended" }).waitFor();
    problems.listenerEnded = await accessibilityViolations(listener.page);
    const fresh = await (await browser.newContext({ viewport: NARROW_PHONE })).newPage();
    await fresh.goto(new URL("speaker.html", stack.info.pageUrl).href);
    await fresh.locator("body[data-ready=true]").waitFor();
    problems.speakerSignIn = await accessibilityViolations(fresh);
    assert.deepEqual(problems, { listenerJoin: [], listenerListening: [], speakerLive: [], speakerDialog: [], listenerEnded: [], speakerSignIn: [] });
    await fresh.context().close();
    await speaker.context.close();
    await listener.context.close();
  });

  test("a listener whose network is cut rejoins by itself when it comes back", async () => {
    const speaker = await signInAndCreate(browser);
    const listener = await listenerPage(browser, stack.info.pageUrl);
    await joinByTyping(listener.page, speaker.sessionId, "it");
    await listener.page.getByText(`Session ${speaker.sessionId}, in Italiano.`).waitFor();
    const badgeTexts = await recordBadge(listener.page);
    await listener.context.setOffline(true);
    await listener.page.waitForFunction(() => document.getElementById("connection-state").dataset.state === "reconnecting");
    assert.match(await badge(listener.page).textContent(), /offline|Reconnecting/);
    await listener.context.setOffline(false);
    await listener.page.waitForFunction(() => document.getElementById("connection-state").dataset.state === "live", null, { timeout: 30_000 });
    assert.equal(await listener.page.locator("#listening-view").isVisible(), true);
    assert.ok((await badgeTexts()).some((text) => /Reconnecting/.test(text)), "the listener was told, in words, that it was reconnecting");
    await speaker.page.waitForFunction(() => document.querySelector("#listener-counts li[data-language=it] strong")?.textContent === "1");
    await speaker.context.close();
    await listener.context.close();
  });

  test("each error a listener can meet shows its plain sentence", async () => {
    const listener = await listenerPage(browser, stack.info.pageUrl);
    await joinByTyping(listener.page, "shepherd427", "es");
    await listener.page.getByRole("alert").getByText("That is not a session id.", { exact: false }).waitFor();
    await joinByTyping(listener.page, "unheard-nowhere-101", "es");
    await listener.page.getByRole("alert").getByText("No session is running with that id.").waitFor();
    assert.equal(await listener.page.locator("#error-next").textContent(), "Check the id with the speaker; the session may also have ended.");
    await screenshot(listener.page, "listener-error-phone");

    const speaker = await signInAndCreate(browser);
    for (let seat = 0; seat < CAPACITY; seat++) {
      const client = new ListenerClient({ url: stack.info.websocketUrl, WebSocket, heartbeatIntervalSeconds: 1 });
      nodeClients.push(client);
      await client.joinSession({ sessionId: speaker.sessionId, targetLanguage: "es" });
    }
    await joinByTyping(listener.page, speaker.sessionId, "es");
    await listener.page.getByRole("alert").getByText("This session is full.").waitFor();
    assert.equal(await listener.page.locator("#join-view").isVisible(), true, "the form stays for another try");
    await speaker.context.close();
    await listener.context.close();
  });

  test("the speaker's connection drops and comes back within the grace: listeners see a notice, then carry on", async () => {
    const speaker = await signInAndCreate(browser);
    const listener = await listenerPage(browser, stack.info.pageUrl);
    await joinByTyping(listener.page, speaker.sessionId, "es");
    await listener.page.getByText(`Session ${speaker.sessionId}, in Español.`).waitFor();
    // The server drops the speaker's socket, as a Wi-Fi drop would end it.
    const response = await fetch(`${stack.info.managementEndpoint}/@connections/${encodeURIComponent(speaker.connectionIds.at(-1))}`, { method: "DELETE" });
    assert.equal(response.status, 204);
    const notice = listener.page.locator("#speaker-notice");
    await notice.getByText("The speaker's connection dropped.", { exact: false }).waitFor();
    await notice.getByText("The speaker is back.").waitFor();
    assert.equal(await speaker.page.locator("#session-id").textContent(), speaker.sessionId);
    await speaker.page.waitForFunction(() => document.getElementById("connection-state").dataset.state === "live");
    assert.equal(await listener.page.locator("#listening-view").isVisible(), true, "the listener never left");
    await speaker.page.getByRole("button", { name: "End session" }).click();
    await speaker.page.getByRole("button", { name: "End for everyone" }).click();
    await listener.page.getByText("The speaker ended the session.").waitFor();
    await speaker.context.close();
    await listener.context.close();
  });
});


