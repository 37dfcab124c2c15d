// The agents' web app (API.md §12): sign in, go online, take offers, work the conversations,
// see the shift and what it has earned. Everything the customer or the server sent is put on
// the page as text (textContent), never as HTML.
import "../shared/base.css";
import { Connection, type ConnectionState, type Frame } from "./connection";
import { locale, t, translate, type WordKey } from "./i18n";
import { call, signInForm, takeToken as tokenFromPage } from "../shared/session";
import { el, formatDuration, localMidnight, money } from "../shared/view";

const TOKEN_KEY = "dispatch.token";

type Offer = {
  offer_id: string;
  ticket_id: string;
  summary: string;
  language: string;
  skills: Record<string, number>;
  priority: number;
  waited_secs: number;
  expires_at: string;
};
type Assigned = {
  ticket_id: string;
  conversation_id: string;
  summary: string;
  language: string;
  skills: Record<string, number>;
  priority: number;
  context: Record<string, unknown>;
  assigned_at: string;
};
type Shift = {
  started_at: string;
  open: boolean;
  paid_secs: number;
  pay_cents: number;
  hourly_rate_cents: number;
  currency: string;
};

const state = {
  token: "",
  agentId: "",
  displayName: "",
  timezone: "UTC",
  currency: "EUR",
  status: "offline",
  offer: null as Offer | null,
  offerShownAt: 0,
  assigned: [] as Assigned[],
  missed: 0,
  notice: "" as string,
  clockOffsetMs: 0,
  shifts: [] as Shift[],
  shiftsLoadedAt: 0,
  pendingAccept: null as string | null,
  declineReason: "",
  connection: { kind: "connecting" } as ConnectionState,
};

let connection: Connection | null = null;
const main = document.getElementById("main") as HTMLElement;
const connectionPill = document.getElementById("connection") as HTMLElement;
document.documentElement.lang = locale;
translate(document);

function signOut(why = ""): void {
  // Signing out ends the shift, rather than leaving it to the disconnect grace period.
  if (!why && state.status !== "offline") connection?.send({ type: "set_status", status: "offline" });
  connection?.stop();
  connection = null;
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  showSignIn(why);
}

function showSignIn(why: string): void {
  connectionPill.textContent = "";
  const words = { title: t("signInTitle"), help: t("signInHelp"), token: t("token"), submit: t("signIn") };
  main.replaceChildren(signInForm(TOKEN_KEY, words, why, (token) => void start(token)));
  drawn.clear();
  articles.clear();
}

/** The service did not answer: said, and tried again in 5 s or at a tap. */
function showUnavailable(token: string): void {
  const again = el("button", { type: "button", class: "primary" }, t("tryAgain"));
  const timer = window.setTimeout(() => void start(token), 5000);
  again.addEventListener("click", () => {
    window.clearTimeout(timer);
    void start(token);
  });
  main.replaceChildren(el("section", { class: "card", role: "alert" }, el("p", {}, t("unavailable")), again));
  drawn.clear();
}

/** Another tab or device took the agent's one connection (close code 4009). */
function showReplaced(): void {
  connectionPill.textContent = "";
  const again = el("button", { type: "button", class: "primary" }, t("useHere"));
  again.addEventListener("click", () => void start(state.token));
  main.replaceChildren(el("section", { class: "card", role: "alert" }, el("p", {}, t("replaced")), again));
  drawn.clear();
}

/** A GET of the agent's own API: its body, or null (and signed out for a refused token). */
async function api<T>(path: string): Promise<T | null> {
  const answer = await call<T>(state.token, "GET", path);
  if (answer.status === 401 || answer.status === 403) {
    signOut(t("badToken"));
    return null;
  }
  return answer.status === 200 ? answer.body : null;
}

async function loadProfile(): Promise<boolean> {
  const me = await api<{ agent_id: string; display_name: string; timezone: string; currency: string }>("/v1/me");
  if (!me) return false;
  state.agentId = me.agent_id;
  state.displayName = me.display_name;
  state.timezone = me.timezone;
  state.currency = me.currency;
  return true;
}

let shiftsTimer: number | undefined;

