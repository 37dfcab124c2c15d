// The operators' console (API.md §12): the live pool (agents by status and language, on a map
// with the geofences), the queues with their waits, the tickets as they move, and the roster.
// Everything from the API is put on the page as text.
import "../shared/base.css";
import "./console.css";
import { call, signInForm, takeToken } from "../shared/session";
import { el, formatDuration } from "../shared/view";
import { EventStream, type LiveEvent, type StreamState } from "./events";

const TOKEN_KEY = "dispatch.console.token";
const STATUSES = ["available", "break", "away", "offline"] as const;

type Agent = {
  agent_id: string;
  display_name: string;
  languages: string[];
  skills: Record<string, number>;
  max_concurrent: number;
  location: { lat: number; lon: number } | null;
  timezone: string;
  hourly_rate_cents: number;
  currency: string;
  state: { status: string; connected: boolean; active_tickets: string[] };
};
type Queue = {
  language: string;
  waiting: number;
  oldest_wait_secs: number | null;
  agents_online: number;
  agents_available: number;
  estimated_wait_secs: number | null;
};
type Ticket = {
  ticket_id: string;
  status: string;
  language: string;
  priority: number;
  summary: string;
  agent_id: string | null;
};
type Problem = { detail?: string; code?: string };
type Geometry = { type: string; coordinates: unknown };
type Fence = { properties: { name: string }; geometry: Geometry };

const state = {
  token: "",
  agents: new Map<string, Agent>(),
  queues: [] as Queue[],
  tickets: new Map<string, Ticket>(),
  fences: [] as Fence[],
  stream: "connecting" as StreamState,
  search: "",
  editing: null as Agent | null,
  formError: "",
  notice: "",
  /** Changes whenever the form is to start afresh (another agent, or saved). */
  formVersion: 0,
  /** The ticket or agent whose Cancel or Remove was tapped once: a second tap does it. */
  confirming: "",
};

const main = document.getElementById("main") as HTMLElement;
const pill = document.getElementById("connection") as HTMLElement;
let stream: EventStream | null = null;
let poller: number | undefined;

const api = <T>(method: string, path: string, body?: unknown) => call<T>(state.token, method, path, body);

function signIn(why: string): void {
  stream?.stop();
  window.clearInterval(poller);
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  pill.textContent = "";
  const words = { title: "Sign in", help: "Paste an operator's token (role admin).", token: "Token", submit: "Sign in" };
  main.replaceChildren(signInForm(TOKEN_KEY, words, why, (token) => void start(token)));
}

let agentsLoading: Promise<void> | null = null;
let agentsAgain = false;
/** Reloads the roster: one load at a time, and one more after it if asked meanwhile. */
function loadAgents(): Promise<void> {
  if (agentsLoading) {
    agentsAgain = true;
    return agentsLoading;
  }
  agentsLoading = fetchAgents().finally(() => {
    agentsLoading = null;
    if (agentsAgain) {
      agentsAgain = false;
      void loadAgents();
    }
  });
  return agentsLoading;
}

async function fetchAgents(): Promise<void> {
  const agents = new Map<string, Agent>();
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const query: URLSearchParams = new URLSearchParams({ limit: "1000", ...(cursor ? { cursor } : {}) });
    const answer: { status: number; body: { agents: Agent[]; next_cursor: string | null } | null } = await api(
      "GET",
      `/v1/agents?${query}`,
    );
    if (answer.status !== 200 || !answer.body) return;
    for (const agent of answer.body.agents) agents.set(agent.agent_id, agent);
    cursor = answer.body.next_cursor;
    if (!cursor) break;
  }
  state.agents = agents;
  render();
}

async function loadQueues(): Promise<void> {
  const answer = await api<{ queues: Queue[] }>("GET", "/v1/queues");
  if (answer.status === 200 && answer.body) state.queues = answer.body.queues;
  render();
}

async function start(token: string): Promise<void> {
  state.token = token;
  const probe = await api<Problem>("GET", "/v1/geofences");
  if (probe.status === 401 || probe.status === 403) {
    signIn(probe.body?.detail ?? "This token was not accepted.");
    return;
  }
  state.fences = ((probe.body as unknown as { features?: Fence[] })?.features ?? []);
  await Promise.all([loadAgents(), loadQueues()]);
  stream = new EventStream(token, onEvent, (s) => {
    state.stream = s;
    if (s === "refused") signIn("This token was not accepted.");
    else render();
  }, 15 * 60, probe.date ?? Date.now());
  stream.start();
  window.clearInterval(poller);
  poller = window.setInterval(() => void loadQueues(), 3000);
}

