// The listener view: join by id (typed, or filled in from the QR link), pick a language by its own
// name (remembered), see the state in plain words, keep the screen awake, rejoin by itself, and
// after a reload of the tab take its seat back without a missed or doubled line (listener-seat.js).
import { ListenerClient, MESSAGES, State, describeError, normalizeSessionId } from "./client/live-translation-client.js";
import { createCaptionsView } from "./captions-view.js";
import { forgetSeat, keepSeat, storedSeat } from "./listener-seat.js";
import { fillLanguages, heartbeatOptions, loadConfig, ownName, showOnly } from "./page-config.js";

const LANGUAGE_KEY = "liveTranslation.targetLanguage";
const VIEWS = ["join-view", "listening-view", "ended-view"];
const GONE_WHILE_AWAY = "The session you were following has ended.";
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
      keepScreenAwake(); // a lock released while the page was hidden is taken again once back
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
    listener.close();
    showEnded(message.text);
  });
  listener.on("caption", (caption) => {
    captionsView.show(caption);
    shownUpTo = { sessionId: listener.sessionId, targetLanguage: listener.targetLanguage, lastSeq: listener.lastSeq };
    keepSeatOf(listener);
  });
  return listener;
}

function keepSeatOf(listener) {
  keepSeat({
    sessionId: listener.sessionId,
    targetLanguage: listener.targetLanguage,
    sourceLanguage: listener.sourceLanguage ?? "",
    lastSeq: listener.lastSeq,
    lines: captionsView.lines,
  });
}

function showEnded(text) {
  forgetSeat();
  $("ended-reason").textContent = text;
  showOnly(VIEWS, "ended-view");
  letScreenSleep();
  showState(State.ENDED, MESSAGES.states.ended);
  $("join-another").focus();
}

const summary = (sessionId, targetLanguage) => `Session ${sessionId}, in ${ownName(targetLanguage)}.`;

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
  // Back into a seat this tab held (Try again, or a reload): its session may have ended meanwhile.
  const rejoining = !$("listening-view").hidden;
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
    $("listening-summary").textContent = summary(joined.sessionId, joined.targetLanguage);
    $("listening-summary").lang = "";
    $("speaker-notice").hidden = true;
    showOnly(VIEWS, "listening-view");
    history.replaceState(null, "", `?session=${encodeURIComponent(joined.sessionId)}`);
    keepSeatOf(client);
    keepScreenAwake();
  } catch (error) {
    client.close();
    client = null;
    if (rejoining && error.code === "SESSION_NOT_FOUND") {
      showEnded(GONE_WHILE_AWAY);
      return;
    }
    showError(error);
    showState(State.IDLE, MESSAGES.states.idle);
    if (rejoining) $("retry-button").hidden = false;
  } finally {
    $("join-button").disabled = false;
  }
}

function leave() {
  client?.close();
  client = null;
  shownUpTo = null;
  forgetSeat();
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
  const fromLink = new URLSearchParams(location.search).get("session");
  const seat = storedSeat();
  let resumable = seat !== null && (!fromLink || normalizeSessionId(fromLink) === seat.sessionId);
  if (seat && !resumable) forgetSeat(); // this tab was sent to another session
  // The kept lines before anything else loads: a reloaded tab is never an empty page meanwhile.
  if (resumable) showKept(seat);
  try {
    config = await loadConfig();
  } catch {
    showError({ sentence: "This page is not set up: its config.json is missing.", next: "Tell whoever runs the service." });
    return;
  }
  const browserLanguage = (navigator.language || "").slice(0, 2);
  fillLanguages($("language"), config.targetLanguages, remembered(LANGUAGE_KEY) ?? browserLanguage);
  if (fromLink) $("session-id").value = normalizeSessionId(fromLink) ?? fromLink;
  if (resumable && !config.targetLanguages.includes(seat.targetLanguage)) {
    // The stack no longer offers that language: start from the join view.
    resumable = false;
    forgetSeat();
    shownUpTo = null;
    captionsView.clear();
    showOnly(VIEWS, "join-view");
  }
  $("join-form").addEventListener("submit", join);
  $("leave-button").addEventListener("click", leave);
  $("join-another").addEventListener("click", () => {
    $("session-id").value = "";
    leave();
  });
  $("retry-button").addEventListener("click", () => join());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") backInFront();
  });
  document.addEventListener("resume", backInFront); // a frozen page (a phone that slept) runs again
  addEventListener("offline", () => client && showState(client.state, MESSAGES.states[client.state]));
  document.body.dataset.ready = "true";
  if (resumable) {
    // The same seat from the last line shown: the server replays exactly the ones missed.
    $("session-id").value = seat.sessionId;
    $("language").value = seat.targetLanguage;
    join();
  } else {
    (fromLink ? $("language") : $("session-id")).focus();
  }
}

/** The page is seen again: its connection may have died while it was hidden or frozen. */
function backInFront() {
  if (!client) return;
  if (client.state === State.LIVE) {
    keepScreenAwake();
    client.checkConnection();
  } else if (client.state === State.FAILED && client.lastError?.code === "GAVE_UP") {
    // It gave up while the phone slept (its timers did not run): the listener is back, so is it.
    join();
  }
}

/** A reloaded tab's seat as it was: its lines, in the listening view, while it rejoins. */
function showKept(seat) {
  captionsView.setSourceLanguage(seat.sourceLanguage);
  captionsView.restore(seat.lines);
  // Nothing shown yet still asks from 0 (decision 59): a line from before the reload beats a lost one.
  shownUpTo = { sessionId: seat.sessionId, targetLanguage: seat.targetLanguage, lastSeq: seat.lastSeq ?? 0 };
  $("listening-summary").textContent = summary(seat.sessionId, seat.targetLanguage);
  showOnly(VIEWS, "listening-view");
}

start();
