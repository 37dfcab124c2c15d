// The token of a signed-in user: handed over in the URL fragment (`#token=…`, which never
// reaches a server) and moved at once to sessionStorage, the address bar cleared; or pasted
// into the sign-in form. Never in a query string.

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
