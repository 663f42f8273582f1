// A listener's refresh in flight when the speaker ends the session, on the real local stack: the
// refresh finds the session gone (SESSION_NOT_FOUND) while the end's notice is still on its way to
// the listener's old connection, which never went away. The listener must end as any connected
// listener does, with the speaker's reason, once.
//
// The race is made certain, not hoped for, by a relay between the listener and the stack that
// holds bytes on their way: the refresh's request until the End has been answered and its notice
// has reached the relay, and the old connection's notice until the refresh's answer is in.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { ListenerClient, SpeakerClient, State } from "../live-translation-client.js";
import { startStack, warmUp } from "./support/local-stack.js";

// A refresh is due at 3 s of a connection's age and noticed at the next heartbeat (every second);
// connections live 60 s and silence is given 60 s, so nothing else closes one during the test.
const REFRESH_PARAMETERS = {
  CONNECTION_REFRESH_MINUTES: "0.05",
  CONNECTION_WARNING_MINUTES: "0.9",
  CONNECTION_MAX_MINUTES: "1",
  HEARTBEAT_INTERVAL_SECONDS: "1",
  HEARTBEAT_TIMEOUT_SECONDS: "60",
  RATE_LIMIT_HEARTBEATS_PER_MIN: "200",
};
// The end of a WebSocket handshake request; what a client sends after it is frames.
const END_OF_HANDSHAKE = Buffer.from("\r\n\r\n");
const WAIT_MS = 30_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function until(predicate, what, timeoutMs = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (predicate()) resolve();
      else if (Date.now() - started > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

// One direction of one relayed connection: carries bytes on, or holds them in order until
// released. Nothing held is lost: a side that closes meanwhile is closed after the release.
class Valve {
  constructor(socket, holdAfter = null) {
    this.socket = socket;
    this.held = Buffer.alloc(0);
    this.holding = false;
    // Hold from the first byte after this marker on (null: carry until told to hold).
    this.holdAfter = holdAfter;
    this.passed = Buffer.alloc(0);
    this.pendingEnd = false;
  }

  hold() {
    this.holding = true;
  }

  release() {
    this.holding = false;
    if (this.held.length) this.socket.write(this.held);
    this.held = Buffer.alloc(0);
    if (this.pendingEnd) this.socket.end();
  }

  carry(data) {
    if (this.holdAfter) {
      this.passed = Buffer.concat([this.passed, data]);
      const end = this.passed.indexOf(this.holdAfter);
      if (end < 0) {
        this.socket.write(data);
        return;
      }
      const cut = data.length - (this.passed.length - end - this.holdAfter.length);
      this.socket.write(data.subarray(0, cut));
      data = data.subarray(cut);
      this.holdAfter = null;
      this.holding = true;
    }
    if (this.holding) this.held = Buffer.concat([this.held, data]);
    else if (data.length) this.socket.write(data);
  }

  end() {
    if (this.holding) this.pendingEnd = true;
    else this.socket.end();
  }
}

/** A TCP relay to `port`; from connection `holdFramesFrom` on (1-based, in the order opened), what
 * the client sends after its handshake is held until the test releases it. */
async function holdingNetwork(port, { holdFramesFrom }) {
  const connections = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: "127.0.0.1", port });
    const relayed = {
      toServer: new Valve(upstream, connections.length + 1 >= holdFramesFrom ? END_OF_HANDSHAKE : null),
      toClient: new Valve(client),
      closed: 0,
    };
    connections.push(relayed);
    for (const [from, valve] of [
      [client, relayed.toServer],
      [upstream, relayed.toClient],
    ]) {
      sockets.add(from);
      from.on("data", (data) => valve.carry(data));
      from.on("end", () => valve.end());
      from.on("error", () => from.destroy());
      from.on("close", () => {
        relayed.closed += 1;
        sockets.delete(from);
      });
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    connections,
    connection: async (number) => {
      await until(() => connections.length >= number, `connection ${number} through the relay`);
      return connections[number - 1];
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(resolve);
      }),
  };
}

describe("a refresh in flight when the session ends, against the local stack", () => {
  let stack;
  let network;
  const clients = [];

  before(async () => {
    stack = await startStack({ parameters: REFRESH_PARAMETERS });
    await warmUp(stack);
  });
  after(async () => {
    for (const client of clients) client.close();
    await network?.close();
    await stack?.stop();
  });

  test("a listener whose refresh meets the End is told the speaker's reason, once", async () => {
    const url = new URL(stack.info.websocketUrl);
    // GIVEN a listener behind a relay that holds what it sends on every connection after its first
    network = await holdingNetwork(Number(url.port), { holdFramesFrom: 2 });
    const host = new SpeakerClient({ url: stack.info.websocketUrl, WebSocket, heartbeatIntervalSeconds: 30, getToken: () => stack.speakerToken() });
    clients.push(host);
    const created = await host.createSession({ sourceLanguage: "en" });
    url.port = String(network.port);
    // Heartbeats every second bring the refresh; acks held for a few seconds must not look like a
    // dead connection.
    const guest = new ListenerClient({ url: url.href, WebSocket, heartbeatIntervalSeconds: 1, heartbeatAckTimeoutSeconds: 60 });
    clients.push(guest);
    const endings = [];
    const states = [];
    guest.on("sessionEnded", (event) => endings.push(event));
    await guest.joinSession({ sessionId: created.sessionId, targetLanguage: "es" });
    guest.on("state", (event) => states.push(event.state));
    const old = await network.connection(1);
    // WHEN the listener's refresh is in flight: its new connection is open, and its first frame,
    // the refreshConnection, waits in the relay
    const refreshing = await network.connection(2);
    await until(() => refreshing.toServer.held.length > 0, "the refresh's request in the relay");
    assert.equal(guest.state, State.LIVE);
    // AND the speaker ends the session meanwhile; its notice to the old connection reaches the
    // relay (the local gateway, like API Gateway, sends frames uncompressed) and waits there
    old.toClient.hold();
    const ended = await host.endSession();
    assert.equal(ended.reason, "speakerEnded");
    await until(() => old.toClient.held.includes('"sessionEnded"'), "the end's notice to the old connection");
    // AND the refresh goes on and finds the session gone; only once the listener has its answer
    // (it closes the refused connection) does the old connection deliver
    refreshing.toServer.release();
    await until(() => refreshing.closed === 2, "the refused connection to close");
    await sleep(200); // not a measurement: a client that did not wait would have ended by now
    old.toClient.release();
    // THEN the listener ends once, with the speaker's reason, as a connected listener does
    await until(() => guest.state === State.ENDED, "the listener to end");
    await sleep(500); // room for a second end, if one were coming
    assert.equal(endings.length, 1, JSON.stringify(endings));
    assert.equal(endings[0].reason, "speakerEnded");
    assert.equal(endings[0].text, "The speaker ended the session.");
    assert.deepEqual(states, [State.ENDED], "no visible break before the end");
  });
});
