// The live events of API.md §10 read with `fetch` (an EventSource cannot send the bearer
// token, and the token never goes in a query string), resumed with `Last-Event-ID` after a
// drop, with backoff and jitter.

export type LiveEvent = { id: string; type: string; body: { type: string; timestamp: string; data: Record<string, unknown> } };

export type StreamState = "connecting" | "open" | "retrying" | "refused";

export class EventStream {
  private lastId: string;
  private stopped = false;
  private attempt = 0;
  private abort: AbortController | null = null;

  /** Starts `replaySecs` before `serverNow` (the server's clock, not the operator's: stream
   * ids are the server's milliseconds), so the console opens with what just happened. */
  constructor(
    private readonly token: string,
    private readonly onEvent: (event: LiveEvent) => void,
    private readonly onState: (state: StreamState) => void,
    replaySecs: number,
    serverNow: number,
  ) {
    this.lastId = `${Math.max(0, Math.floor(serverNow - replaySecs * 1000))}-0`;
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.onState("connecting");
      this.abort = new AbortController();
      try {
        const response = await fetch("/v1/events", {
          headers: { Authorization: `Bearer ${this.token}`, "Last-Event-ID": this.lastId, Accept: "text/event-stream" },
          signal: this.abort.signal,
        });
        if (response.status === 401 || response.status === 403) {
          this.onState("refused");
          return;
        }
        if (response.ok && response.body) {
          this.onState("open");
          this.attempt = 0;
          await this.read(response.body);
        }
      } catch {
        // A dropped connection: retried below.
      }
      if (this.stopped) return;
      this.onState("retrying");
      const secs = Math.min(10, 2 ** this.attempt++) * (0.7 + Math.random() * 0.6);
      await new Promise((r) => setTimeout(r, secs * 1000));
    }
  }

  /** Reads until the stream ends, or is silent for 45 s (the server sends a comment every 15). */
  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      let watchdog: number | undefined;
      const silent = new Promise<{ value: undefined; done: true }>((resolve) => {
        watchdog = window.setTimeout(() => resolve({ value: undefined, done: true }), 45_000);
      });
      const { value, done } = await Promise.race([reader.read(), silent]);
      window.clearTimeout(watchdog);
      if (done) {
        void reader.cancel().catch(() => undefined);
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      buffer = buffer.replace(/\r\n?/g, "\n");
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.dispatch(block);
      }
    }
  }

  private dispatch(block: string): void {
    let id = "";
    let type = "";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (!id || !type || data.length === 0) return;
    this.lastId = id;
    try {
      this.onEvent({ id, type, body: JSON.parse(data.join("\n")) });
    } catch {
      // A body that is not JSON is not ours; skipped.
    }
  }
}
