// The agent WebSocket (API.md §6): authenticates with the first frame, reconnects with backoff
// and jitter, and hands every server frame to `onFrame`.

export type Frame = { type: string; [field: string]: unknown };

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "open" }
  | { kind: "waiting"; retryInSecs: number }
  | { kind: "refused"; code: number };

/** Close codes after which reconnecting cannot help (API.md §6). */
const FINAL = new Set([4001, 4003, 4009]);

export class Connection {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: number | undefined;
  private stopped = false;
  private nextRef = 1;

  constructor(
    private readonly token: string,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onState: (state: ConnectionState) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
    // A phone coming back (unlocked, or its network back) reconnects at once rather than at
    // the next timer: a socket left half-open while asleep may be gone.
    const wake = () => {
      if (this.stopped || document.hidden) return;
      if (this.socket?.readyState === WebSocket.OPEN && navigator.onLine) return;
      this.attempt = 0;
      window.clearTimeout(this.timer);
      this.open();
    };
    window.addEventListener("online", wake);
    document.addEventListener("visibilitychange", wake);
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.socket?.close(1000);
  }

  /** Sends a frame with a fresh `ref`; false when not connected (the caller shows it). */
  send(frame: Frame): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ ...frame, ref: this.nextRef++ }));
    return true;
  }

  private open(): void {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let socket: WebSocket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/v1/agent/ws`);
    } catch {
      this.retry();
      return;
    }
    this.socket?.close();
    this.socket = socket;
    this.onState({ kind: "connecting" });
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", token: this.token }));
    });
    socket.addEventListener("message", (event) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(event.data)) as Frame;
      } catch {
        return;
      }
      if (frame.type === "welcome") {
        this.attempt = 0;
        this.onState({ kind: "open" });
      }
      this.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.stopped) return;
      if (FINAL.has(event.code)) {
        this.onState({ kind: "refused", code: event.code });
        return;
      }
      this.retry();
    });
  }

  /** 1, 2, 4, 8 s, then every 10 s, each ±30 %: well within the grace period. */
  private retry(): void {
    const base = Math.min(10, 2 ** this.attempt);
    this.attempt += 1;
    const secs = base * (0.7 + Math.random() * 0.6);
    this.onState({ kind: "waiting", retryInSecs: Math.ceil(secs) });
    this.timer = window.setTimeout(() => this.open(), secs * 1000);
  }
}
