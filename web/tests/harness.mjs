// What both browser scripts share: their settings from the environment, the dispatcher API as
// the escalation engine, the axe check, Debian's Chromium, and the run-a-script-of-steps frame
// (the step that failed is printed, and the exit status says it).
import { mkdirSync } from "node:fs";
import { AxeBuilder } from "@axe-core/playwright";
import { chromium } from "playwright-core";

/** An environment variable the test must set. */
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const APP = env("APP_URL");
export const DISPATCHER = env("DISPATCHER_URL");
export const ESCALATION_TOKEN = env("ESCALATION_TOKEN");
export const SCREENSHOTS = env("SCREENSHOTS");
mkdirSync(SCREENSHOTS, { recursive: true });

export const check = (ok, what) => {
  if (!ok) throw new Error(what);
};

/** The dispatcher's API as the escalation engine. */
export async function api(method, path, body) {
  const response = await fetch(`${DISPATCHER}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ESCALATION_TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Posts a Swedish ticket; its id. */
export async function postTicket(summary, extra = {}) {
  const answer = await api("POST", "/v1/tickets", {
    conversation_id: `conv-${Date.now()}-${summary.length}`,
    language: "sv",
    summary,
    ...extra,
  });
  check(answer.status === 201, `ticket posted: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.ticket_id;
}

/** axe-core on the page as it stands: no serious or critical violation; the minor ones counted. */
export async function accessible(page, screen) {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(
    bad.length === 0,
    `${screen}: axe found ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target).join(" ")}`).join("; ")}`,
  );
  return result.violations.length;
}

/** Runs `steps(browser, step)` in headless Debian Chromium; `step(name)` names what runs now.
 * Prints the summary `steps` returns as JSON, or the failed step, and exits accordingly. */
export async function run(steps) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // As the machine's notes advise: no sandbox as root, no background connections to refuse.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  let current = "starting";
  let failed = null;
  let summary = null;
  try {
    summary = await steps(browser, (name) => {
      current = name;
    });
  } catch (e) {
    failed = `${current}: ${e.message ?? e}`;
  } finally {
    await browser.close();
  }
  if (failed) {
    console.error(failed);
    process.exit(1);
  }
  console.log(JSON.stringify(summary));
}
