// A whole service rehearsed in real time on the local stack, with the page as the only client:
// `make rehearse` (MINUTES=90 PACE_SECONDS=20 by default). A speaker page in Chromium signs in as
// the demo speaker, starts a session and types a line every PACE_SECONDS; listener pages in three
// languages read it. A third of the way in a listener's phone loses its network for 20 s; two
// thirds in the speaker's Wi-Fi drops for 20 s (lines typed meanwhile wait in the page). The
// template's own settings throughout: heartbeats, the 10-minute idle close, the sweeper, the
// speaker's one-hour token. It prints one JSON report and exits 1 if any listener lost a line,
// showed one twice, or is not live at the end; with REHEARSAL_LOG=FILE a failed run leaves the
// stack's whole log there.
//
// The browser tests prove the same paths time-compressed (tests/browser/long-service.test.js);
// this is the real clock, for a team that wants to see a Sunday morning before it happens.
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";

import { startStack, warmUp } from "../clients/js/test/support/local-stack.js";
import { CHROMIUM, LAPTOP, PHONE, launchChromium, startSessionOnPage } from "../tests/browser/support.js";

const MINUTES = Number(process.env.MINUTES ?? 90);
const PACE_SECONDS = Number(process.env.PACE_SECONDS ?? 20);
const BLIP_MS = 20_000;
const LANGUAGES = ["es", "fr", "en"]; // two translated, one the source language
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

if (!(MINUTES > 0) || !(PACE_SECONDS >= 1)) {
  console.error("usage: make rehearse [MINUTES=90] [PACE_SECONDS=20] (MINUTES > 0, PACE_SECONDS >= 1)");
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`make rehearse needs Chromium at ${CHROMIUM} (apt-get install chromium, or CHROMIUM_PATH=...)`);
  process.exit(2);
}

/** Resident memory of the stack: its process and every process it started (kB). */
function stackMemoryKb(pid) {
  const tree = [pid];
  for (let index = 0; index < tree.length; index++) {
    try {
      const children = execFileSync("pgrep", ["-P", String(tree[index])], { encoding: "utf8" });
      tree.push(...children.split("\n").filter(Boolean).map(Number));
    } catch {
      // no children
    }
  }
  const rss = execFileSync("ps", ["-o", "rss=", "-p", tree.join(",")], { encoding: "utf8" });
  return rss.split("\n").filter(Boolean).reduce((sum, kb) => sum + Number(kb), 0);
}

function percentile(values, share) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))];
}

async function listener(browser, stack, sessionId, language) {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  const record = { language, context, page, sockets: 0, frames: [], delaysMs: [] };
  page.on("websocket", (socket) => {
    record.sockets += 1;
    socket.on("framereceived", ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type !== "caption") return;
      record.frames.push(message.seq);
      record.delaysMs.push(Date.now() - message.timestamp); // one machine, one clock
    });
  });
  await page.goto(`${stack.info.pageUrl}?session=${sessionId}`);
  await page.locator("body[data-ready=true]").waitFor();
  await page.getByLabel("Your language").selectOption(language);
  await page.getByRole("button", { name: "Join" }).click();
  await page.waitForFunction(() => document.getElementById("connection-state").dataset.state === "live");
  return record;
}

