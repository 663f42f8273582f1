// The speaker view: sign in, pick the source language, create a session, show its id, QR code and
// link, listeners per language, the connection state, and End with a confirmation. The session id
// is kept for this tab, so a reload takes the session back instead of leaving the hall waiting.
import qrcode from "./vendor/qrcode-generator-2.0.4.mjs";
import { MESSAGES, SpeakerClient, State, describeError } from "./client/live-translation-client.js";
import { fillLanguages, heartbeatOptions, listenerLink, loadConfig, ownName, showOnly } from "./page-config.js";
import { createSpeakerAuth } from "./speaker-auth.js";
import { createDictation } from "./dictation.js";

const SESSION_KEY = "liveTranslation.speakerSession";
const SOURCE_KEY = "liveTranslation.sourceLanguage";
const VIEWS = ["sign-in-view", "setup-view", "live-view", "ended-view"];
const $ = (id) => document.getElementById(id);

let config;
let auth;
let client = null;
let statusTimer = null;
let dictation = null;
// Lines typed, pasted or dictated ({text, lineId}), sent one at a time in order (the server
// allows CAPTIONS_PER_SECOND); through a drop they wait here rather than being lost, and one
// whose answer was lost is sent again with its lineId.
const captionQueue = [];
let sendingCaptions = false;
const MAX_CAPTION_CHARS = 2000;
const SENT_SHOWN = 30;
// A line whose answer never came is sent again after this pause, up to MAX_SENDS sends in all
// (decision 78); then it goes back into the box with the reason.
const RESEND_PAUSE_MS = 1000;
const MAX_SENDS = 5;

