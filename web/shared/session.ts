// The token of a signed-in user: handed over in the URL fragment (`#token=…`, which never
// reaches a server) and moved at once to sessionStorage, the address bar cleared; or pasted
// into the sign-in form. Never in a query string.

import { el } from "./view";

/** The token of this tab's session, taking one from the fragment first. */
export function takeToken(key: string): string {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(key, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(key) ?? "";
}

/** The words of a sign-in form. */
export type SignInWords = { title: string; help: string; token: string; submit: string };

/** The sign-in form (a pasted token); `onToken` gets the token once it is kept in
 * sessionStorage under `key`. */
export function signInForm(key: string, words: SignInWords, why: string, onToken: (token: string) => void): HTMLElement {
  const input = el("textarea", { id: "token", rows: "4", autocomplete: "off", spellcheck: "false" }) as HTMLTextAreaElement;
  const form = el(
    "form",
    { class: "card" },
    el("h2", {}, words.title),
    el("p", {}, words.help),
    why ? el("p", { class: "error", role: "alert" }, why) : null,
    el("label", { for: "token" }, words.token),
    input,
    el("button", { type: "submit", class: "primary" }, words.submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(key, token);
    onToken(token);
  });
  return form;
}

/** A `fetch` with the bearer token; the JSON body (or null for none) and the status. */
export async function call<T>(
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T | null; date: number | null }> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: T | null = null;
  try {
    parsed = text ? (JSON.parse(text) as T) : null;
  } catch {
    parsed = null;
  }
  const date = Date.parse(response.headers.get("Date") ?? "");
  return { status: response.status, body: parsed, date: Number.isNaN(date) ? null : date };
}