const stack = await startStack();
const browser = await launchChromium();
const report = { minutes: MINUTES, paceSeconds: PACE_SECONDS, startedAt: new Date().toISOString() };
let failed = false;
let speakerPage;
try {
  await warmUp(stack);
  const memory = [stackMemoryKb(stack.pid)];
  const speakerContext = await browser.newContext({ viewport: LAPTOP });
  const speaker = await speakerContext.newPage();
  speakerPage = speaker;
  let speakerSockets = 0;
  speaker.on("websocket", () => (speakerSockets += 1));
  const sessionId = await startSessionOnPage(speaker, stack.info.pageUrl);
  const listeners = [];
  for (const language of LANGUAGES) listeners.push(await listener(browser, stack, sessionId, language));

  const started = Date.now();
  const end = started + MINUTES * 60_000;
  const listenerBlipAt = started + (MINUTES * 60_000) / 3;
  const speakerBlipAt = started + (2 * MINUTES * 60_000) / 3;
  let listenerBlipped = false;
  let speakerBlipped = false;
  let spoken = 0;
  const box = speaker.getByLabel("Type or paste what you say");
  let sendPresses = 0;
  while (Date.now() < end) {
    // Lines the page could not confirm come back into the box with "Not sent ... Press Send": a
    // speaker presses Send before typing on, and that press is counted.
    if ((await box.inputValue()) !== "") {
      sendPresses += 1;
      await speaker.getByRole("button", { name: "Send" }).click();
    }
    spoken += 1;
    await box.fill(`Line ${spoken} of the service`);
    await box.press("Enter");
    if (!listenerBlipped && Date.now() >= listenerBlipAt) {
      listenerBlipped = true;
      const phone = listeners[1].context;
      await phone.setOffline(true);
      setTimeout(() => phone.setOffline(false), BLIP_MS);
    }
    if (!speakerBlipped && Date.now() >= speakerBlipAt) {
      speakerBlipped = true;
      await speakerContext.setOffline(true);
      setTimeout(() => speakerContext.setOffline(false), BLIP_MS);
    }
    if (spoken % Math.max(1, Math.round(60 / PACE_SECONDS)) === 0) memory.push(stackMemoryKb(stack.pid));
    await pause(Math.max(0, started + spoken * PACE_SECONDS * 1000 - Date.now()));
  }
  // Every line accepted (the ones typed offline included), then time for the last to arrive.
  for (let attempt = 0; attempt < 3 && (await box.inputValue()) !== ""; attempt++) {
    await pause(25_000); // a request's timeout, for the lines to come back first
    sendPresses += 1;
    await speaker.getByRole("button", { name: "Send" }).click();
  }
  await speaker.waitForFunction((text) => document.querySelector("#sent-captions li:last-child")?.textContent === text, `Line ${spoken} of the service`, { timeout: 120_000 });
  const lastSeq = Number(await speaker.locator("#sent-captions li").last().getAttribute("data-seq"));
  await pause(5_000);
  memory.push(stackMemoryKb(stack.pid));

  report.linesSpoken = spoken;
  report.lastSeq = lastSeq;
  report.speaker = { sendPresses, sockets: speakerSockets, state: await speaker.evaluate(() => document.getElementById("connection-state").dataset.state) };
  report.listeners = [];
  for (const record of listeners) {
    const lines = await record.page.evaluate(() =>
      [...document.querySelectorAll("#captions .caption-line")].map((line) => ({ seq: Number(line.dataset.seq), text: line.querySelector(".caption-text").textContent })),
    );
    const shown = lines.map(({ seq }) => seq);
    const duplicateTexts = lines.length - new Set(lines.map(({ text }) => text)).size;
    const received = new Set(record.frames);
    const missing = [];
    for (let seq = 1; seq <= lastSeq; seq++) if (!received.has(seq)) missing.push(seq);
    const duplicatesShown = shown.length - new Set(shown).size;
    const inOrder = shown.every((seq, index) => index === 0 || seq > shown[index - 1]);
    const state = await record.page.evaluate(() => document.getElementById("connection-state").dataset.state);
    report.listeners.push({
      language: record.language,
      sockets: record.sockets,
      captionFrames: record.frames.length,
      missingSeqs: missing,
      linesOnScreen: shown.length,
      lastOnScreen: shown.at(-1) ?? null,
      duplicatesShown,
      duplicateTexts,
      inOrder,
      state,
      delayMs: { p50: percentile(record.delaysMs, 0.5), p95: percentile(record.delaysMs, 0.95), max: Math.max(...record.delaysMs) },
    });
    if (missing.length || duplicatesShown || duplicateTexts || !inOrder || state !== "live" || shown.at(-1) !== lastSeq) failed = true;
  }
  report.stackMemoryMb = { start: Math.round(memory[0] / 1024), end: Math.round(memory.at(-1) / 1024), max: Math.round(Math.max(...memory) / 1024) };
  if (report.speaker.state !== "live") failed = true;
} catch (error) {
  report.error = String(error?.stack ?? error);
  report.stackLogTail = stack.log().split("\n").slice(-15);
  if (process.env.REHEARSAL_LOG) writeFileSync(process.env.REHEARSAL_LOG, stack.log());
  report.speakerPage = await speakerPage
    ?.evaluate(() => ({ state: document.getElementById("connection-state").textContent, status: document.getElementById("caption-status")?.textContent, box: document.getElementById("caption-text")?.value }))
    .catch((reason) => String(reason));
  failed = true;
} finally {
  report.finishedAt = new Date().toISOString();
  report.result = failed ? "FAILED" : "every line reached every listener once, in order";
  console.log(JSON.stringify(report, null, 2));
  await browser.close();
  await stack.stop();
}
process.exit(failed ? 1 : 0);