/** A typed line's own id: sent again with it, a line replaces itself on listeners' screens. */
function typedLineId() {
  // getRandomValues, not randomUUID: the venue mode serves the page over plain HTTP on the
  // LAN, which is not a secure context.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `typed-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

function stored(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

function store(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
  } catch {
    // storage blocked
  }
}

function showError(error) {
  const { sentence, next } = error.sentence ? error : { sentence: error.message, next: "" };
  $("error-sentence").textContent = sentence;
  $("error-next").textContent = next ?? "";
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function showState(state, text) {
  $("connection-state").dataset.state = state;
  $("connection-state").textContent = text;
}

function newClient() {
  const speaker = new SpeakerClient({
    url: config.websocketUrl,
    // A fresh token for every connection (refresh, reconnect): the one from sign-in expires.
    getToken: (options) => auth.getToken(options),
    // Not capped at the server's grace: that starts only once the server notices the drop, which
    // for a silent Wi-Fi drop is its heartbeat timeout later. Until the session is really over
    // (a reclaim then answers SESSION_NOT_FOUND and the page says so) the page keeps trying.
    ...heartbeatOptions(config),
  });
  speaker.on("state", ({ state, text, error }) => {
    showState(state, text);
    if (state === State.RECONNECTING) showNotice("Connection lost. Listeners are told you will be back; reconnecting…");
    if (state === State.LIVE) hideNotice();
    if (state === State.FAILED) {
      showError(error ?? speaker.lastError);
      ended(MESSAGES.ended.speakerDisconnected);
    }
  });
  speaker.on("connectionWarning", (message) => showNotice(MESSAGES.notices.connectionWarning.replace("{remainingMinutes}", message.remainingMinutes)));
  speaker.on("sessionEnded", (message) => ended(message.text));
  return speaker;
}

function showNotice(text) {
  $("speaker-notice").textContent = text;
  $("speaker-notice").hidden = false;
}

function hideNotice() {
  $("speaker-notice").hidden = true;
}

function ended(text) {
  stopStatus();
  dictation?.stop();
  captionQueue.length = 0;
  store(sessionStorage, SESSION_KEY, null);
  $("ended-reason").textContent = text;
  showOnly(VIEWS, "ended-view");
  client?.close();
  client = null;
  showState(State.ENDED, MESSAGES.states.ended);
  $("new-session").focus();
}

function showSession(sessionId) {
  store(sessionStorage, SESSION_KEY, sessionId);
  $("session-id").textContent = sessionId;
  const link = listenerLink(sessionId);
  $("short-link").href = link;
  $("short-link").textContent = link.replace(/^https?:\/\//, "");
  const code = qrcode(0, "M");
  code.addData(link);
  code.make();
  $("qr").innerHTML = code.createSvgTag({ cellSize: 6, margin: 2, scalable: true });
  $("qr").querySelector("svg")?.setAttribute("aria-hidden", "true");
  showOnly(VIEWS, "live-view");
  renderCounts({ listenerCount: 0, languageDistribution: {} });
  startStatus();
  startCaptions();
}

/** The lines of what was typed or pasted, each within the server's 2,000 characters. */
function captionLines(text) {
  const lines = [];
  for (const line of text.split(/\r?\n/).map((part) => part.replace(/\s+/g, " ").trim())) {
    let rest = line;
    while (rest.length > MAX_CAPTION_CHARS) {
      const cut = rest.lastIndexOf(" ", MAX_CAPTION_CHARS);
      const at = cut > 0 ? cut : MAX_CAPTION_CHARS;
      lines.push(rest.slice(0, at).trim());
      rest = rest.slice(at).trim();
    }
    if (rest) lines.push(rest);
  }
  return lines;
}

function captionStatus(text) {
  $("caption-status").textContent = text;
}

function addSent(text, seq) {
  const item = document.createElement("li");
  item.value = seq;
  item.dataset.seq = String(seq);
  item.textContent = text;
  $("sent-captions").append(item);
  while ($("sent-captions").childElementCount > SENT_SHOWN) $("sent-captions").firstElementChild.remove();
  item.scrollIntoView({ block: "nearest" });
}

function waitingStatus() {
  const count = captionQueue.length;
  return `Reconnecting… ${count} ${count === 1 ? "line" : "lines"} will be sent when the connection is back.`;
}

/** Lines to send after the ones already waiting: `{text, lineId?}` each. */
function queueCaptions(lines) {
  captionQueue.push(...lines);
  if (client?.state === State.RECONNECTING) captionStatus(waitingStatus());
  drainCaptions();
}

async function drainCaptions() {
  if (sendingCaptions) return;
  sendingCaptions = true;
  try {
    while (captionQueue.length && client) {
      if (captionQueue.length > 1) captionStatus(`Sending… ${captionQueue.length} lines waiting.`);
      if (client.state === State.RECONNECTING) {
        // Not sent yet, so nothing can go out twice: wait for the session to be taken back.
        captionStatus(waitingStatus());
        const waiting = client;
        await new Promise((resolve) => {
          const off = waiting.on("state", ({ state }) => {
            if (state !== State.RECONNECTING) {
              off();
              resolve();
            }
          });
        });
        continue;
      }
      const line = captionQueue[0];
      const sending = client; // ended() drops `client` while a request may still be in flight
      try {
        const accepted = await sending.sendCaption(line.text, { lineId: line.lineId });
        captionQueue.shift();
        addSent(line.text, accepted.seq);
      } catch (error) {
        if (error.code === "RATE_LIMIT_EXCEEDED") {
          // Refused lines were not numbered: sending them again cannot show anything twice.
          await new Promise((resolve) => setTimeout(resolve, (error.retryAfter || 1) * 1000));
          continue;
        }
        line.sends = (line.sends ?? 0) + 1;
        const unanswered = ["CONNECTION_LOST", "REQUEST_TIMEOUT"].includes(error.code);
        if (unanswered && line.sends < MAX_SENDS && [State.LIVE, State.RECONNECTING].includes(sending.state)) {
          // No answer: the line may have gone out, or not. It keeps its lineId, so sent again it
          // replaces itself on every listener's screen instead of showing twice (decision 78);
          // the speaker does not have to notice and press Send in the middle of a sermon.
          captionStatus("No answer yet: sending the line again…");
          await new Promise((resolve) => setTimeout(resolve, RESEND_PAUSE_MS));
          continue;
        }
        // Refused (the session ended, the text was refused) or never answered: back into the box,
        // for the speaker to see.
        const unsent = captionQueue
          .splice(0)
          .map((line) => line.text)
          .join("\n");
        $("caption-text").value = [unsent, $("caption-text").value].filter(Boolean).join("\n");
        captionStatus(`Not sent: ${error.sentence ?? error.message} Press Send to try again.`);
        return;
      }
    }
    captionStatus("");
  } finally {
    sendingCaptions = false;
  }
}

function sendTyped(event) {
  event?.preventDefault();
  const lines = captionLines($("caption-text").value);
  $("caption-text").value = "";
  if (!lines.length) return;
  queueCaptions(lines.map((text) => ({ text, lineId: typedLineId() })));
}

function startCaptions() {
  $("sent-captions").replaceChildren();
  captionStatus("");
  dictation?.stop();
  dictation = createDictation({
    language: client?.session?.sourceLanguage ?? $("source-language").value,
    send: async (text, options) => {
      if (!client) throw new Error("The session is not live.");
      if (options.final) {
        // In line with typed ones: through a drop or the per-second limit it waits, in order.
        queueCaptions([{ text, lineId: options.lineId }]);
        return null;
      }
      // Words still being spoken are worth sending only live; their final words follow anyway.
      return client.state === State.LIVE ? client.sendCaption(text, options) : null;
    },
    onStatus: ({ running, text }) => {
      $("dictation-button").setAttribute("aria-pressed", String(running));
      $("dictation-button").textContent = running ? "Stop dictation" : "Start dictation";
      captionStatus(text);
    },
  });
  // Without speech recognition the button is not offered; typing works everywhere.
  $("dictation-button").hidden = !dictation.supported;
}

function renderCounts(status) {
  const entries = Object.entries(status.languageDistribution ?? {}).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  $("listener-total").textContent = String(total);
  $("listener-counts").replaceChildren(
    ...entries.map(([code, count]) => {
      const item = document.createElement("li");
      item.dataset.language = code;
      const name = document.createElement("span");
      name.lang = code;
      name.textContent = ownName(code);
      const number = document.createElement("strong");
      number.textContent = String(count);
      item.append(name, number);
      return item;
    }),
  );
}

function startStatus() {
  stopStatus();
  const everyMs = (Number(config.statusIntervalSeconds) || 3) * 1000;
  const poll = async () => {
    if (client?.state === State.LIVE) {
      try {
        renderCounts(await client.getSessionStatus());
      } catch {
        // a drop or a refresh in between: the next poll tries again
      }
    }
    statusTimer = setTimeout(poll, everyMs);
  };
  poll();
}

function stopStatus() {
  clearTimeout(statusTimer);
  statusTimer = null;
}

async function signedIn() {
  showOnly(VIEWS, "setup-view");
  const resumable = stored(sessionStorage, SESSION_KEY);
  if (resumable) {
    client = newClient();
    try {
      await client.resumeSession(resumable);
      showSession(resumable);
      return;
    } catch (error) {
      store(sessionStorage, SESSION_KEY, null);
      client.close();
      client = null;
      showError(
        error.code === "SESSION_NOT_FOUND"
          ? { sentence: "The session this tab was running has ended.", next: "Start a new session." }
          : describeError(error),
      );
    }
  }
  showState(State.IDLE, MESSAGES.states.idle);
  $("source-language").focus();
}

async function create(event) {
  event.preventDefault();
  clearError();
  $("create-button").disabled = true;
  const sourceLanguage = $("source-language").value;
  store(localStorage, SOURCE_KEY, sourceLanguage);
  client?.close();
  client = newClient();
  try {
    const created = await client.createSession({ sourceLanguage });
    showSession(created.sessionId);
    $("caption-text").focus(); // what the speaker does next: type, paste or dictate
  } catch (error) {
    showError(error.sentence ? error : describeError(error));
    client.close();
    client = null;
  } finally {
    $("create-button").disabled = false;
  }
}

async function signIn(event) {
  event.preventDefault();
  clearError();
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await auth.signIn({ email: $("email").value.trim(), password: $("password").value });
    await signedIn();
  } catch (error) {
    showError({ sentence: error.message, next: "" });
  } finally {
    button.disabled = false;
  }
}

function askToEnd() {
  const dialog = $("end-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function endForEveryone() {
  if ($("end-dialog").returnValue !== "end" || !client) return;
  try {
    await client.endSession(); // its sessionEnded event shows the ended view
  } catch (error) {
    showError(error);
  }
}

async function start() {
  try {
    config = await loadConfig();
  } catch {
    showError({ sentence: "This page is not set up: its config.json is missing.", next: "Tell whoever runs the service." });
    return;
  }
  auth = createSpeakerAuth(config.auth);
  const chosen = stored(localStorage, SOURCE_KEY) ?? (navigator.language || "en").slice(0, 2);
  fillLanguages($("source-language"), config.sourceLanguages, config.sourceLanguages.includes(chosen) ? chosen : "en");
  if (auth.mode === "local") {
    $("demo-email").textContent = auth.email;
    $("demo-sign-in").hidden = false;
    $("demo-sign-in").addEventListener("submit", signIn);
  } else {
    $("cognito-sign-in").hidden = false;
    $("cognito-sign-in").addEventListener("submit", signIn);
  }
  $("create-form").addEventListener("submit", create);
  $("end-button").addEventListener("click", askToEnd);
  $("caption-form").addEventListener("submit", sendTyped);
  $("caption-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) sendTyped(event);
  });
  $("dictation-button").addEventListener("click", () => (dictation?.running ? dictation.stop() : dictation?.start()));
  $("end-dialog").addEventListener("close", endForEveryone);
  // Back from another tab or a sleeping laptop: find a connection that died meanwhile at once.
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && client?.checkConnection());
  document.addEventListener("resume", () => client?.checkConnection());
  $("new-session").addEventListener("click", () => {
    clearError();
    showOnly(VIEWS, "setup-view");
    showState(State.IDLE, MESSAGES.states.idle);
    $("source-language").focus();
  });
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("short-link").href);
      $("copy-result").textContent = "Link copied.";
    } catch {
      $("copy-result").textContent = "Copying is blocked here; select the link and copy it.";
    }
  });
  document.body.dataset.ready = "true";
  if (auth.mode === "local" && stored(sessionStorage, SESSION_KEY)) {
    // A reload mid-service (F5, a tab the browser restarted): the demo speaker needs no password,
    // so the session is taken back at once, well within the grace, without a click.
    try {
      await auth.signIn();
      await signedIn();
    } catch (error) {
      showError({ sentence: error.message, next: "" });
    }
  }
}

start();
