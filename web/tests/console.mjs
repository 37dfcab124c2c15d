// The operators' console in headless Debian Chromium, beside an agent working in the agents'
// app (tests/tests/web_app.rs starts the services and passes their addresses and tokens).
// Exits 0 when every step held; otherwise prints the step that failed and exits 1.
import { accessible, api, APP, check, DISPATCHER, env, postTicket, run, SCREENSHOTS } from "./harness.mjs";

const AGENT = env("AGENT_ID");
const AGENT_TOKEN = env("AGENT_TOKEN");
const ADMIN_TOKEN = env("ADMIN_TOKEN");

await run(async (browser, step) => {
  const screens = [];
  const consoleContext = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
  const ops = await consoleContext.newPage();
  const errors = [];
  ops.on("pageerror", (e) => errors.push(String(e)));
  const shot = async (page, name) => {
    await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
    screens.push(name);
  };
  const row = (id) => ops.locator("#roster tbody tr", { hasText: id });

  step("sign in to the console with the token in the fragment");
  await ops.goto(`${DISPATCHER}/console/#token=${ADMIN_TOKEN}`);
  await ops.getByRole("status").filter({ hasText: "Live" }).waitFor();
  check((await ops.evaluate(() => location.hash)) === "", "the token stays in the address bar");
  await row(AGENT).filter({ hasText: "offline" }).waitFor();
  check((await ops.locator(".map path").count()) >= 1, "the map draws no geofence");

  step("the agent appears in the pool when it goes online");
  const agentContext = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, locale: "en-GB" });
  const agent = await agentContext.newPage();
  await agent.goto(`${APP}/app/#token=${AGENT_TOKEN}`);
  await agent.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  await agent.locator("button[data-status=available]").click();
  await row(AGENT).filter({ hasText: "available" }).waitFor();
  await ops.locator(".legend", { hasText: "available: 1" }).waitFor();
  check((await ops.locator(".map circle.status-available").count()) === 1, "the agent is not on the map");
  await shot(ops, "console-pool");
  await accessible(ops, "console");

  step("the queue grows while the agent is on break");
  await agent.locator("button[data-status=break]").click();
  await row(AGENT).filter({ hasText: "break" }).waitFor();
  const first = await postTicket("Refund for a double charge");
  const second = await postTicket("Change of delivery address");
  const sv = ops.locator("#queues tbody tr", { hasText: "sv" });
  await sv.filter({ has: ops.locator("td:nth-child(2)", { hasText: /^2$/ }) }).waitFor();
  await ops.locator("#tickets tr", { hasText: first }).filter({ hasText: "queued" }).waitFor();
  await shot(ops, "console-queues");

  step("the queue drains and the tickets move to assigned");
  await agent.locator("button[data-status=available]").click();
  for (const id of [first, second]) {
    await agent.locator("#accept").click();
    await agent.locator(`article[data-ticket="${id}"]`).waitFor();
    await ops.locator("#tickets tr", { hasText: id }).filter({ hasText: "assigned" }).waitFor();
  }
  await sv.filter({ has: ops.locator("td:nth-child(2)", { hasText: /^0$/ }) }).waitFor();
  check((await ops.locator("#tickets tr", { hasText: first }).textContent()).includes(AGENT), "the holder is not shown");

  step("cancelling from the console reaches the agent");
  await ops.getByRole("button", { name: `Cancel ticket ${second}` }).click();
  await ops.getByRole("button", { name: `Confirm cancelling ticket ${second}` }).click();
  await ops.locator("#tickets tr", { hasText: second }).filter({ hasText: "cancelled" }).waitFor();
  await agent.locator(".notice", { hasText: "The customer left" }).waitFor();
  await agent.locator(`article[data-ticket="${second}"]`).waitFor({ state: "detached" });
  check((await api("GET", `/v1/tickets/${second}`)).body.status === "cancelled", "the API does not say cancelled");

  step("a roster edit the API refuses shows its detail, then one it takes");
  await ops.getByRole("button", { name: `Edit ${AGENT}` }).click();
  await ops.locator("#f-languages").fill("sv, xx");
  await ops.getByRole("button", { name: "Save" }).click();
  const refusal = ops.locator("#form-error");
  await refusal.waitFor();
  check((await refusal.textContent()).includes("languages"), `the 422 detail is not shown: ${await refusal.textContent()}`);
  await shot(ops, "console-roster-error");
  await ops.locator("#f-languages").fill("sv, en, fi");
  await ops.getByRole("button", { name: "Save" }).click();
  await ops.locator(".notice", { hasText: `Agent ${AGENT} saved.` }).waitFor();
  await row(AGENT).filter({ hasText: "fi" }).waitFor();

  step("search, add and remove an agent");
  await ops.locator("#f-agent_id").fill("a-new");
  await ops.locator("#f-display_name").fill("Nils N.");
  await ops.locator("#f-languages").fill("sv");
  await ops.getByRole("button", { name: "Add agent" }).click();
  await row("a-new").waitFor();
  await ops.locator("#roster-search").fill("nils");
  check((await ops.locator("#roster tbody tr").count()) === 1, "the search does not filter the roster");
  await ops.getByRole("button", { name: "Remove a-new" }).click();
  await ops.getByRole("button", { name: "Confirm removing a-new" }).click();
  await ops.locator(".notice", { hasText: "Agent a-new removed." }).waitFor();
  await row("a-new").waitFor({ state: "detached" });
  await accessible(ops, "console after edits");
  check(errors.length === 0, `the console reported: ${errors.join("; ")}`);
  return { screens };
});