let queuesSoon: number | undefined;
function onEvent(event: LiveEvent): void {
  const data = event.body.data;
  if (event.type === "agent.status_changed") {
    const agent = state.agents.get(String(data.agent_id));
    if (agent) agent.state.status = String(data.status);
    else void loadAgents();
  } else if (event.type.startsWith("ticket.")) {
    const ticket = data as unknown as Ticket;
    // Rows keep their place (first seen, newest first), so a button does not move away.
    if (ticket.ticket_id) state.tickets.set(ticket.ticket_id, ticket);
    // The console keeps the latest 500 tickets: a busy day does not grow the page without end.
    for (const id of state.tickets.keys()) {
      if (state.tickets.size <= 500) break;
      state.tickets.delete(id);
    }
    if (event.type === "ticket.assigned" || event.type === "ticket.completed" || event.type === "ticket.cancelled") {
      void loadAgents();
    }
  }
  window.clearTimeout(queuesSoon);
  queuesSoon = window.setTimeout(() => void loadQueues(), 300);
  renderSoon();
}

let renderPending = false;
/** Events come in bursts: the page is redrawn at most five times a second for them. */
function renderSoon(): void {
  if (renderPending) return;
  renderPending = true;
  window.setTimeout(() => {
    renderPending = false;
    render();
  }, 200);
}

function renderPill(): void {
  const [text, cls] =
    state.stream === "open" ? ["Live", "ok"] : state.stream === "retrying" ? ["Events lost — reconnecting", "bad"] : ["Connecting…", "wait"];
  pill.textContent = text;
  pill.className = `pill ${cls}`;
}

