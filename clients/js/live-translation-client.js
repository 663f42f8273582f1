// The JavaScript client of the live-translation WebSocket API (docs/protocol.md).
//
// One ES module, no build step, no dependencies: it runs in browsers as it is and in Node 20+
// when given a WebSocket constructor (`import WebSocket from "ws"`). Types: live-translation-client.d.ts.
//
// What it does for a speaker or a listener:
// - sends every action of docs/protocol.md and resolves each with its reply (or rejects with a
//   ClientError whose `sentence` is a plain sentence from MESSAGES);
// - heartbeats every `heartbeatIntervalSeconds`; a heartbeat without an ack within
//   `heartbeatAckTimeoutSeconds` counts the connection as dead;
// - on `connectionRefreshRequired` refreshes make-before-break: a new connection, `refreshConnection`
//   on it, `connectionRefreshComplete`, and only then the old one is closed; messages that arrive on
//   both during the overlap are delivered once;
// - after an unexpected drop reconnects with exponential backoff and full jitter (a listener rejoins
//   its session and language, a speaker reclaims its session), and gives up after
//   `giveUpAfterSeconds` in the state "failed";
// - a listener gets `caption` events in seq order, each once, across refreshes and rejoins (it
//   sends the last seq it showed as `lastSeq`, so the server replays what it missed); the rules
//   are in caption-order.js, which the page serves beside this file.

import { CaptionSequencer, DEFAULT_REORDER_WINDOW_MS, captionFromMessage } from "./caption-order.js";

/** Connection states, in the words a page shows through MESSAGES.states. */
export const State = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  ENDED: "ended",
  FAILED: "failed",
  CLOSED: "closed",
});

/** Every error code a client can meet: the server's (docs/protocol.md) and this client's own. */
export const ErrorCode = Object.freeze({
  INVALID_PARAMETERS: "INVALID_PARAMETERS",
  INVALID_LANGUAGE: "INVALID_LANGUAGE",
  UNSUPPORTED_LANGUAGE: "UNSUPPORTED_LANGUAGE",
  INVALID_SESSION_ID: "INVALID_SESSION_ID",
  INVALID_ACTION: "INVALID_ACTION",
  UNAUTHORIZED: "UNAUTHORIZED",
  FORBIDDEN: "FORBIDDEN",
  SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
  RATE_LIMIT_EXCEEDED: "RATE_LIMIT_EXCEEDED",
  SESSION_FULL: "SESSION_FULL",
  SERVICE_UNAVAILABLE: "SERVICE_UNAVAILABLE",
  INTERNAL_ERROR: "INTERNAL_ERROR",
  CONNECTION_FAILED: "CONNECTION_FAILED",
  CONNECTION_LOST: "CONNECTION_LOST",
  REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
  GAVE_UP: "GAVE_UP",
  SESSION_ENDED: "SESSION_ENDED",
  CLOSED: "CLOSED",
});

/**
 * Everything a person reads, in one table so that it can be translated: pass a table of the same
 * shape as `messages` to a client, or to describeError(). `{name}` is filled in from the error.
 */
