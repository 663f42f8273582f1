// Types of live-translation-client.js (docs/protocol.md is the wire contract they describe).

export type StateName = "idle" | "connecting" | "connected" | "live" | "reconnecting" | "ended" | "failed" | "closed";
export declare const State: Readonly<{
  IDLE: "idle";
  CONNECTING: "connecting";
  CONNECTED: "connected";
  LIVE: "live";
  RECONNECTING: "reconnecting";
  ENDED: "ended";
  FAILED: "failed";
  CLOSED: "closed";
}>;

export type ServerErrorCode =
  | "INVALID_PARAMETERS"
  | "INVALID_LANGUAGE"
  | "UNSUPPORTED_LANGUAGE"
  | "INVALID_SESSION_ID"
  | "INVALID_ACTION"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "SESSION_NOT_FOUND"
  | "RATE_LIMIT_EXCEEDED"
  | "SESSION_FULL"
  | "SERVICE_UNAVAILABLE"
  | "INTERNAL_ERROR";
export type ClientErrorCode =
  | ServerErrorCode
  | "CONNECTION_FAILED"
  | "CONNECTION_LOST"
  | "REQUEST_TIMEOUT"
  | "GAVE_UP"
  | "SESSION_ENDED"
  | "CLOSED";
export declare const ErrorCode: Readonly<{ [K in ClientErrorCode]: K }>;

export type EndReason = "speakerDisconnected" | "speakerEnded" | "expired";

/** The translatable table: give a client one of the same shape to show another language. */
export interface Messages {
  errors: { [K in ClientErrorCode]: { sentence: string; next: string } };
  states: { [K in StateName]: string };
  ended: { [K in EndReason | "unknown"]: string };
  notices: { speakerAway: string; speakerReturned: string; connectionWarning: string };
}
export declare const MESSAGES: Readonly<Messages>;

export declare function normalizeSessionId(text: string): string | null;
export declare function describeError(
  error: ClientError | { code: string; retryAfter?: number } | string,
  messages?: Messages,
): { code: ClientErrorCode; sentence: string; next: string };
export declare function backoffDelayMs(
  attempt: number,
  backoff: { initialDelaySeconds: number; maxDelaySeconds: number },
  random?: () => number,
): number;

export declare class ClientError extends Error {
  readonly code: ClientErrorCode;
  /** A plain sentence from Messages.errors (also `message`). */
  readonly sentence: string;
  /** What to do next, from Messages.errors. */
  readonly next: string;
  /** The server's own text, for logs; program against `code`. */
  readonly serverMessage?: string;
  readonly status?: number;
  readonly retryAfter?: number;
  readonly requestId?: string;
  readonly sessionId?: string;
  readonly details?: { field: string; reason: string };
  /** Worth another try unchanged (after `retryAfter` where given). */
  readonly retryable: boolean;
}

interface Timestamped {
  timestamp: number;
}
export interface SessionCreated extends Timestamped {
  type: "sessionCreated";
  sessionId: string;
  sourceLanguage: string;
  qualityTier: "standard" | "premium";
  connectionId: string;
  expiresAt: number;
}
export interface SessionJoined extends Timestamped {
  type: "sessionJoined";
  sessionId: string;
  targetLanguage: string;
  sourceLanguage: string;
  connectionId: string;
  /** Present (true) when the speaker is reconnecting at the moment of the join. */
  speakerAway?: true;
}
export interface ConnectionRefreshComplete extends Timestamped {
  type: "connectionRefreshComplete";
  sessionId: string;
  role: "speaker" | "listener";
  targetLanguage?: string;
  expiresAt?: number;
}
export interface ConnectionWarning extends Timestamped {
  type: "connectionWarning";
  remainingMinutes: number;
  message: string;
}
export interface SessionStatus extends Timestamped {
  type: "sessionStatus";
  sessionId: string;
  listenerCount: number;
  languageDistribution: Record<string, number>;
  sessionDurationSeconds: number;
}
export interface SessionEnded extends Timestamped {
  type: "sessionEnded";
  sessionId: string;
  reason: EndReason;
  message: string;
  /** Added by the client: the plain sentence from Messages.ended. */
  text: string;
}
export interface SessionLeft extends Timestamped {
  type: "sessionLeft";
  sessionId: string;
}
export interface SpeakerAway extends Timestamped {
  type: "speakerAway";
  sessionId: string;
  /** Absent when the client learnt it from sessionJoined.speakerAway. */
  reconnectGraceSeconds?: number;
  message?: string;
}
export interface SpeakerReturned extends Timestamped {
  type: "speakerReturned";
  sessionId: string;
  message: string;
}
export interface CaptionAccepted extends Timestamped {
  type: "captionAccepted";
  sessionId: string;
  /** The caption's number in the session, from 1. */
  seq: number;
  lineId: string;
  final: boolean;
}
/**
 * A caption as the `caption` event hands it: in seq order, each once (caption-order.js); a final
 * line slower than the reorder window comes after higher seqs, marked `late`, rather than never.
 */
