// The page as a deployed stack hosts it: `make page-site` files on a plain static server, the
// speaker signing in with Cognito's USER_PASSWORD_AUTH (the local stack's embedded Cognito stands
// in for the region's). And what the local stack itself serves: config, client, token endpoint.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { runPython, startStack, warmUp } from "../../clients/js/test/support/local-stack.js";
import { DESKTOP, PHONE, browserSkipReason, launchChromium } from "./support.js";

const DEMO_EMAIL = "speaker@example.org";
const DEMO_PASSWORD = "Local-Speaker-Passw0rd"; // local_stack/embedded_aws.py
const CONTENT_TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".json": "application/json" };

/** A static host and nothing more: files by path, with the content types a host must set. */
async function staticHost(root) {
  const server = createServer((request, response) => {
    const urlPath = decodeURIComponent(new URL(request.url, "http://x").pathname);
    const file = path.join(root, urlPath.endsWith("/") ? `${urlPath}index.html` : urlPath);
    if (!file.startsWith(root)) return response.writeHead(404).end();
    try {
      const body = readFileSync(file);
      response.writeHead(200, { "Content-Type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe("the local stack's page endpoints", () => {
  let stack;
  before(async () => {
    stack = await startStack({ parameters: { HEARTBEAT_INTERVAL_SECONDS: "7", HEARTBEAT_TIMEOUT_SECONDS: "60", RATE_LIMIT_HEARTBEATS_PER_MIN: "200" } });
  });
  after(() => stack?.stop());

  test("config.json names this stack's WebSocket URL, its heartbeat and exactly the joinable languages", async () => {
    const config = await (await fetch(new URL("config.json", stack.info.pageUrl))).json();
    assert.equal(config.websocketUrl, stack.info.websocketUrl);
    assert.equal(config.heartbeatIntervalSeconds, 7);
    assert.equal(config.auth.mode, "local");
    assert.ok(config.targetLanguages.includes("es") && !config.targetLanguages.includes("sw"), "sw has no neural voice");
    assert.ok(config.sourceLanguages.includes("sw"), "but can be spoken");
  });

  test("the client module is served as JavaScript, and nothing outside the site is served", async () => {
    const client = await fetch(new URL("client/live-translation-client.js", stack.info.pageUrl));
    assert.equal(client.status, 200);
    assert.match(client.headers.get("content-type"), /^text\/javascript/);
    for (const outside of ["../template.yaml", "%2e%2e/template.yaml", "local_stack/cli.py", "client/live-translation-client.d.ts.bak"]) {
      assert.equal((await fetch(`${stack.info.pageUrl}${outside}`)).status, 404, outside);
    }
  });

  test("the token endpoint answers this machine but not a forwarded request", async () => {
    const tokenUrl = new URL("/_local/token", stack.info.pageUrl);
    assert.equal((await fetch(tokenUrl)).status, 200);
    const forwarded = await fetch(tokenUrl, { headers: { "X-Forwarded-For": "203.0.113.7" } });
    assert.equal(forwarded.status, 403);
    assert.doesNotMatch(await forwarded.text(), /eyJ/);
  });
});

describe("the page as static files for a deployed stack", { skip: browserSkipReason() ?? false }, () => {
  let stack;
  let host;
  let site;
  let browser;

  before(async () => {
    stack = await startStack({ parameters: { HEARTBEAT_INTERVAL_SECONDS: "5", HEARTBEAT_TIMEOUT_SECONDS: "60", RATE_LIMIT_HEARTBEATS_PER_MIN: "200" } });
    site = mkdtempSync(path.join(tmpdir(), "page-site-"));
    const outputs = path.join(site, "..", `${path.basename(site)}-outputs.json`);
    writeFileSync(outputs, JSON.stringify({ WebSocketUrl: stack.info.websocketUrl, UserPoolId: stack.info.userPoolId, UserPoolClientId: stack.info.userPoolClientId }));
    const written = runPython(["-m", "local_stack.local_pages", "--out", site, "--outputs", outputs, "--cognito-endpoint", stack.info.motoEndpoint]);
    rmSync(outputs);
    assert.equal(written.status, 0, written.stderr);
    host = await staticHost(site);
    browser = await launchChromium();
    await warmUp(stack);
  });
  after(async () => {
    await browser?.close();
    await host?.close();
    await stack?.stop();
    if (site) rmSync(site, { recursive: true, force: true });
  });

  test("page-site refuses outputs that lack what the page needs, naming them", () => {
    const partial = path.join(tmpdir(), `partial-outputs-${process.pid}.json`);
    writeFileSync(partial, JSON.stringify({ WebSocketUrl: "wss://abc.execute-api.us-east-1.amazonaws.com/prod" }));
    const result = runPython(["-m", "local_stack.local_pages", "--out", path.join(tmpdir(), "never-written"), "--outputs", partial]);
    rmSync(partial);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /lack UserPoolId, UserPoolClientId/);
  });

  test("a Cognito speaker signs in on the hosted page and a listener joins through its link", async () => {
    const config = JSON.parse(readFileSync(path.join(site, "config.json"), "utf8"));
    assert.equal(config.auth.mode, "cognito");
    assert.equal(config.auth.userPoolClientId, stack.info.userPoolClientId);
    const speaker = await (await browser.newContext({ viewport: DESKTOP })).newPage();
    await speaker.goto(`${host.url}speaker.html`);
    await speaker.getByLabel("Email").fill(DEMO_EMAIL);
    await speaker.getByLabel("Password").fill("not-the-password");
    await speaker.getByRole("button", { name: "Sign in", exact: true }).click();
    await speaker.getByRole("alert").getByText("Wrong email or password.").waitFor();
    await speaker.getByLabel("Password").fill(DEMO_PASSWORD);
    await speaker.getByRole("button", { name: "Sign in", exact: true }).click();
    await speaker.getByRole("button", { name: "Start session" }).click();
    await speaker.locator("#session-id").filter({ hasText: /^[a-z]+-[a-z]+-[1-9][0-9]{2}$/ }).waitFor();
    const link = await speaker.locator("#short-link").getAttribute("href");
    assert.ok(link.startsWith(host.url), "the QR link points at the hosted page");
    const listener = await (await browser.newContext({ viewport: PHONE })).newPage();
    await listener.goto(link);
    await listener.getByLabel("Your language").selectOption("pt");
    await listener.getByRole("button", { name: "Join" }).click();
    await listener.getByText("in Português.", { exact: false }).waitFor();
    await speaker.waitForFunction(() => document.querySelector("#listener-counts li[data-language=pt] strong")?.textContent === "1");
    await speaker.getByRole("button", { name: "End session" }).click();
    await speaker.getByRole("button", { name: "End for everyone" }).click();
    await listener.getByText("The speaker ended the session.").waitFor();
    await speaker.context().close();
    await listener.context().close();
  });
});