/** Today's shifts from the ledger, which stores a shift's start a moment after it begins:
 * while on shift and the running one is not there yet, asked again (up to 10 times). */
async function loadShifts(tries = 10): Promise<void> {
  window.clearTimeout(shiftsTimer);
  const from = localMidnight(state.timezone, new Date());
  const to = new Date(Date.now() + 60_000);
  const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  const report = await api<{ shifts: Shift[] }>(`/v1/me/shifts?${query}`);
  if (report) {
    state.shifts = report.shifts;
    state.shiftsLoadedAt = Date.now();
  }
  const onShift = state.status !== "offline";
  if (tries > 1 && onShift !== state.shifts.some((s) => s.open)) {
    shiftsTimer = window.setTimeout(() => void loadShifts(tries - 1), 1000);
  }
  render();
}

async function start(token: string): Promise<void> {
  state.token = token;
  let loaded = false;
  try {
    loaded = await loadProfile();
  } catch {
    loaded = false;
  }
  if (!loaded) {
    if (state.token) showUnavailable(token);
    return;
  }
  connection?.stop();
  connection = new Connection(token, onFrame, (s) => {
    state.connection = s;
    if (s.kind === "refused" && s.code === 4009) showReplaced();
    else if (s.kind === "refused" && s.code === 4003) signOut(t("removed"));
    else if (s.kind === "refused") signOut(t("badToken"));
    else render();
  });
  connection.start();
  void loadShifts();
}

/** Sends a frame; false (and the agent told) when the connection is down. */
function send(frame: Frame): boolean {
  const sent = connection?.send(frame) ?? false;
  if (!sent) state.notice = t("notSent");
  render();
  return sent;
}

function alertOffer(offer: Offer): void {
  const announce = document.getElementById("announce");
  if (announce) announce.textContent = `${t("offer")}: ${offer.summary}`;
  navigator.vibrate?.([200, 100, 200]);
  beep();
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    new Notification(t("offer"), { body: offer.summary, tag: offer.offer_id });
  }
}

let audio: AudioContext | null = null;
// Browsers allow sound only after a gesture: the first tap anywhere makes it possible.
document.addEventListener("pointerdown", () => {
  audio ??= new AudioContext();
  void audio.resume();
});
function beep(): void {
  if (!audio) return;
  void audio.resume();
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.2, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
  osc.connect(gain).connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + 0.4);
}

function onFrame(frame: Frame): void {
  switch (frame.type) {
    case "welcome": {
      if (state.notice === t("notSent")) state.notice = "";
      state.clockOffsetMs = Date.parse(String(frame.server_time)) - Date.now();
      state.status = String(frame.status);
      state.assigned = (frame.active_tickets as Assigned[]) ?? [];
      state.offer = (frame.pending_offer as Offer | null) ?? null;
      state.offerShownAt = Date.now();
      // An accept whose answer was lost with the connection is safe to send again.
      if (state.pendingAccept && state.offer?.offer_id === state.pendingAccept) {
        connection?.send({ type: "accept", offer_id: state.pendingAccept });
      } else {
        state.pendingAccept = null;
      }
      break;
    }
    case "status":
      state.status = String(frame.status);
      if (state.status === "available") state.missed = 0;
      void loadShifts();
      break;
    case "offer":
      state.offer = frame as unknown as Offer;
      state.offerShownAt = Date.now();
      state.notice = "";
      alertOffer(state.offer);
      break;
    case "offer_revoked":
      if (state.offer?.offer_id === frame.offer_id) state.offer = null;
      if (frame.reason === "expired") state.missed += 1;
      state.notice = t("revoked");
      break;
    case "assigned": {
      const ticket = frame as unknown as Assigned;
      state.assigned = [...state.assigned.filter((a) => a.ticket_id !== ticket.ticket_id), ticket];
      if (state.offer?.ticket_id === ticket.ticket_id) state.offer = null;
      state.pendingAccept = null;
      state.missed = 0;
      break;
    }
    case "ticket_cancelled":
      state.assigned = state.assigned.filter((a) => a.ticket_id !== frame.ticket_id);
      state.notice = t("cancelled");
      break;
    case "error":
      state.notice = String(frame.message);
      if (frame.code === "offer_not_found" || frame.code === "offer_expired") {
        state.offer = null;
        state.pendingAccept = null;
      }
      break;
  }
  render();
}