export const MESSAGES = Object.freeze({
  errors: Object.freeze({
    INVALID_PARAMETERS: {
      sentence: "The app sent an incomplete request.",
      next: "Reload the page and try again. If it keeps happening, tell whoever runs the service.",
    },
    INVALID_LANGUAGE: {
      sentence: "That language code is not one we know.",
      next: "Pick a language from the list.",
    },
    UNSUPPORTED_LANGUAGE: {
      sentence: "That language cannot be translated into and spoken yet.",
      next: "Pick another language from the list.",
    },
    INVALID_SESSION_ID: {
      sentence: "That is not a session id. Ids look like faithful-shepherd-427: two words and a number.",
      next: "Check the id on the screen at the front and type it again.",
    },
    INVALID_ACTION: {
      sentence: "The app asked for something this connection cannot do now.",
      next: "Reload the page and try again.",
    },
    UNAUTHORIZED: {
      sentence: "You need to sign in as a speaker to do this.",
      next: "Sign in, then try again.",
    },
    FORBIDDEN: {
      sentence: "Only the person who started this session can do this.",
      next: "Sign in with the account that started the session.",
    },
    SESSION_NOT_FOUND: {
      sentence: "No session is running with that id.",
      next: "Check the id with the speaker; the session may also have ended.",
    },
    RATE_LIMIT_EXCEEDED: {
      sentence: "Too many tries from this network in a short time.",
      next: "Wait {retryAfter} seconds, then try again.",
    },
    SESSION_FULL: {
      sentence: "This session is full.",
      next: "Try again in a few minutes, when someone leaves.",
    },
    SERVICE_UNAVAILABLE: {
      sentence: "The service is busy or briefly unavailable.",
      next: "Wait a moment and try again.",
    },
    INTERNAL_ERROR: {
      sentence: "Something went wrong on the server.",
      next: "Try again. If it keeps happening, tell whoever runs the service.",
    },
    CONNECTION_FAILED: {
      sentence: "Could not reach the service.",
      next: "Check that this device is online, then try again.",
    },
    CONNECTION_LOST: {
      sentence: "The connection to the service was lost.",
      next: "We are reconnecting by ourselves; keep this page open.",
    },
    REQUEST_TIMEOUT: {
      sentence: "The service did not answer in time.",
      next: "Check that this device is online, then try again.",
    },
    GAVE_UP: {
      sentence: "We could not reconnect for a long time, so we stopped trying.",
      next: "Check that this device is online, then press Try again.",
    },
    SESSION_ENDED: {
      sentence: "This session has ended.",
      next: "Join a new session with the id the speaker gives you.",
    },
    CLOSED: {
      sentence: "This connection was closed.",
      next: "Start again.",
    },
  }),
  states: Object.freeze({
    idle: "Not connected yet",
    connecting: "Connecting…",
    connected: "Connected",
    live: "Connected",
    reconnecting: "Connection lost. Reconnecting…",
    ended: "The session has ended",
    failed: "Not connected",
    closed: "Disconnected",
  }),
  ended: Object.freeze({
    speakerEnded: "The speaker ended the session.",
    speakerDisconnected: "The speaker's connection was lost and did not come back; the session has ended.",
    expired: "The session reached its time limit and has ended.",
    unknown: "The session has ended.",
  }),
  notices: Object.freeze({
    speakerAway: "The speaker's connection dropped. Stay here: the service continues when they are back.",
    speakerReturned: "The speaker is back.",
    connectionWarning: "This connection closes in about {remainingMinutes} minutes.",
  }),
});

const SERVER_ERROR_CODES = new Set([
  "INVALID_PARAMETERS",
  "INVALID_LANGUAGE",
  "UNSUPPORTED_LANGUAGE",
  "INVALID_SESSION_ID",
  "INVALID_ACTION",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "SESSION_NOT_FOUND",
  "RATE_LIMIT_EXCEEDED",
  "SESSION_FULL",
  "SERVICE_UNAVAILABLE",
  "INTERNAL_ERROR",
]);
// Worth another try unchanged (docs/protocol.md, "Retry guidance"); the rest never are.
const RETRYABLE_CODES = new Set([
  "RATE_LIMIT_EXCEEDED",
  "SERVICE_UNAVAILABLE",
  "INTERNAL_ERROR",
  "SESSION_FULL",
  "CONNECTION_FAILED",
  "CONNECTION_LOST",
  "REQUEST_TIMEOUT",
]);

const SESSION_ID_PATTERN = /^[a-z]+-[a-z]+-[1-9][0-9]{2}$/;

/**
 * Turns what a person typed into a session id, forgiving case, spaces and a missing hyphen:
 * " Faithful Shepherd 427 ", "faithful-shepherd427" and "FAITHFUL_SHEPHERD-427" all give
 * "faithful-shepherd-427". Returns null when the text cannot be one (two words and a number).
 * @param {string} text
 * @returns {string | null}
 */
export function normalizeSessionId(text) {
  if (typeof text !== "string") return null;
  const parts = text
    .trim()
    .toLowerCase()
    .replace(/([a-z])([0-9])/g, "$1 $2")
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  if (parts.length !== 3) return null;
  const candidate = parts.join("-");
  return SESSION_ID_PATTERN.test(candidate) ? candidate : null;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (values[name] === undefined ? whole : String(values[name])));
}

/**
 * The plain sentence and the next step for an error (a ClientError, a server `error` message or a
 * code), from `messages` (default MESSAGES).
 * @param {ClientError | {code: string, retryAfter?: number} | string} error
 * @param {typeof MESSAGES} [messages]
 * @returns {{code: string, sentence: string, next: string}}
 */
export function describeError(error, messages = MESSAGES) {
  const code = typeof error === "string" ? error : error?.code;
  const entry = messages.errors[code] ?? messages.errors.INTERNAL_ERROR;
  const values = { retryAfter: 30, ...(typeof error === "object" ? error : {}) };
  return { code: messages.errors[code] ? code : "INTERNAL_ERROR", sentence: fill(entry.sentence, values), next: fill(entry.next, values) };
}