export interface Caption {
  type: "caption";
  sessionId: string;
  seq: number;
  /** Default `line-<seq>`; a later caption with the same lineId replaces this line's text. */
  lineId: string;
  /** The listener's language. */
  language: string | null;
  text: string;
  /** false: words still being spoken (source-language listeners only). */
  final: boolean;
  timestamp: number | null;
  /** true when this language's translation failed and `text` is the source line. */
  untranslated: boolean;
  /** true when lines with higher seqs were shown first: put it in its place by seq. */
  late?: boolean;
}
export type ServerMessage =
  | SessionCreated
  | CaptionAccepted
  | SessionJoined
  | ConnectionRefreshComplete
  | ConnectionWarning
  | SessionStatus
  | SessionEnded
  | SessionLeft
  | SpeakerAway
  | SpeakerReturned
  | (Timestamped & { type: string; [field: string]: unknown });

export interface StateChange {
  state: StateName;
  previous: StateName;
  /** Messages.states[state] */
  text: string;
  error?: ClientError;
  reason?: EndReason | "unknown";
  reconnected?: boolean;
}

export interface ClientEvents {
  state: StateChange;
  /** Every server message the client did not consume as a reply, after de-duplication. */
  message: ServerMessage;
  sessionEnded: SessionEnded;
  connectionWarning: ConnectionWarning;
  speakerAway: SpeakerAway;
  speakerReturned: SpeakerReturned;
  heartbeat: { ok: boolean };
  refreshStarted: { sessionId: string };
  refreshed: ConnectionRefreshComplete;
  refreshFailed: { error: ClientError };
  reconnected: SessionJoined | ConnectionRefreshComplete;
  reconnectFailed: { error: ClientError; attempt: number };
  /** Listeners: each caption once, in seq order (a line ahead of a gap waits captionReorderWindowMs at most). */
  caption: Caption;
}

export interface ClientOptions {
  /** The stack's WebSocketUrl (ws:// or wss://), without a token. */
  url: string;
  /** A WebSocket constructor; default globalThis.WebSocket (in Node 20 pass the `ws` package's). */
  WebSocket?: new (url: string) => WebSocket;
  /** Match the server's HEARTBEAT_INTERVAL_SECONDS (default 30). */
  heartbeatIntervalSeconds?: number;
  /** A heartbeat without an ack this long counts the connection as dead (default 10). */
  heartbeatAckTimeoutSeconds?: number;
  requestTimeoutSeconds?: number;
  connectTimeoutSeconds?: number;
  /** Exponential backoff with full jitter between reconnect attempts (default 1 s doubling to 30 s). */
  backoff?: { initialDelaySeconds?: number; maxDelaySeconds?: number };
  /** After this long without success a reconnect stops in the state "failed" (default 300). */
  giveUpAfterSeconds?: number;
  /** The translatable texts; default MESSAGES. */
  messages?: Messages;
  /** Listeners: how long a caption ahead of a gap waits for the ones before it (default 1000). */
  captionReorderWindowMs?: number;
  /** Returns [0, 1); default Math.random (tests pass their own). */
  random?: () => number;
}

export interface SpeakerOptions extends ClientOptions {
  /** Called for every new connection; `forceRefresh` after repeated failures (an expired token looks like a network error). */
  getToken(options: { forceRefresh: boolean }): Promise<string> | string;
}

declare class SessionClient {
  readonly role: "speaker" | "listener";
  readonly state: StateName;
  readonly sessionId: string | null;
  readonly lastError: ClientError | null;
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): void;
  once<K extends keyof ClientEvents>(type: K): Promise<ClientEvents[K]>;
  connect(): Promise<void>;
  /** Heartbeats now (a page back in the foreground, a phone awake again), unless one went out in the last 5 s. */
  checkConnection(): void;
  /** Closes every connection and stops reconnecting; the client cannot be used after. */
  close(): void;
}

export declare class SpeakerClient extends SessionClient {
  constructor(options: SpeakerOptions);
  readonly session: SessionCreated | null;
  createSession(request: { sourceLanguage: string; qualityTier?: "standard" | "premium" }): Promise<SessionCreated>;
  /** Takes back a session this user started, from a new connection (after a page reload). */
  resumeSession(sessionId: string): Promise<ConnectionRefreshComplete>;
  getSessionStatus(): Promise<SessionStatus>;
  endSession(): Promise<SessionEnded>;
  /** Rejects with CONNECTION_LOST (not resent) when the connection drops before the answer. */
  sendCaption(text: string, options?: { final?: boolean; lineId?: string }): Promise<CaptionAccepted>;
}

export declare class ListenerClient extends SessionClient {
  constructor(options: ClientOptions);
  readonly targetLanguage: string | null;
  readonly sourceLanguage: string | null;
  /** True between speakerAway and speakerReturned. */
  readonly speakerAway: boolean;
  /** The highest caption seq shown, or null: sent as `lastSeq` on every rejoin and refresh. */
  readonly lastSeq: number | null;
  /** `lastSeq`: resume after the last caption already shown (the server replays the kept lines after it). */
  joinSession(request: { sessionId: string; targetLanguage: string; lastSeq?: number }): Promise<SessionJoined>;
  leaveSession(): Promise<SessionLeft>;
}