function renderConnection(): void {
  const s = state.connection;
  const [text, cls] =
    s.kind === "open"
      ? [t("online"), "ok"]
      : s.kind === "waiting"
        ? [t("offlineConn", { s: s.retryInSecs }), "bad"]
        : [t("connecting"), "wait"];
  if (connectionPill.textContent !== text) connectionPill.textContent = text;
  connectionPill.className = `pill ${cls}`;
}

function statusCard(): HTMLElement {
  const buttons = (["available", "break", "offline"] as const).map((status) => {
    const button = el("button", { type: "button", "aria-pressed": String(state.status === status), "data-status": status, "data-focus": status }, t(status));
    button.addEventListener("click", () => {
      send({ type: "set_status", status });
    });
    return button;
  });
  const timer = shiftTimerText();
  const card = el(
    "section",
    { class: "card", "aria-labelledby": "status-h" },
    el("h2", { id: "status-h" }, `${state.displayName} · ${t(state.status as WordKey)}`),
    el("div", { class: "switch", role: "group", "aria-label": t("status") }, ...buttons),
    el("p", { id: "shift-timer", class: "muted" }, timer),
  );
  if ("Notification" in window && Notification.permission === "default") {
    const ask = el("button", { type: "button", class: "link" }, t("notifications"));
    ask.addEventListener("click", () => void Notification.requestPermission().then(render));
    card.append(ask);
  }
  return card;
}

function shiftTimerText(): string {
  const open = state.shifts.find((s) => s.open);
  return open ? `${t("shift")} ${formatDuration((Date.now() - Date.parse(open.started_at)) / 1000)}` : t("noShift");
}

function waitedText(offer: Offer): string {
  return t("waited", { t: formatDuration(offer.waited_secs + (Date.now() - state.offerShownAt) / 1000) });
}

/** Whole seconds left to answer, by the server's clock. */
function secondsLeft(offer: Offer): number {
  return Math.max(0, Math.ceil((Date.parse(offer.expires_at) - state.clockOffsetMs - Date.now()) / 1000));
}

function awayCard(): HTMLElement | null {
  if (state.status !== "away") return null;
  const back = el("button", { type: "button", class: "primary" }, t("backToAvailable"));
  back.addEventListener("click", () => send({ type: "set_status", status: "available" }));
  return el(
    "section",
    { class: "card warn", role: "alert" },
    el("p", {}, state.missed > 0 ? t("awayExplained", { n: state.missed }) : t("awayUnknown")),
    back,
  );
}

function skillsText(skills: Record<string, number>): string {
  return Object.entries(skills)
    .map(([name, level]) => `${name} ${level}`)
    .join(", ");
}

function offerCard(): HTMLElement | null {
  const offer = state.offer;
  if (!offer) return null;
  const left = secondsLeft(offer);
  const accept = el("button", { type: "button", class: "primary", id: "accept" }, t("accept"));
  accept.addEventListener("click", () => {
    state.pendingAccept = offer.offer_id;
    send({ type: "accept", offer_id: offer.offer_id });
  });
  const reasons: WordKey[] = ["reasonBusy", "reasonSkills", "reasonLanguage", "reasonOther"];
  const reason = el(
    "select",
    { id: "decline-reason" },
    ...reasons.map((r) => el("option", { value: t(r) }, t(r))),
  ) as HTMLSelectElement;
  // The card is redrawn every second for the countdown: keep the reason chosen.
  if (state.declineReason) reason.value = state.declineReason;
  reason.addEventListener("change", () => {
    state.declineReason = reason.value;
  });
  const decline = el("button", { type: "button", id: "decline" }, t("decline"));
  decline.addEventListener("click", () => {
    if (send({ type: "decline", offer_id: offer.offer_id, reason: reason.value })) {
      state.offer = null;
      render();
    }
  });
  return el(
    "section",
    { class: "card offer", "aria-labelledby": "offer-h" },
    el("h2", { id: "offer-h" }, t("offer")),
    el("p", { class: "summary" }, offer.summary),
    el(
      "p",
      { class: "muted" },
      `${offer.language.toUpperCase()} · ${t("priority", { p: offer.priority })}${
        Object.keys(offer.skills).length ? ` · ${t("skills")}: ${skillsText(offer.skills)}` : ""
      }`,
    ),
    el("p", { class: "muted", id: "waited" }, waitedText(offer)),
    el("p", { id: "countdown", class: left <= 5 ? "countdown urgent" : "countdown", "aria-live": "off" }, t("expiresIn", { s: left })),
    el("div", { class: "actions" }, accept, el("label", { for: "decline-reason", class: "sr-only" }, t("declineReason")), reason, decline),
  );
}

