// The operator's walk through the console in Firefox, driven over WebDriver BiDi by
// puppeteer-core: sign in, the overview, the dead events of the last hour filtered by their
// error, one event replayed, a hostile event's page, and the event list at 360 px; all in the
// dark scheme (the light one is the Chromium test's), set as Firefox's own preference since
// BiDi has no media emulation.
//
// Reads {firefox, base, token, hostile, shots} as JSON on stdin; prints what it saw as JSON
// (the test decides what is right). A step that cannot be done (an element that never comes)
// ends the script with an error.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const WAIT_MS = 60_000; // only detects a failure: generous, for a busy machine

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));
mkdirSync(input.shots, { recursive: true });

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: input.firefox,
  headless: true,
  // No updates, telemetry or remote settings: a machine without a network.
  extraPrefsFirefox: {
    "app.update.enabled": false,
    "datareporting.policy.dataSubmissionEnabled": false,
    "network.connectivity-service.enabled": false,
    "services.settings.server": "",
    "layout.css.prefers-color-scheme.content-override": 0, // 0: dark
  },
});
const seen = { pages: [], dialogs: [], violations: [], errors: [] };
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.setViewport({ width: 1280, height: 900 });
  page.on("dialog", async (dialog) => {
    seen.dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => seen.errors.push(String(error.message || error)));
  // Before any of the page's own script: every CSP violation the page meets is kept.
  await page.evaluateOnNewDocument(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
      window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });

  const text = (selector) => page.$eval(selector, (element) => element.textContent);
  const rows = () => page.$$eval("table.events tbody tr", (found) => found.length);
  async function note(name, extra = {}) {
    seen.violations.push(...(await page.evaluate(() => window.__violations)));
    await page.screenshot({ path: join(input.shots, `${name}.png`), fullPage: true });
    seen.pages.push({ name, url: page.url(), ...extra });
  }
  async function follow(action) {
    await Promise.all([page.waitForNavigation({ waitUntil: "load" }), action()]);
  }

  const first = await page.goto(`${input.base}/console`);
  await note("sign-in", { status: first.status() });
  await page.type("#token", input.token);
  await follow(() => page.keyboard.press("Enter"));
  await page.waitForSelector(".notice");
  await note("overview", {
    notice: await text(".notice"),
    htmx: await page.evaluate(() => typeof window.htmx),
  });

  await follow(() => page.click("a.button[href*='state=dead']"));
  await page.waitForSelector("table.events");
  await note("dead-last-hour", { rows: await rows(), table: await text("table.events") });
  await page.type("#error", "DATA.PLAN");
  await follow(() => page.click("form.filters button[type=submit]"));
  await note("filtered", { rows: await rows() });

  await follow(() => page.click("table.events tbody tr a"));
  await note("event", { heading: await text("h1"), payload: await text("pre.payload") });
  await follow(() => page.click("a.button[href$='/replay']"));
  await note("replay-confirm", { heading: await text("h1") });
  await follow(() => page.click("main form button[type=submit]"));
  await note("replayed", { heading: await text("h1") });

  await page.goto(`${input.base}/console/events/${encodeURIComponent(input.hostile)}`);
  await note("hostile-event", { payload: await text("pre.payload") });

  await page.setViewport({ width: 360, height: 800 });
  await page.goto(`${input.base}/console/events`);
  await note("events-360", {
    width: await page.evaluate(() => document.documentElement.scrollWidth),
    background: await page.evaluate(() => getComputedStyle(document.body).backgroundColor),
  });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
