// The app's words in English and Swedish; the browser's preferred languages choose.
const en = {
  title: "Dispatch",
  signInTitle: "Sign in",
  signInHelp: "Paste the token your sign-in gave you.",
  token: "Token",
  signIn: "Sign in",
  signOut: "Sign out",
  badToken: "This token was not accepted. Sign in again.",
  connecting: "Connecting…",
  online: "Connected",
  offlineConn: "Connection lost — reconnecting in {s} s",
  status: "Status",
  available: "Available",
  break: "Break",
  offline: "Offline",
  away: "Away",
  awayExplained: "You missed {n} offers, so no more come for now.",
  awayUnknown: "You missed offers, so no more come for now.",
  backToAvailable: "I'm back — take offers",
  shift: "On shift for",
  noShift: "Not on shift",
  offer: "New conversation",
  waited: "Customer has waited {t}",
  expiresIn: "{s} s to answer",
  priority: "Priority {p}",
  skills: "Skills",
  accept: "Accept",
  decline: "Decline",
  declineReason: "Reason",
  reasonBusy: "Busy with another customer",
  reasonSkills: "Outside my skills",
  reasonLanguage: "Language",
  reasonOther: "Other",
  conversations: "Your conversations",
  none: "No conversations right now.",
  context: "Context",
  outcome: "Outcome",
  resolved: "Resolved",
  unresolved: "Not resolved",
  note: "Note (optional)",
  complete: "Complete",
  cancelled: "The customer left; the conversation was closed.",
  revoked: "The offer is gone.",
  today: "Today",
  earned: "Earned",
  worked: "Paid time",
  notifications: "Allow notifications",
  replaced: "You opened Dispatch on another device or tab, so this one stopped.",
  useHere: "Use it here",
  notSent: "Not sent: the connection is down. Try again once it is back.",
  removed: "You were removed from the roster.",
  unavailable: "Dispatch cannot be reached right now.",
  tryAgain: "Try again",
};
type Words = typeof en;

const sv: Words = {
  title: "Dispatch",
  signInTitle: "Logga in",
  signInHelp: "Klistra in token du fick vid inloggningen.",
  token: "Token",
  signIn: "Logga in",
  signOut: "Logga ut",
  badToken: "Denna token godtogs inte. Logga in igen.",
  connecting: "Ansluter…",
  online: "Ansluten",
  offlineConn: "Anslutningen bröts — försöker igen om {s} s",
  status: "Status",
  available: "Tillgänglig",
  break: "Rast",
  offline: "Offline",
  away: "Borta",
  awayExplained: "Du missade {n} erbjudanden, så inga fler kommer just nu.",
  awayUnknown: "Du missade erbjudanden, så inga fler kommer just nu.",
  backToAvailable: "Jag är tillbaka — ta emot",
  shift: "I tjänst sedan",
  noShift: "Inte i tjänst",
  offer: "Nytt samtal",
  waited: "Kunden har väntat {t}",
  expiresIn: "{s} s att svara",
  priority: "Prioritet {p}",
  skills: "Kompetenser",
  accept: "Acceptera",
  decline: "Avböj",
  declineReason: "Anledning",
  reasonBusy: "Upptagen med en annan kund",
  reasonSkills: "Utanför mina kompetenser",
  reasonLanguage: "Språk",
  reasonOther: "Annat",
  conversations: "Dina samtal",
  none: "Inga samtal just nu.",
  context: "Sammanhang",
  outcome: "Utfall",
  resolved: "Löst",
  unresolved: "Inte löst",
  note: "Anteckning (valfri)",
  complete: "Avsluta",
  cancelled: "Kunden lämnade; samtalet stängdes.",
  revoked: "Erbjudandet är borta.",
  today: "I dag",
  earned: "Intjänat",
  worked: "Betald tid",
  notifications: "Tillåt aviseringar",
  replaced: "Du öppnade Dispatch på en annan enhet eller flik, så den här stoppades.",
  useHere: "Använd här",
  notSent: "Inte skickat: anslutningen är nere. Försök igen när den är tillbaka.",
  removed: "Du har tagits bort ur listan.",
  unavailable: "Dispatch går inte att nå just nu.",
  tryAgain: "Försök igen",
};

const dictionaries: Record<string, Words> = { en, sv };

/** The first of the browser's languages we speak, else English. */
export const locale: string =
  (navigator.languages ?? [navigator.language])
    .map((l) => l.slice(0, 2).toLowerCase())
    .find((l) => l in dictionaries) ?? "en";

const words = dictionaries[locale] ?? en;

/** The word for `key`, with `{name}` placeholders filled from `values`. */
export function t(key: keyof Words, values: Record<string, string | number> = {}): string {
  return words[key].replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? ""));
}

/** Fills every element with a `data-t` attribute with its word. */
export function translate(root: ParentNode): void {
  for (const el of root.querySelectorAll<HTMLElement>("[data-t]")) {
    el.textContent = t(el.dataset.t as keyof Words);
  }
}

export type WordKey = keyof Words;