/** A context value as text; an http(s) URL as a link opened in a new, unrelated tab. */
function contextValue(value: unknown): Node {
  if (typeof value === "string" && /^https?:\/\//i.test(value)) {
    return el("a", { href: value, target: "_blank", rel: "noopener noreferrer" }, value);
  }
  return document.createTextNode(typeof value === "string" ? value : JSON.stringify(value));
}

function conversation(ticket: Assigned): HTMLElement {
  const context = el(
    "dl",
    { class: "context" },
    ...Object.entries(ticket.context ?? {}).flatMap(([key, value]) => [el("dt", {}, key), el("dd", {}, contextValue(value))]),
  );
  const name = `outcome-${ticket.ticket_id}`;
  const outcome = (value: string, label: WordKey, checked: boolean) =>
    el(
      "label",
      {},
      el("input", { type: "radio", name, value, ...(checked ? { checked: "" } : {}) }),
      t(label),
    );
  const note = el("textarea", { rows: "2", maxlength: "2000", "aria-label": t("note"), placeholder: t("note") }) as HTMLTextAreaElement;
  const complete = el("button", { type: "button", class: "primary" }, t("complete"));
  const article = el(
    "article",
    { class: "card", "data-ticket": ticket.ticket_id },
    el("h3", {}, ticket.summary),
    el("p", { class: "muted" }, `${ticket.language.toUpperCase()} · ${ticket.conversation_id}`),
    el("h4", {}, t("context")),
    context,
    el("fieldset", {}, el("legend", {}, t("outcome")), outcome("resolved", "resolved", true), outcome("unresolved", "unresolved", false)),
    note,
    complete,
  );
  complete.addEventListener("click", () => {
    const chosen = article.querySelector<HTMLInputElement>(`input[name="${name}"]:checked`)?.value ?? "resolved";
    const frame: Frame = { type: "complete", ticket_id: ticket.ticket_id, outcome: chosen };
    if (note.value.trim()) frame.note = note.value.trim();
    // Removed only once sent: while reconnecting, the conversation and its note stay.
    if (!send(frame)) return;
    state.assigned = state.assigned.filter((a) => a.ticket_id !== ticket.ticket_id);
    render();
    void loadShifts();
  });
  return article;
}

/** A shift's paid seconds and pay now: the running one goes on earning between reloads (the
 * ledger's figures are authoritative, and reloaded at every change of status). */
function earnedSoFar(shift: Shift): [number, number] {
  if (!shift.open || state.status === "break" || state.status === "away") {
    return [shift.paid_secs, shift.pay_cents];
  }
  const paid = shift.paid_secs + Math.floor((Date.now() - state.shiftsLoadedAt) / 1000);
  return [paid, Math.round((paid * shift.hourly_rate_cents) / 3600)];
}

function todayTexts(): [string, string] {
  const figures = state.shifts.map(earnedSoFar);
  const paid = figures.reduce((sum, [secs]) => sum + secs, 0);
  const cents = figures.reduce((sum, [, pay]) => sum + pay, 0);
  const currency = state.shifts[0]?.currency ?? state.currency;
  return [`${t("worked")}: ${formatDuration(paid)}`, `${t("earned")}: ${money(cents, currency, locale)}`];
}

