// The listener view: join by id (typed, or filled in from the QR link), pick a language by its own
// name (remembered), see the state in plain words, keep the screen awake, rejoin by itself.
import { ListenerClient, MESSAGES, State, describeError, normalizeSessionId } from "./client/live-translation-client.js";
import { createCaptionsView } from "./captions-view.js";
import { fillLanguages, heartbeatOptions, loadConfig, ownName, showOnly } from "./page-config.js";

const LANGUAGE_KEY = "liveTranslation.targetLanguage";
const VIEWS = ["join-view", "listening-view", "ended-view"];
const $ = (id) => document.getElementById(id);

let config;
let client = null;
let wakeLock = null;
let captionsView;
// The seat whose captions are on screen and the last one shown: a new client for the same seat
// (Try again after giving up) resumes after it instead of showing lines twice or losing some.
let shownUpTo = null;

function remembered(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage blocked: nothing is remembered, everything else works
  }
}

function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage blocked
  }
}

function showError(error) {
  const { sentence, next } = error.sentence ? error : describeError(error);
  $("error-sentence").textContent = sentence;
  $("error-next").textContent = next;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function showState(state, text) {
  const badge = $("connection-state");
  badge.dataset.state = state;
  badge.textContent = !navigator.onLine && state === State.RECONNECTING ? "This device is offline. Reconnecting when it is back…" : text;
}

async function keepScreenAwake() {
  if (!("wakeLock" in navigator) || document.visibilityState !== "visible" || wakeLock) return;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
    wakeLock.addEventListener("release", () => {
      wakeLock = null;
    });
    $("wake-lock-note").hidden = false;
  } catch {
    // refused (battery saver, no user gesture): listening works, the screen may dim
  }
}

function letScreenSleep() {
  wakeLock?.release().catch(() => undefined);
  wakeLock = null;
}

function newClient() {
  const listener = new ListenerClient({ url: config.websocketUrl, ...heartbeatOptions(config) });
  listener.on("state", ({ state, text, error }) => {
    showState(state, text);
    if (state === State.FAILED) {
      showError(error ?? listener.lastError);
      $("retry-button").hidden = false;
    }
    if (state === State.LIVE) {
      clearError();
      $("retry-button").hidden = true;
    }
  });
  listener.on("speakerAway", () => {
    $("speaker-notice").textContent = MESSAGES.notices.speakerAway;
    $("speaker-notice").hidden = false;
  });
  listener.on("speakerReturned", () => {
    $("speaker-notice").textContent = MESSAGES.notices.speakerReturned;
    setTimeout(() => {
      if (!listener.speakerAway) $("speaker-notice").hidden = true;
    }, 4000);
  });
  listener.on("sessionEnded", (message) => {
    $("ended-reason").textContent = message.text;
    showOnly(VIEWS, "ended-view");
    letScreenSleep();
    listener.close();
    showState(State.ENDED, MESSAGES.states.ended);
    $("join-another").focus();
  });
  listener.on("caption", (caption) => {
    captionsView.show(caption);
    shownUpTo = { sessionId: listener.sessionId, targetLanguage: listener.targetLanguage, lastSeq: listener.lastSeq };
  });
  return listener;
}

async function join(event) {
  event?.preventDefault();
  clearError();
  const typed = $("session-id").value;
  const sessionId = normalizeSessionId(typed);
  if (!sessionId) {
    showError(describeError("INVALID_SESSION_ID"));
    $("session-id").setAttribute("aria-invalid", "true");
    $("session-id").focus();
    return;
  }
  $("session-id").removeAttribute("aria-invalid");
  const targetLanguage = $("language").value;
  remember(LANGUAGE_KEY, targetLanguage);
  $("join-button").disabled = true;
  client?.close();
  client = newClient();
  const sameSeat = shownUpTo?.sessionId === sessionId && shownUpTo?.targetLanguage === targetLanguage;
  if (!sameSeat) {
    shownUpTo = null;
    captionsView.clear();
  }
  try {
    const joined = await client.joinSession({ sessionId, targetLanguage, ...(sameSeat ? { lastSeq: shownUpTo.lastSeq } : {}) });
    captionsView.setSourceLanguage(joined.sourceLanguage);
    $("session-id").value = joined.sessionId;
    $("listening-summary").textContent = `Session ${joined.sessionId}, in ${ownName(joined.targetLanguage)}.`;
    $("listening-summary").lang = "";
    $("speaker-notice").hidden = true;
    showOnly(VIEWS, "listening-view");
    history.replaceState(null, "", `?session=${encodeURIComponent(joined.sessionId)}`);
    keepScreenAwake();
  } catch (error) {
    showError(error);
    client.close();
    client = null;
    showState(State.IDLE, MESSAGES.states.idle);
  } finally {
    $("join-button").disabled = false;
  }
}

function leave() {
  client?.close();
  client = null;
  shownUpTo = null;
  captionsView.clear();
  letScreenSleep();
  clearError();
  showState(State.IDLE, MESSAGES.states.idle);
  showOnly(VIEWS, "join-view");
  $("session-id").focus();
}

async function start() {
  // First, so that a dim room never sees a white page flash.
  captionsView = createCaptionsView({
    log: $("captions"),
    smaller: $("caption-smaller"),
    larger: $("caption-larger"),
    sizeStatus: $("caption-size"),
    theme: $("theme-toggle"),
    latest: $("captions-latest"),
  });
  try {
    config = await loadConfig();
  } catch {
    showError({ sentence: "This page is not set up: its config.json is missing.", next: "Tell whoever runs the service." });
    return;
  }
  const browserLanguage = (navigator.language || "").slice(0, 2);
  fillLanguages($("language"), config.targetLanguages, remembered(LANGUAGE_KEY) ?? browserLanguage);
  const fromLink = new URLSearchParams(location.search).get("session");
  if (fromLink) $("session-id").value = normalizeSessionId(fromLink) ?? fromLink;
  $("join-form").addEventListener("submit", join);
  $("leave-button").addEventListener("click", leave);
  $("join-another").addEventListener("click", () => {
    $("session-id").value = "";
    leave();
  });
  $("retry-button").addEventListener("click", () => join());
  document.addEventListener("visibilitychange", () => {
    if (client?.state === State.LIVE) keepScreenAwake();
  });
  addEventListener("offline", () => client && showState(client.state, MESSAGES.states[client.state]));
  (fromLink ? $("language") : $("session-id")).focus();
  document.body.dataset.ready = "true";
}

start();
