// Chromium for the browser tests: Debian's /usr/bin/chromium through playwright-core (never a
// browser download). Missing Chromium skips the tests on a developer machine with one line, and
// fails them where .ci/run set BROWSER_TESTS_REQUIRED=1.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { REPO_ROOT } from "../../clients/js/test/support/local-stack.js";

export { warmUp } from "../../clients/js/test/support/local-stack.js";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts", "browser");
export const PHONE = { width: 360, height: 740 };
export const NARROW_PHONE = { width: 320, height: 640 };
export const DESKTOP = { width: 1280, height: 860 };
// What a speaker runs a service from: a common laptop screen, and a current phone.
export const LAPTOP = { width: 1366, height: 768 };
export const TALL_PHONE = { width: 390, height: 844 };
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-dev-shm-usage",
];

/** Why the browser tests cannot run here, or null. Throws in CI, where a skip would hide a gap. */
export function browserSkipReason() {
  if (existsSync(CHROMIUM)) return null;
  const reason = `${CHROMIUM} is missing (apt-get install chromium)`;
  if (process.env.BROWSER_TESTS_REQUIRED === "1") throw new Error(`browser tests are required here, but ${reason}`);
  return reason;
}

// Generous waits: on a shared 2-core machine a cold function can take many seconds; a wait that
// expires still fails the test, it only does not fail it for being slow.
const WAIT_MS = 60_000;

export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => {
    const context = await newContext(options);
    context.setDefaultTimeout(WAIT_MS);
    return context;
  };
  return browser;
}

const AXE_SOURCE = () => readFileSync(path.join(REPO_ROOT, "node_modules/axe-core/axe.min.js"), "utf8");

/** axe-core's serious and critical violations on the page as it is now (WCAG 2.x A and AA). */
export async function accessibilityViolations(page) {
  await page.addScriptTag({ content: AXE_SOURCE() });
  const result = await page.evaluate(() =>
    globalThis.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }),
  );
  return result.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => `${violation.id} (${violation.impact}): ${violation.help} at ${violation.nodes.map((node) => node.target.join(" ")).join(", ")}`);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}


/** On a speaker page: open speaker.html, sign in as the demo speaker, start a session spoken in
 * `language`; the session id the page shows. */
export async function startSessionOnPage(page, pageUrl, language = "en") {
  await page.goto(new URL("speaker.html", pageUrl).href);
  await page.getByRole("button", { name: "Sign in as the demo speaker" }).click();
  await page.getByLabel("Language you will speak").selectOption(language);
  await page.getByRole("button", { name: "Start session" }).click();
  await page.locator("#session-id").filter({ hasText: /^[a-z]+-[a-z]+-[1-9][0-9]{2}$/ }).waitFor();
  return page.locator("#session-id").textContent();
}