/** A failed action or connection: `code` from ErrorCode, `sentence` and `next` from MESSAGES. */
export class ClientError extends Error {
  /**
   * @param {string} code
   * @param {{serverMessage?: string, status?: number, retryAfter?: number, requestId?: string, sessionId?: string, details?: object, messages?: typeof MESSAGES}} [info]
   */
  constructor(code, info = {}) {
    const { messages = MESSAGES, ...rest } = info;
    const described = describeError({ code, ...rest }, messages);
    super(described.sentence);
    this.name = "ClientError";
    this.code = code;
    this.sentence = described.sentence;
    this.next = described.next;
    this.serverMessage = rest.serverMessage;
    this.status = rest.status;
    this.retryAfter = rest.retryAfter;
    this.requestId = rest.requestId;
    this.sessionId = rest.sessionId;
    this.details = rest.details;
    this.retryable = RETRYABLE_CODES.has(code);
  }
}

function errorFromServer(message, messages) {
  // A frame without `type` is API Gateway's own "Internal server error" (docs/protocol.md).
  const code = message.type === "error" && SERVER_ERROR_CODES.has(message.code) ? message.code : "INTERNAL_ERROR";
  return new ClientError(code, {
    serverMessage: message.message,
    status: message.status,
    retryAfter: message.retryAfter,
    requestId: message.requestId,
    sessionId: message.sessionId,
    details: message.details,
    messages,
  });
}

