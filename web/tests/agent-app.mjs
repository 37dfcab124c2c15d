// The agents' app in headless Debian Chromium on a phone-sized screen, against running services
// (tests/tests/web_app.rs starts them and passes their addresses and tokens in the environment).
// Exits 0 when every step held; otherwise prints the step that failed and exits 1. Screenshots
// of each screen go to SCREENSHOTS.
import { existsSync, writeFileSync } from "node:fs";
import { accessible, api, APP, check, env, postTicket, run, SCREENSHOTS } from "./harness.mjs";

const AGENT_TOKEN = env("AGENT_TOKEN");
// The test restarts the gateway when this file appears, and removes it once it is back.
const RESTART = `${env("SIGNAL_DIR")}/restart`;

async function waitTicket(id, status) {
  for (let i = 0; i < 100; i++) {
    const answer = await api("GET", `/v1/tickets/${id}`);
    if (answer.body?.status === status) return answer.body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ticket ${id} never became ${status}`);
}

await run(async (browser, step) => {
  const summary = { screens: [], axe_minor: 0 };
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    locale: "en-GB",
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    void d.dismiss();
  });
  const shot = async (name) => {
    await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
    summary.screens.push(name);
  };

  step("sign in with the token in the fragment");
  await page.goto(`${APP}/app/#token=${AGENT_TOKEN}`);
  await page.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  check((await page.evaluate(() => location.hash)) === "", "the token stays in the address bar");
  check(
    (await page.evaluate(() => sessionStorage.getItem("dispatch.token"))) === AGENT_TOKEN,
    "the token is not in sessionStorage",
  );
  await shot("agent-signed-in");
  summary.axe_minor += await accessible(page, "signed in");

  step("go online");
  await page.locator("button[data-status=available]").click();
  await page.locator("button[data-status=available][aria-pressed=true]").waitFor();
  await page.locator("#shift-timer", { hasText: "On shift for" }).waitFor();

  step("an offer arrives, with a countdown");
  const hostile = "<img src=x onerror=alert(1)>";
  const first = await postTicket("Double charge on order 5521, customer asks for a refund", {
    skills: { refunds: 2 },
    priority: 6,
    context: { transcript_url: "https://example.com/t/5521", customer_note: hostile, customer_tier: "gold" },
  });
  await page.locator("#offer-h").waitFor();
  const before = await page.locator("#countdown").textContent();
  let after = before;
  for (let i = 0; i < 30 && parseInt(after) >= parseInt(before); i++) {
    await page.waitForTimeout(100);
    after = await page.locator("#countdown").textContent();
  }
  check(parseInt(after) < parseInt(before), `the countdown does not count down: ${before} then ${after} 3 s later`);
  await shot("agent-offer");
  summary.axe_minor += await accessible(page, "offer");

  step("accept, and the context shows as text");
  await page.locator("#accept").click();
  const card = page.locator(`article[data-ticket="${first}"]`);
  await card.waitFor();
  check((await card.locator(".context").textContent()).includes(hostile), "the context is not shown as text");
  check((await card.locator(".context img").count()) === 0, "the context was rendered as HTML");
  const link = card.locator('.context a[href="https://example.com/t/5521"]');
  check((await link.getAttribute("rel")) === "noopener noreferrer", "a context link opens unsafely");
  check((await link.getAttribute("target")) === "_blank", "a context link opens in the app's tab");
  await waitTicket(first, "assigned");
  await shot("agent-conversation");
  summary.axe_minor += await accessible(page, "conversation");

  step("complete");
  await card.getByLabel("Note (optional)").fill("Refunded the second charge.");
  await card.getByRole("button", { name: "Complete" }).click();
  const done = await waitTicket(first, "completed");
  check(done.outcome === "resolved", `completed as ${done.outcome}`);
  await page.locator("#conversations", { hasText: "No conversations right now." }).waitFor();

  step("decline with a reason");
  const second = await postTicket("Wants to change the delivery address");
  await page.locator("#offer-h").waitFor();
  await page.locator("#decline-reason").selectOption({ label: "Outside my skills" });
  await page.locator("#decline").click();
  await page.locator("#offer-h").waitFor({ state: "detached" });
  await waitTicket(second, "queued");

  step("the connection drops (the gateway restarts) and comes back");
  const held = await postTicket("Asks for a person after the bot failed");
  await page.locator("#offer-h").waitFor();
  await page.locator("#accept").click();
  const heldCard = page.locator(`article[data-ticket="${held}"]`);
  await heldCard.waitFor();
  await heldCard.getByLabel("Note (optional)").fill("A draft the restart must not lose");
  writeFileSync(RESTART, "");
  await page.getByRole("status").filter({ hasText: "Connection lost" }).waitFor({ timeout: 20_000 });
  await shot("agent-reconnecting");
  for (let i = 0; existsSync(RESTART); i++) {
    check(i < 200, "the gateway did not come back");
    await page.waitForTimeout(100);
  }
  await page.getByRole("status").filter({ hasText: "Connected" }).waitFor({ timeout: 20_000 });
  await page.locator(`article[data-ticket="${held}"]`).waitFor();
  await page.locator("button[data-status=available][aria-pressed=true]").waitFor();
  check(
    (await heldCard.getByLabel("Note (optional)").inputValue()) === "A draft the restart must not lose",
    "the note typed before the connection dropped is gone",
  );
  await heldCard.getByRole("button", { name: "Complete" }).click();
  await waitTicket(held, "completed");

  step("offers left to lapse make the agent away");
  for (const what of ["First lapse", "Second lapse"]) {
    await postTicket(what);
    await page.locator(".summary", { hasText: what }).waitFor();
    await page.locator(".notice", { hasText: "The offer is gone." }).waitFor({ timeout: 20_000 });
  }
  await page.getByRole("alert").filter({ hasText: "You missed 2 offers" }).waitFor();
  await shot("agent-away");
  summary.axe_minor += await accessible(page, "away");

  step("one tap back to available");
  await page.getByRole("button", { name: "I'm back — take offers" }).click();
  await page.locator("button[data-status=available][aria-pressed=true]").waitFor();

  step("today's earnings in the agent's currency");
  await page.locator("#earned", { hasText: "€" }).waitFor();
  await shot("agent-today");
  check(errors.length === 0, `the page reported: ${errors.join("; ")}`);

  step("another tab takes the connection; this one says so and can take it back");
  const other = await context.newPage();
  await other.goto(`${APP}/app/#token=${AGENT_TOKEN}`);
  await other.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  await page.getByRole("alert").filter({ hasText: "another device or tab" }).waitFor();
  await page.getByRole("button", { name: "Use it here" }).click();
  await page.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  await other.getByRole("alert").filter({ hasText: "another device or tab" }).waitFor();

  step("the app speaks Swedish to a Swedish browser");
  const swedish = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "sv-SE" });
  const sv = await swedish.newPage();
  await sv.goto(`${APP}/app/`);
  await sv.getByRole("heading", { name: "Logga in" }).waitFor();
  check((await sv.evaluate(() => document.documentElement.lang)) === "sv", "the page is not marked Swedish");
  await sv.screenshot({ path: `${SCREENSHOTS}/agent-sign-in-sv.png`, fullPage: true });
  summary.screens.push("agent-sign-in-sv");
  summary.axe_minor += await accessible(sv, "sign-in");
  return summary;
});