function table(headers: string[], rows: (Node | string)[][], label: string): HTMLElement {
  return el(
    "table",
    { "aria-label": label },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))))),
  );
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag: string, attributes: Record<string, string>, ...children: Node[]): SVGElement {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

/** The rings of a Polygon or MultiPolygon, as [lon, lat] lists. */
function rings(geometry: Geometry): number[][][] {
  if (geometry.type === "Polygon") return geometry.coordinates as number[][][];
  if (geometry.type === "MultiPolygon") return (geometry.coordinates as number[][][][]).flat();
  return [];
}

/** The geofences and the agents with a location, in an equirectangular projection. */
function map(): HTMLElement {
  const points: number[][] = state.fences.flatMap((f) => rings(f.geometry).flat());
  const located = [...state.agents.values()].filter((a) => a.location);
  for (const a of located) points.push([a.location!.lon, a.location!.lat]);
  if (points.length === 0) return el("p", { class: "muted" }, "No geofences and no located agents.");
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  const pad = 5;
  const [x0, x1] = [Math.min(...lons) - pad, Math.max(...lons) + pad];
  const [y0, y1] = [Math.min(...lats) - pad, Math.max(...lats) + pad];
  const project = ([lon, lat]: number[]) => `${(lon - x0).toFixed(2)},${(y1 - lat).toFixed(2)}`;
  const fences = state.fences.map((f) => {
    const d = rings(f.geometry)
      .map((ring) => `M${ring.map(project).join("L")}Z`)
      .join("");
    const first = rings(f.geometry)[0]?.[0] ?? [x0, y1];
    const [tx, ty] = project(first).split(",");
    return svg("g", {}, svg("path", { d }, svg("title", {}, document.createTextNode(f.properties.name))),
      svg("text", { x: tx, y: ty }, document.createTextNode(f.properties.name)));
  });
  const dots = located.map((a) => {
    const [cx, cy] = project([a.location!.lon, a.location!.lat]).split(",");
    return svg("circle", { cx, cy, r: "1.4", class: `status-${a.state.status}` },
      svg("title", {}, document.createTextNode(`${a.display_name} (${a.agent_id}): ${a.state.status}`)));
  });
  const figure = svg("svg", {
    class: "map",
    viewBox: `0 0 ${(x1 - x0).toFixed(2)} ${(y1 - y0).toFixed(2)}`,
    role: "img",
    "aria-label": `Map: ${state.fences.length} geofences, ${located.length} located agents`,
  }, ...fences, ...dots);
  return figure as unknown as HTMLElement;
}

function pool(): HTMLElement {
  const agents = [...state.agents.values()];
  const languages = [...new Set(agents.flatMap((a) => a.languages))].sort();
  const count = (status: string, language?: string) =>
    agents.filter((a) => a.state.status === status && (!language || a.languages.includes(language))).length;
  const legend = el("div", { class: "legend" }, ...STATUSES.map((s) => {
    const swatch = svg("svg", { width: "12", height: "12", "aria-hidden": "true" }, svg("circle", { cx: "6", cy: "6", r: "5", class: `status-${s}` }));
    return el("span", {}, swatch as unknown as HTMLElement, ` ${s}: ${count(s)}`);
  }));
  return el(
    "section",
    { class: "card", id: "pool", "aria-labelledby": "pool-h" },
    el("h2", { id: "pool-h" }, "The pool"),
    legend,
    table(["language", ...STATUSES], languages.map((l) => [l, ...STATUSES.map((s) => String(count(s, l)))]), "Agents by status and language"),
    map(),
  );
}

function queues(): HTMLElement {
  const wait = (secs: number | null) => (secs === null ? "—" : formatDuration(secs));
  return el(
    "section",
    { class: "card", id: "queues", "aria-labelledby": "queues-h" },
    el("h2", { id: "queues-h" }, "Queues"),
    state.queues.length
      ? table(
          ["language", "waiting", "oldest wait", "online", "available", "estimated wait"],
          state.queues.map((q) => [q.language, String(q.waiting), wait(q.oldest_wait_secs), String(q.agents_online), String(q.agents_available), wait(q.estimated_wait_secs)]),
          "Queues by language",
        )
      : el("p", { class: "muted" }, "No queue: nobody online, nothing waiting."),
  );
}

async function cancel(id: string): Promise<void> {
  const answer = await api<Ticket & Problem>("DELETE", `/v1/tickets/${encodeURIComponent(id)}`);
  state.notice = answer.status === 200 ? `Ticket ${id} cancelled.` : (answer.body?.detail ?? `Cancel failed (${answer.status}).`);
  if (answer.status === 200 && answer.body) state.tickets.set(id, answer.body);
  render();
}

function tickets(): HTMLElement {
  const live = [...state.tickets.values()].reverse().slice(0, 100);
  const rows = live.map((t) => {
    const ended = t.status === "completed" || t.status === "cancelled";
    const confirming = state.confirming === t.ticket_id;
    const button = el(
      "button",
      { type: "button", id: `cancel-${t.ticket_id}`, "aria-label": confirming ? `Confirm cancelling ticket ${t.ticket_id}` : `Cancel ticket ${t.ticket_id}` },
      confirming ? "Confirm cancel" : "Cancel",
    );
    button.addEventListener("click", () => {
      if (state.confirming === t.ticket_id) {
        state.confirming = "";
        void cancel(t.ticket_id);
      } else {
        state.confirming = t.ticket_id;
        render();
      }
    });
    return [t.ticket_id, t.status, t.language, String(t.priority), t.agent_id ?? "—", t.summary, ended ? "" : button] as (Node | string)[];
  });
  return el(
    "section",
    { class: "card span", id: "tickets", "aria-labelledby": "tickets-h" },
    el("h2", { id: "tickets-h" }, "Tickets"),
    state.notice ? el("p", { class: "notice", role: "status" }, state.notice) : null,
    live.length
      ? table(["ticket", "status", "language", "priority", "agent", "summary", ""], rows, "Tickets, latest first")
      : el("p", { class: "muted" }, "No ticket in the last 15 minutes."),
  );
}

function field(name: string, label: string, value: string, attributes: Record<string, string> = {}): HTMLElement {
  return el("label", {}, label, el("input", { name, id: `f-${name}`, value, ...attributes }));
}

async function save(form: HTMLFormElement): Promise<void> {
  const f = new FormData(form);
  const text = (name: string) => String(f.get(name) ?? "").trim();
  const list = (name: string) => text(name).split(",").map((s) => s.trim()).filter(Boolean);
  const skills: Record<string, number> = {};
  for (const entry of list("skills")) {
    const [name, level] = entry.split(":").map((s) => s.trim());
    skills[name] = Number(level ?? 1);
  }
  const lat = text("lat");
  const lon = text("lon");
  const profile: Record<string, unknown> = {
    display_name: text("display_name"),
    languages: list("languages"),
    skills,
    max_concurrent: Number(text("max_concurrent")),
    timezone: text("timezone"),
    hourly_rate_cents: Number(text("hourly_rate_cents")),
    currency: text("currency"),
  };
  if (lat || lon) profile.location = { lat: Number(lat), lon: Number(lon) };
  const id = text("agent_id");
  const answer = await api<Agent & Problem>("PUT", `/v1/agents/${encodeURIComponent(id)}`, profile);
  if (answer.status === 200 || answer.status === 201) {
    state.formError = "";
    state.editing = null;
    state.formVersion += 1;
    state.notice = `Agent ${id} ${answer.status === 201 ? "added" : "saved"}.`;
    await loadAgents();
  } else {
    state.formError = answer.body?.detail ?? `The roster refused it (${answer.status}).`;
    render();
  }
}

function profileForm(): HTMLElement {
  const a = state.editing;
  const form = el(
    "form",
    { class: "grid", id: "agent-form", "aria-labelledby": "form-h", "data-version": String(state.formVersion) },
    field("agent_id", "Agent id", a?.agent_id ?? "", a ? { readonly: "" } : { required: "" }),
    field("display_name", "Display name", a?.display_name ?? ""),
    field("languages", "Languages (comma-separated)", a?.languages.join(", ") ?? ""),
    field("skills", "Skills (name:level, comma-separated)", a ? Object.entries(a.skills).map(([k, v]) => `${k}:${v}`).join(", ") : ""),
    field("max_concurrent", "Max concurrent", String(a?.max_concurrent ?? 1), { type: "number" }),
    field("timezone", "Time zone", a?.timezone ?? "UTC"),
    field("hourly_rate_cents", "Hourly rate (cents)", String(a?.hourly_rate_cents ?? 0), { type: "number" }),
    field("currency", "Currency", a?.currency ?? "EUR"),
    field("lat", "Latitude", a?.location ? String(a.location.lat) : ""),
    field("lon", "Longitude", a?.location ? String(a.location.lon) : ""),
    el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, a ? "Save" : "Add agent")),
  ) as HTMLFormElement;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void save(form);
  });
  return el(
    "div",
    {},
    el("h3", { id: "form-h" }, a ? `Edit ${a.agent_id}` : "Add an agent"),
    state.formError ? el("p", { class: "error", role: "alert", id: "form-error" }, state.formError) : null,
    form,
  );
}