/**
 * The delay before reconnect attempt `attempt` (0-based): "full jitter", a uniform draw between 0
 * and the exponential ceiling, so that a hall of phones dropped at once comes back spread out.
 * @param {number} attempt
 * @param {{initialDelaySeconds: number, maxDelaySeconds: number}} backoff
 * @param {() => number} [random] returns [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelayMs(attempt, backoff, random = Math.random) {
  const ceiling = Math.min(backoff.maxDelaySeconds, backoff.initialDelaySeconds * 2 ** attempt);
  return Math.floor(random() * ceiling * 1000);
}

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Subscribes; returns the function that unsubscribes. */
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  /** Resolves with the next event of `type`. */
  once(type) {
    return new Promise((resolve) => {
      const off = this.on(type, (event) => {
        off();
        resolve(event);
      });
    });
  }

  _emit(type, event) {
    for (const listener of [...(this._listeners.get(type) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        // One faulty listener must not stop the others or the client itself.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

const DEFAULTS = Object.freeze({
  heartbeatIntervalSeconds: 30,
  heartbeatAckTimeoutSeconds: 10,
  requestTimeoutSeconds: 20,
  connectTimeoutSeconds: 15,
  backoff: Object.freeze({ initialDelaySeconds: 1, maxDelaySeconds: 30 }),
  giveUpAfterSeconds: 300,
  captionReorderWindowMs: DEFAULT_REORDER_WINDOW_MS,
});

// One WebSocket: requests answered in order, the heartbeat, and the close that tells its owner.
class Connection {
  constructor(owner, socket) {
    this.owner = owner;
    this.socket = socket;
    this.pending = null;
    this.queue = Promise.resolve();
    this.closedByUs = false;
    this.closed = false;
    this.heartbeatTimer = null;
    this.heartbeatOutstanding = null;
    this.lastBeatAt = 0;
    this.whenClosed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
    socket.addEventListener("message", (event) => this._onMessage(event));
    socket.addEventListener("close", (event) => this._onClose(event));
  }

  static open(owner, url) {
    const WebSocketClass = owner.options.WebSocket;
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocketClass(url);
      } catch (error) {
        reject(new ClientError("CONNECTION_FAILED", { serverMessage: String(error), messages: owner.messages }));
        return;
      }
      const connection = new Connection(owner, socket);
      let settled = false;
      const fail = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        connection.closedByUs = true;
        safeClose(socket);
        reject(new ClientError("CONNECTION_FAILED", { messages: owner.messages }));
      };
      const timer = setTimeout(fail, owner.options.connectTimeoutSeconds * 1000);
      socket.addEventListener("open", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(connection);
      });
      // A refused handshake is an `error` then a `close` 1006, whatever the HTTP status was.
      socket.addEventListener("error", fail);
      socket.addEventListener("close", fail);
    });
  }

  /** Sends an action and resolves with the first message whose type is in `replyTypes`. */
  request(payload, replyTypes, timeoutSeconds = this.owner.options.requestTimeoutSeconds) {
    const run = () =>
      new Promise((resolve, reject) => {
        if (this.closed) {
          reject(new ClientError("CONNECTION_LOST", { messages: this.owner.messages }));
          return;
        }
        const timer = setTimeout(() => {
          this.pending = null;
          reject(new ClientError("REQUEST_TIMEOUT", { messages: this.owner.messages }));
        }, timeoutSeconds * 1000);
        this.pending = {
          replyTypes,
          lineId: payload.lineId,
          settle: (error, message) => {
            clearTimeout(timer);
            this.pending = null;
            if (error) reject(error);
            else resolve(message);
          },
        };
        try {
          this.socket.send(JSON.stringify(payload));
        } catch {
          this.pending.settle(new ClientError("CONNECTION_LOST", { messages: this.owner.messages }));
        }
      });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  startHeartbeat() {
    this.stopHeartbeat();
    const interval = this.owner.options.heartbeatIntervalSeconds * 1000;
    this.heartbeatTimer = setInterval(() => this._beat(), interval);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  _beat() {
    if (this.closed || this.heartbeatOutstanding) return;
    this.lastBeatAt = Date.now();
    this.heartbeatOutstanding = this.request(
      { action: "heartbeat" },
      ["heartbeatAck"],
      this.owner.options.heartbeatAckTimeoutSeconds,
    )
      .then(
        () => this.owner._emit("heartbeat", { ok: true }),
        (error) => {
          // Too many heartbeats is a timer bug, not a dead line: the server answered.
          if (error.code === "RATE_LIMIT_EXCEEDED") return;
          if (error.code === "REQUEST_TIMEOUT" && !this.closed) {
            this.owner._emit("heartbeat", { ok: false });
            this.drop();
          }
        },
      )
      .finally(() => {
        this.heartbeatOutstanding = null;
      });
  }

  /** Closes as if the network had gone: the owner reconnects. */
  drop() {
    safeClose(this.socket, 4000, "heartbeat not acknowledged");
    // Some stacks wait long for a close handshake on a dead line; do not wait for it.
    this._onClose({ code: 4000, reason: "heartbeat not acknowledged" });
  }

  close() {
    this.closedByUs = true;
    this.stopHeartbeat();
    safeClose(this.socket, 1000, "client closed");
  }

  _onMessage(event) {
    let message;
    try {
      message = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
    } catch {
      return;
    }
    if (message === null || typeof message !== "object") return;
    const pending = this.pending;
    if (pending) {
      // A captionAccepted for another line answers an earlier request that timed out (its line
      // sent again, decision 78): not this request's answer.
      const otherLine = pending.lineId !== undefined && message.lineId !== undefined && message.lineId !== pending.lineId;
      if (pending.replyTypes.includes(message.type) && !otherLine) {
        pending.settle(null, message);
        return;
      }
      if (message.type === "error" || message.type === undefined) {
        pending.settle(errorFromServer(message, this.owner.messages));
        return;
      }
    }
    this.owner._receive(this, message);
  }

  _onClose(event) {
    if (this.closed) return;
    this.closed = true;
    this._resolveClosed();
    this.stopHeartbeat();
    if (this.pending) this.pending.settle(new ClientError("CONNECTION_LOST", { messages: this.owner.messages }));
    this.owner._connectionClosed(this, event);
  }
}

function safeClose(socket, code, reason) {
  try {
    socket.close(code, reason);
  } catch {
    try {
      socket.close();
    } catch {
      // already closed
    }
  }
}

const OVERLAP_MEMORY_MS = 10_000;
// How long a refresh answered SESSION_NOT_FOUND waits for the old connection's sessionEnded while
// that connection is open. The server ends a session first and tells its listeners after, so a
// refresh that reaches it in between finds the session gone while the notice is still on its way
// to the old connection, which never went away: the client then ends with the notice's reason, as
// any connected listener does. 2 s is four times the 0.5 s that the fan-out to the last of 500
// listeners is meant to take (docs/benchmarks.md), and short enough that nobody stares long at a
// session that is over when the notice never comes.
const END_NOTICE_GRACE_MS = 2_000;
// checkConnection() right after a heartbeat learns nothing new.
const CHECK_AFTER_BEAT_MS = 5_000;

function deliveryKey(message) {
  // The same broadcast reaches both connections of a refresh with its own timestamp.
  const { timestamp, connectionId, ...rest } = message;
  return JSON.stringify(rest, Object.keys(rest).sort());
}

// What speakers and listeners share: the current connection, refresh and reconnect.
class SessionClient extends Emitter {
  constructor(role, options) {
    super();
    if (!options || typeof options.url !== "string" || !/^wss?:\/\//.test(options.url)) {
      throw new TypeError("options.url must be the WebSocket URL (ws:// or wss://)");
    }
    const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketClass !== "function") {
      throw new TypeError("no WebSocket here: pass options.WebSocket (in Node: import WebSocket from 'ws')");
    }
    this.role = role;
    this.options = {
      ...DEFAULTS,
      ...options,
      backoff: { ...DEFAULTS.backoff, ...(options.backoff ?? {}) },
      WebSocket: WebSocketClass,
    };
    this.messages = options.messages ?? MESSAGES;
    this.random = options.random ?? Math.random;
    this.state = State.IDLE;
    this.sessionId = null;
    this.connection = null;
    this.lastError = null;
    this._refreshing = null;
    this._reconnecting = null;
    this._reclaiming = null;
    this._recent = new Map();
    this._overlapUntil = 0;
    this._stopped = false;
    this._onlineListener = null;
    this._wakeReconnect = null;
    if (typeof globalThis.addEventListener === "function") {
      this._onlineListener = () => this._wakeReconnect?.();
      globalThis.addEventListener("online", this._onlineListener);
    }
  }

  _setState(state, detail = {}) {
    if (this.state === state && !detail.force) return;
    const previous = this.state;
    this.state = state;
    this._emit("state", { state, previous, text: this.messages.states[state], ...detail });
  }

  async _openConnection(forceFreshToken = false) {
    // A token source that hangs (a sign-in service out of reach) counts as a failed connect.
    let timer;
    const url = await Promise.race([
      // A failing token source is most often a network without the sign-in service: retryable.
      this._connectUrl(forceFreshToken).catch((error) => {
        throw error instanceof ClientError ? error : new ClientError("CONNECTION_FAILED", { serverMessage: String(error), messages: this.messages });
      }),
      new Promise((resolve, reject) => {
        timer = setTimeout(
          () => reject(new ClientError("CONNECTION_FAILED", { messages: this.messages })),
          this.options.connectTimeoutSeconds * 1000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    const connection = await Connection.open(this, url);
    connection.startHeartbeat();
    return connection;
  }

  async _connectUrl() {
    return this.options.url;
  }

  async _ensureConnection() {
    if (this._stopped) throw new ClientError("CLOSED", { messages: this.messages });
    if (this.connection && !this.connection.closed) return this.connection;
    this._setState(State.CONNECTING);
    try {
      this.connection = await this._openConnection();
    } catch (error) {
      this.lastError = error;
      this._setState(State.CLOSED, { error });
      throw error;
    }
    this._setState(State.CONNECTED);
    return this.connection;
  }

  _receive(connection, message) {
    const current = connection === this.connection;
    // A rejoining connection's replayed captions follow its reply at once, before it is current.
    const candidate = this._refreshing?.connection === connection || this._reclaiming === connection;
    if (!current && !candidate && Date.now() > this._overlapUntil) return;
    if (Date.now() <= this._overlapUntil || this._refreshing) {
      const key = deliveryKey(message);
      const now = Date.now();
      for (const [seenKey, seenAt] of this._recent) if (now - seenAt > OVERLAP_MEMORY_MS) this._recent.delete(seenKey);
      if (this._recent.has(key)) return;
      this._recent.set(key, now);
    }
    this._handle(connection, message);
  }

  _handle(connection, message) {
    switch (message.type) {
      case "connectionRefreshRequired":
        if (connection === this.connection) this._refresh(message);
        break;
      case "connectionWarning":
        if (connection === this.connection) this._emit("connectionWarning", message);
        break;
      case "sessionEnded":
        this._ended(message);
        break;
      default:
        if (message.type) this._emit(message.type, message);
    }
    this._emit("message", message);
  }

  _ended(message) {
    if (this.state === State.ENDED) return;
    const reason = message.reason ?? "unknown";
    this._emit("sessionEnded", { ...message, text: this.messages.ended[reason] ?? this.messages.ended.unknown });
    this._setState(State.ENDED, { reason });
  }

  /** Make-before-break: the old connection stays until the new one holds the role. */
  _refresh(notice) {
    if (this._refreshing || this._reconnecting || this.state !== State.LIVE) return;
    const old = this.connection;
    const attempt = { connection: null };
    attempt.done = new Promise((resolve) => {
      attempt.finish = resolve;
    });
    this._refreshing = attempt;
    this._emit("refreshStarted", { sessionId: this.sessionId });
    const run = async () => {
      // Nothing may be in flight on the old connection during the swap: a speaker's request
      // answered after it would be refused there. New requests wait for the refresh (_current).
      await old.queue;
      for (let failures = 0; !this._stopped; failures++) {
        try {
          attempt.connection = await this._openConnection(failures >= 2);
          const complete = await attempt.connection.request(this._refreshPayload(notice), ["connectionRefreshComplete"]);
          this._overlapUntil = Date.now() + OVERLAP_MEMORY_MS;
          this.connection = attempt.connection;
          this._refreshing = null;
          old.close();
          this._emit("refreshed", complete);
          return;
        } catch (error) {
          attempt.connection?.close();
          attempt.connection = null;
          if (error.code === "SESSION_NOT_FOUND") {
            // Still `_refreshing` through the wait: requests wait for it, and the old connection
            // closing meanwhile ends the wait rather than starting a reconnect.
            const toldOnOld = await this._endedByNoticeOn(old);
            this._refreshing = null;
            if (!toldOnOld && !this._stopped) this._ended({ reason: "unknown", sessionId: this.sessionId });
            return;
          }
          if (!error.retryable || old.closed) {
            this._refreshing = null;
            if (old.closed && !this._stopped && this.state === State.LIVE) this._startReconnect();
            else this._emit("refreshFailed", { error });
            return;
          }
          await this._sleep(error.retryAfter ? error.retryAfter * 1000 : backoffDelayMs(failures, this.options.backoff, this.random));
        }
      }
    };
    run().finally(() => {
      if (this._refreshing === attempt) this._refreshing = null;
      attempt.finish();
    });
  }

  /**
   * After a refresh found the session gone: resolves true once `old`, the connection the client is
   * still in the session on, has brought the sessionEnded (which ends the client); false when it
   * closes first, the client is closed, or END_NOTICE_GRACE_MS pass. A closed connection brings
   * nothing more.
   */
  _endedByNoticeOn(old) {
    if (old.closed) return Promise.resolve(this.state === State.ENDED);
    let timer;
    let stopWatching;
    return new Promise((resolve) => {
      timer = setTimeout(resolve, END_NOTICE_GRACE_MS);
      stopWatching = this.on("state", ({ state }) => {
        if (state === State.ENDED || state === State.CLOSED) resolve();
      });
      old.whenClosed.then(resolve);
    }).then(() => {
      clearTimeout(timer);
      stopWatching();
      return this.state === State.ENDED;
    });
  }

  /** The connection to send on: after a refresh in flight has settled. */
  async _current() {
    while (this._refreshing) await this._refreshing.done;
    return this.connection;
  }

  _refreshPayload() {
    throw new Error("abstract");
  }

  _connectionClosed(connection) {
    if (connection !== this.connection || connection.closedByUs || this._stopped) return;
    if (this._refreshing) return; // the refresh in flight takes over, or starts a reconnect when it fails
    if (this.state === State.LIVE) {
      this._startReconnect();
    } else if (this.state !== State.ENDED && this.state !== State.FAILED) {
      this._setState(State.CLOSED, { error: new ClientError("CONNECTION_LOST", { messages: this.messages }) });
    }
  }

  _startReconnect() {
    if (this._reconnecting) return;
    const lost = new ClientError("CONNECTION_LOST", { messages: this.messages });
    this.lastError = lost;
    this._setState(State.RECONNECTING, { error: lost });
    this._reconnecting = this._reconnectLoop().finally(() => {
      this._reconnecting = null;
    });
  }

  async _reconnectLoop() {
    const giveUpAt = Date.now() + this.options.giveUpAfterSeconds * 1000;
    for (let attempt = 0; !this._stopped; attempt++) {
      const waitMs = attempt === 0 ? 0 : backoffDelayMs(attempt - 1, this.options.backoff, this.random);
      if (Date.now() + waitMs > giveUpAt) break;
      await this._sleep(waitMs, true);
      if (this._stopped) return;
      let connection = null;
      try {
        connection = await this._openConnection(attempt >= 2);
        this._reclaiming = connection;
        const reply = await this._reclaim(connection);
        this._reclaiming = null;
        this.connection = connection;
        this._setState(State.LIVE, { reconnected: true });
        this._emit("reconnected", reply);
        return;
      } catch (error) {
        this._reclaiming = null;
        connection?.close();
        this.lastError = error;
        this._emit("reconnectFailed", { error, attempt });
        if (error.code === "SESSION_NOT_FOUND") {
          this._ended({ reason: this.role === "speaker" ? "speakerDisconnected" : "unknown", sessionId: this.sessionId });
          return;
        }
        if (!error.retryable) {
          this._setState(State.FAILED, { error });
          return;
        }
        if (error.retryAfter) await this._sleep(error.retryAfter * 1000);
      }
    }
    if (this._stopped) return;
    const gaveUp = new ClientError("GAVE_UP", { messages: this.messages });
    this.lastError = gaveUp;
    this._setState(State.FAILED, { error: gaveUp });
  }

  _sleep(ms, wakeWhenOnline = false) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      if (wakeWhenOnline) this._wakeReconnect = done;
      this._stopTimers = done;
    }).finally(() => {
      this._wakeReconnect = null;
    });
  }

  /**
   * Heartbeats now, unless one went out in the last few seconds: for a page that comes back to
   * the foreground or a phone that wakes up, whose connection may have died while its timers were
   * frozen. A dead one is then found within `heartbeatAckTimeoutSeconds` (and reconnected as any
   * drop), not one whole interval later.
   */
  checkConnection() {
    const connection = this.connection;
    if (this.state !== State.LIVE || !connection || connection.closed) return;
    if (Date.now() - connection.lastBeatAt < CHECK_AFTER_BEAT_MS) return; // spare the heartbeat limit
    connection._beat();
  }

  /** Closes every connection and stops reconnecting; the client cannot be used after. */
  close() {
    this._stopped = true;
    this._stopTimers?.();
    this._refreshing?.connection?.close();
    this.connection?.close();
    if (this._onlineListener) globalThis.removeEventListener("online", this._onlineListener);
    if (this.state !== State.ENDED) this._setState(State.CLOSED);
  }
}

/**
 * A speaker: creates a session and keeps it through refreshes and short drops.
 * `getToken({forceRefresh})` returns a Cognito ID or access token; it is called for every new
 * connection, so it should hand out a fresh one (tokens last an hour; a refresh comes at 100 min).
 */
export class SpeakerClient extends SessionClient {
  /** @param {import("./live-translation-client.js").SpeakerOptions} options */
  constructor(options) {
    super("speaker", options);
    if (typeof options.getToken !== "function") throw new TypeError("options.getToken must be a function returning a token");
    this.session = null;
  }

  async _connectUrl(forceFreshToken) {
    const token = await this.options.getToken({ forceRefresh: forceFreshToken });
    const separator = this.options.url.includes("?") ? "&" : "?";
    return `${this.options.url}${separator}token=${encodeURIComponent(token)}`;
  }

  /** Opens the connection (also done by createSession/resumeSession). */
  async connect() {
    await this._ensureConnection();
  }

  /** @param {{sourceLanguage: string, qualityTier?: "standard" | "premium"}} request */
  async createSession({ sourceLanguage, qualityTier = "standard" }) {
    const connection = await this._ensureConnection();
    const created = await connection.request({ action: "createSession", sourceLanguage, qualityTier }, ["sessionCreated"]);
    this.sessionId = created.sessionId;
    this.session = created;
    this._setState(State.LIVE);
    return created;
  }

  /** Takes back a session this user started, from a new connection (after a reload or a drop). */
  async resumeSession(sessionId) {
    const connection = await this._ensureConnection();
    const complete = await connection.request({ action: "refreshConnection", role: "speaker", sessionId }, [
      "connectionRefreshComplete",
    ]);
    this.sessionId = complete.sessionId;
    this._setState(State.LIVE);
    return complete;
  }

  /** @returns {Promise<object>} the sessionStatus message */
  async getSessionStatus() {
    return (await this._live()).request({ action: "getSessionStatus" }, ["sessionStatus"]);
  }

  /**
   * Sends a caption line; resolves with captionAccepted ({seq, lineId, final}). `final: false`
   * marks words still being spoken: a later line with the same `lineId` replaces it. A line whose
   * connection drops before the answer rejects with CONNECTION_LOST and is not sent again by
   * itself: it may have gone out, and a copy would get a new seq (decision 49).
   * @param {string} text
   * @param {{final?: boolean, lineId?: string}} [options]
   */
  async sendCaption(text, { final = true, lineId } = {}) {
    if (typeof text !== "string") throw new TypeError("sendCaption: text must be a string");
    if (typeof final !== "boolean") throw new TypeError("sendCaption: final must be true or false");
    if (lineId !== undefined && typeof lineId !== "string") throw new TypeError("sendCaption: lineId must be a string");
    const payload = { action: "sendCaption", text, final };
    if (lineId !== undefined) payload.lineId = lineId;
    return (await this._live()).request(payload, ["captionAccepted"]);
  }

  /** Ends the session for everyone; resolves with the sessionEnded message. */
  async endSession() {
    const ended = await (await this._live()).request({ action: "endSession" }, ["sessionEnded"]);
    this._ended(ended);
    return ended;
  }

  async _live() {
    const connection = await this._current();
    if (this.state !== State.LIVE || !connection || connection.closed) {
      throw new ClientError(this.state === State.ENDED ? "SESSION_ENDED" : "CONNECTION_LOST", { messages: this.messages });
    }
    return connection;
  }

  _refreshPayload() {
    return { action: "refreshConnection", role: "speaker", sessionId: this.sessionId };
  }

  _reclaim(connection) {
    return connection.request(this._refreshPayload(), ["connectionRefreshComplete"]);
  }
}

/** A listener: joins a session in a language and stays in it through refreshes and drops. */
export class ListenerClient extends SessionClient {
  /** @param {import("./live-translation-client.js").ClientOptions} options */
  constructor(options) {
    super("listener", options);
    this.targetLanguage = null;
    this.sourceLanguage = null;
    this.speakerAway = false;
    this._speakerHeardOn = null; // the connection the last speakerAway or speakerReturned came on
    this._captions = new CaptionSequencer({ reorderWindowMs: this.options.captionReorderWindowMs });
    this._captionTimer = null;
    this.on("speakerAway", () => {
      this.speakerAway = true;
    });
    this.on("speakerReturned", () => {
      this.speakerAway = false;
    });
    this.on("refreshed", (complete) => this._matchSpeaker(complete, this.connection));
  }

  async connect() {
    await this._ensureConnection();
  }

  /** The highest caption seq shown (null before the first); a rejoin may send a lower `lastSeq` to ask again for a missing line (decision 80). */
  get lastSeq() {
    return this._captions.lastSeq;
  }

  /**
   * Joins; the id is forgiven its case, spaces and a missing hyphen (normalizeSessionId).
   * `lastSeq`: the last caption already shown (a page reload or a new client for the same seat);
   * the server replays the kept lines after it.
   * @param {{sessionId: string, targetLanguage: string, lastSeq?: number}} request
   */
  async joinSession({ sessionId, targetLanguage, lastSeq }) {
    if (lastSeq !== undefined && lastSeq !== null && !(Number.isSafeInteger(lastSeq) && lastSeq >= 0)) {
      throw new TypeError("joinSession: lastSeq must be an integer >= 0");
    }
    const connection = await this._ensureConnection();
    this._resetCaptions(lastSeq ?? null);
    const payload = { action: "joinSession", sessionId: normalizeSessionId(sessionId) ?? sessionId, targetLanguage };
    if (lastSeq !== undefined && lastSeq !== null) payload.lastSeq = lastSeq;
    const joined = await connection.request(payload, ["sessionJoined"]);
    this._joined(joined, connection);
    this._setState(State.LIVE);
    return joined;
  }

  _joined(joined, connection) {
    this.sessionId = joined.sessionId;
    this.targetLanguage = joined.targetLanguage;
    this.sourceLanguage = joined.sourceLanguage;
    this._matchSpeaker(joined, connection);
  }

  /**
   * A join, rejoin or refresh answer on `connection` says how the speaker was once the seat
   * existed: a speakerAway or speakerReturned sent while it was being taken may have gone to the
   * closing connection or to none. A notice that already came on `connection` is at least as new
   * as the answer (its listener query found the seat), so it wins.
   */
  _matchSpeaker(answer, connection) {
    const away = answer.speakerAway === true;
    if (away === this.speakerAway || this._speakerHeardOn === connection) return;
    const type = away ? "speakerAway" : "speakerReturned";
    this._emit(type, { type, sessionId: answer.sessionId, timestamp: answer.timestamp });
  }

  /** Leaves the session; the connection stays open and may join another. */
  async leaveSession() {
    const connection = await this._current();
    if (!connection || connection.closed) throw new ClientError("CONNECTION_LOST", { messages: this.messages });
    const left = await connection.request({ action: "leaveSession" }, ["sessionLeft"]);
    this.sessionId = null;
    this.speakerAway = false;
    this._speakerHeardOn = null;
    this._setState(State.CONNECTED);
    return left;
  }

  _ended(message) {
    this.speakerAway = false;
    // Nothing will fill a gap any more: the lines held for one are shown before the end.
    if (this.state !== State.ENDED) this._showCaptions(this._captions.flush());
    super._ended(message);
  }

  _handle(connection, message) {
    if (message.type === "speakerAway" || message.type === "speakerReturned") this._speakerHeardOn = connection;
    if (message.type !== "caption") return super._handle(connection, message);
    this._showCaptions(this._captions.accept(captionFromMessage(message)));
    this._emit("message", message);
  }

  _resetCaptions(lastSeq) {
    clearTimeout(this._captionTimer);
    this._captionTimer = null;
    this._captions = new CaptionSequencer({ reorderWindowMs: this.options.captionReorderWindowMs, lastSeq });
  }

  _showCaptions(ready) {
    for (const caption of ready) this._emit("caption", caption);
    clearTimeout(this._captionTimer);
    this._captionTimer = null;
    const deadline = this._captions.nextDeadline();
    if (deadline === null || this._stopped) return;
    this._captionTimer = setTimeout(() => this._showCaptions(this._captions.releaseDue()), Math.max(0, deadline - Date.now()));
  }

  // Every way back names the last line shown, so the server replays exactly the missed ones. A
  // listener that has shown none yet asks from 0: a line from just before its join beats a lost one.
  _lastSeqField() {
    return { lastSeq: this._captions.resumeAfter ?? 0 };
  }

  _refreshPayload(notice) {
    return {
      action: "refreshConnection",
      role: "listener",
      sessionId: this.sessionId,
      targetLanguage: notice?.targetLanguage ?? this.targetLanguage,
      ...this._lastSeqField(),
    };
  }

  close() {
    clearTimeout(this._captionTimer);
    this._captionTimer = null;
    super.close();
  }

  async _reclaim(connection) {
    // A new seat through the normal door: the dropped connection's seat is released by its close.
    const joined = await connection.request(
      { action: "joinSession", sessionId: this.sessionId, targetLanguage: this.targetLanguage, ...this._lastSeqField() },
      ["sessionJoined"],
    );
    this._joined(joined, connection);
    return joined;
  }
}
