// Small DOM and formatting helpers: elements are built with text children only.

type Child = Node | string | null;

/** An element with attributes and children; strings become text nodes, never HTML. */
export function el(tag: string, attributes: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) {
    if (child !== null) element.append(child);
  }
  return element;
}

/** 1 h 05 min, 4 min 10 s, 12 s. */
export function formatDuration(totalSecs: number): string {
  const secs = Math.max(0, Math.floor(totalSecs));
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

/** The instant the current day began in the IANA zone `timeZone`. */
export function localMidnight(timeZone: string, now: Date): Date {
  const parts = (date: Date) => {
    const p = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    }).formatToParts(date);
    const get = (type: string) => Number(p.find((x) => x.type === type)?.value ?? 0);
    return { y: get("year"), mo: get("month"), d: get("day"), h: get("hour"), mi: get("minute"), s: get("second") };
  };
  const local = parts(now);
  // The zone's offset now, applied to its midnight (off by the DST change on the day it happens).
  const asUtc = Date.UTC(local.y, local.mo - 1, local.d, local.h, local.mi, local.s);
  const offsetMs = asUtc - Math.floor(now.getTime() / 1000) * 1000;
  return new Date(Date.UTC(local.y, local.mo - 1, local.d) - offsetMs);
}

/** Minor units of `currency` as money in `locale`'s style (1650 EUR → €16.50). */
export function money(minor: number, currency: string, locale: string): string {
  const format = new Intl.NumberFormat(locale, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(minor / 10 ** digits);
}