async function remove(id: string): Promise<void> {
  const answer = await api<Problem>("DELETE", `/v1/agents/${encodeURIComponent(id)}`);
  state.notice = answer.status === 204 ? `Agent ${id} removed.` : (answer.body?.detail ?? `Remove failed (${answer.status}).`);
  await loadAgents();
}

function roster(): HTMLElement {
  const needle = state.search.toLowerCase();
  const shown = [...state.agents.values()].filter((a) =>
    !needle || a.agent_id.toLowerCase().includes(needle) || a.display_name.toLowerCase().includes(needle) || a.languages.includes(needle));
  const search = el("input", { type: "search", id: "roster-search", placeholder: "Search by id, name or language", "aria-label": "Search the roster", value: state.search }) as HTMLInputElement;
  search.addEventListener("input", () => {
    state.search = search.value;
    render();
  });
  const rows = shown.map((a) => {
    const edit = el("button", { type: "button", id: `edit-${a.agent_id}`, "aria-label": `Edit ${a.agent_id}` }, "Edit");
    edit.addEventListener("click", () => {
      state.editing = a;
      state.formError = "";
      state.formVersion += 1;
      render();
    });
    const confirming = state.confirming === `agent:${a.agent_id}`;
    const removeButton = el(
      "button",
      { type: "button", id: `remove-${a.agent_id}`, "aria-label": confirming ? `Confirm removing ${a.agent_id}` : `Remove ${a.agent_id}` },
      confirming ? "Confirm remove" : "Remove",
    );
    removeButton.addEventListener("click", () => {
      if (confirming) {
        state.confirming = "";
        void remove(a.agent_id);
      } else {
        state.confirming = `agent:${a.agent_id}`;
        render();
      }
    });
    return [a.agent_id, a.display_name, a.state.status, a.languages.join(", "), String(a.state.active_tickets.length), el("div", { class: "row" }, edit, removeButton)];
  });
  return el(
    "section",
    { class: "card span", id: "roster", "aria-labelledby": "roster-h" },
    el("h2", { id: "roster-h" }, "Roster"),
    el("div", { class: "row" }, search),
    table(["agent", "name", "status", "languages", "tickets", ""], rows, "The roster"),
    profileForm(),
  );
}

function render(): void {
  if (!state.token) return;
  renderPill();
  const focused = document.activeElement as HTMLInputElement | null;
  const focusId = focused?.id;
  const caret = focused?.selectionStart ?? null;
  // The form keeps what the operator typed while events redraw the rest.
  const form = document.getElementById("agent-form") as HTMLFormElement | null;
  const typed = form?.dataset.version === String(state.formVersion) ? new FormData(form) : null;
  main.replaceChildren(pool(), queues(), tickets(), roster());
  if (typed) {
    const fresh = document.getElementById("agent-form") as HTMLFormElement | null;
    for (const [name, value] of typed) {
      const input = fresh?.elements.namedItem(name) as HTMLInputElement | null;
      if (input) input.value = String(value);
    }
  }
  if (focusId) {
    const again = document.getElementById(focusId) as HTMLInputElement | null;
    again?.focus();
    if (again && caret !== null && "setSelectionRange" in again) again.setSelectionRange(caret, caret);
  }
}

const token = takeToken(TOKEN_KEY);
if (token) void start(token);
else signIn("");
