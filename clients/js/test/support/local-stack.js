// Starts the local stack exactly as `make run` does (python -m local_stack run), on a free port, for
// the Node and browser tests; every URL comes from its ready file, never from a guessed port.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";

import { ListenerClient, SpeakerClient } from "../../live-translation-client.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
// The checkout whose stack runs; another one only when a developer points at it on purpose.
const STACK_ROOT = path.resolve(process.env.LOCAL_STACK_ROOT ?? REPO_ROOT);
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 60_000;

// make passes its venv's Python; run by hand, the first venv that make creates or created.
function python() {
  if (process.env.LOCAL_STACK_PYTHON) return process.env.LOCAL_STACK_PYTHON;
  const venvs = [".venv-py3.13/bin/python", ".venv/bin/python"].map((venv) => path.join(REPO_ROOT, venv));
  return venvs.find((venv) => existsSync(venv)) ?? "python3";
}

function pythonEnvironment() {
  const pythonPath = [path.join(STACK_ROOT, "layers/session_manager/python"), STACK_ROOT, process.env.PYTHONPATH ?? ""];
  return { ...process.env, PYTHONPATH: pythonPath.join(path.delimiter) };
}

/** Runs `python <args>` in the stack's checkout, as the stack runs; returns status and output. */
export function runPython(args) {
  const result = spawnSync(python(), args, { cwd: STACK_ROOT, env: pythonEnvironment(), encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * `environment`: variables of the stack process itself (LOCAL_SPEAKER_TOKEN_SECONDS,
 * LOCAL_TRANSLATE_TERMINOLOGIES); `idleTimeoutSeconds` and `maxConnectionSeconds`: the emulated
 * gateway's idle close and hard connection limit (make run's IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS).
 * @param {{parameters?: Record<string, string>, scheduleSeconds?: number, environment?: Record<string, string>, idleTimeoutSeconds?: number, maxConnectionSeconds?: number}} [options]
 * @returns {Promise<{info: any, tokenUrl: string, pid: number, speakerToken: (email?: string) => Promise<string>, log: () => string, stop: () => Promise<void>}>}
 */
export async function startStack({ parameters, scheduleSeconds, environment, idleTimeoutSeconds, maxConnectionSeconds } = {}) {
  const workdir = mkdtempSync(path.join(tmpdir(), "js-local-stack-"));
  const readyFile = path.join(workdir, "ready.json");
  const logFile = path.join(workdir, "stack.log");
  const args = ["-m", "local_stack", "run", "--template", path.join(STACK_ROOT, "template.yaml"), "--port", "0"];
  args.push("--ready-file", readyFile);
  if (parameters) {
    const envVars = path.join(workdir, "env.json");
    writeFileSync(envVars, JSON.stringify({ Parameters: parameters }));
    args.push("--env-vars", envVars);
  }
  if (scheduleSeconds) args.push("--schedule-seconds", String(scheduleSeconds));
  if (idleTimeoutSeconds) args.push("--idle-timeout-seconds", String(idleTimeoutSeconds));
  if (maxConnectionSeconds) args.push("--max-connection-seconds", String(maxConnectionSeconds));
  const logFd = openSync(logFile, "w");
  const child = spawn(python(), args, {
    cwd: STACK_ROOT,
    env: { ...pythonEnvironment(), ...environment },
    stdio: ["ignore", logFd, logFd],
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  let info;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!info) {
    if (existsSync(readyFile)) {
      info = JSON.parse(readFileSync(readyFile, "utf8"));
      break;
    }
    if (child.exitCode !== null) throw new Error(`the local stack exited with ${child.exitCode}:\n${log().slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the local stack was not ready in ${READY_TIMEOUT_MS / 1000} s:\n${log().slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const tokenUrl = new URL("/_local/token", info.pageUrl).href;
  return {
    info,
    tokenUrl,
    log,
    pid: child.pid,
    async speakerToken(email) {
      const response = await fetch(email ? `${tokenUrl}?email=${encodeURIComponent(email)}` : tokenUrl);
      if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
      return (await response.text()).trim();
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      rmSync(workdir, { recursive: true, force: true });
    },
  };
}

/** One round of every action, so that cold function environments (seconds each on a busy
 * machine) do not count against a test's waits. Heartbeats keep these connections from being
 * swept as silent while a cold function is slow, and a slow ack does not count as a dead line. */
export async function warmUp(stack) {
  const patient = { WebSocket, connectTimeoutSeconds: 60, requestTimeoutSeconds: 60, heartbeatIntervalSeconds: 1, heartbeatAckTimeoutSeconds: 60 };
  const speaker = new SpeakerClient({ url: stack.info.websocketUrl, getToken: () => stack.speakerToken(), ...patient });
  const listener = new ListenerClient({ url: stack.info.websocketUrl, ...patient });
  try {
    const created = await speaker.createSession({ sourceLanguage: "en" });
    await listener.joinSession({ sessionId: created.sessionId, targetLanguage: "es" });
    await speaker.getSessionStatus();
    await listener.leaveSession();
    await speaker.endSession();
    await heartbeatOnce(stack.info.websocketUrl);
  } finally {
    speaker.close();
    listener.close();
  }
}

async function heartbeatOnce(url) {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const reply = new Promise((resolve) => socket.once("message", resolve));
  socket.send(JSON.stringify({ action: "heartbeat" }));
  await reply;
  socket.close();
}