function todayCard(): HTMLElement {
  const [paid, earned] = todayTexts();
  return el(
    "section",
    { class: "card", "aria-labelledby": "today-h" },
    el("h2", { id: "today-h" }, t("today")),
    el("p", { id: "paid" }, paid),
    el("p", { id: "earned" }, earned),
  );
}

/** What changes with the clock alone, updated in place: redrawing the page would replace the
 * buttons under the agent's finger. */
function tick(): void {
  const text = (id: string, value: string) => {
    const node = document.getElementById(id);
    if (node && node.textContent !== value) node.textContent = value;
  };
  if (state.offer) {
    const left = secondsLeft(state.offer);
    text("countdown", t("expiresIn", { s: left }));
    document.getElementById("countdown")?.classList.toggle("urgent", left <= 5);
    text("waited", waitedText(state.offer));
  }
  text("shift-timer", shiftTimerText());
  const [paid, earned] = todayTexts();
  text("paid", paid);
  text("earned", earned);
}

/** The page's parts, built once; each is redrawn only when what it shows changed, so that
 * nothing is replaced under the agent's finger, and a half-typed note survives everything. */
const slots = {
  status: el("div", {}),
  away: el("div", {}),
  notice: el("p", { class: "notice", role: "status", "aria-live": "polite", id: "notice", hidden: "" }),
  offer: el("div", {}),
  conversations: el(
    "section",
    { id: "conversations", "aria-labelledby": "conv-h" },
    el("h2", { id: "conv-h" }, t("conversations")),
    el("p", { class: "muted", id: "no-conversations" }, t("none")),
  ),
  today: el("div", {}),
  signOut: el("button", { type: "button", class: "link" }, t("signOut")),
};
slots.signOut.addEventListener("click", () => signOut());
const drawn = new Map<HTMLElement, string>();
const articles = new Map<string, HTMLElement>();

/** Fills `slot` with `build()` when `key` differs from what it shows. */
function redraw(slot: HTMLElement, key: string, build: () => HTMLElement | null): void {
  if (drawn.get(slot) === key) return;
  drawn.set(slot, key);
  const focused = slot.contains(document.activeElement) ? document.activeElement?.getAttribute("data-focus") : null;
  const built = build();
  slot.replaceChildren(...(built ? [built] : []));
  if (focused) slot.querySelector<HTMLElement>(`[data-focus="${focused}"]`)?.focus();
}

function render(): void {
  if (!state.token || state.connection.kind === "refused") return;
  renderConnection();
  if (!main.contains(slots.status)) {
    main.replaceChildren(slots.status, slots.away, slots.notice, slots.offer, slots.conversations, slots.today, slots.signOut);
  }
  const permission = "Notification" in window ? Notification.permission : "none";
  redraw(slots.status, `${state.displayName}|${state.status}|${permission}`, statusCard);
  redraw(slots.away, `${state.status}|${state.missed}`, awayCard);
  if (slots.notice.textContent !== state.notice) slots.notice.textContent = state.notice;
  slots.notice.hidden = !state.notice;
  redraw(slots.offer, state.offer?.offer_id ?? "", offerCard);
  // Conversations come and go one by one; the others, and what is typed in them, stay.
  const held = new Set(state.assigned.map((a) => a.ticket_id));
  for (const [id, article] of articles) {
    if (!held.has(id)) {
      article.remove();
      articles.delete(id);
    }
  }
  for (const ticket of state.assigned) {
    if (!articles.has(ticket.ticket_id)) {
      const article = conversation(ticket);
      articles.set(ticket.ticket_id, article);
      slots.conversations.append(article);
    }
  }
  (document.getElementById("no-conversations") as HTMLElement).hidden = articles.size > 0;
  redraw(slots.today, "today", todayCard);
  tick();
}

// The countdown and the shift's figures tick without a frame (four times a second, so that
// the seconds shown are never more than a quarter of a second late).
window.setInterval(() => {
  if (state.token && state.connection.kind !== "refused") tick();
}, 250);

const token = tokenFromPage(TOKEN_KEY);
if (token) void start(token);
else showSignIn("");
