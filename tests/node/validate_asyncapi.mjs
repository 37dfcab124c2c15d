// Validates the AsyncAPI document on stdin with @asyncapi/parser, the parser and rule set that
// `asyncapi validate` (@asyncapi/cli) runs. Prints every diagnostic of severity error or warning
// and exits 1 if there is an error (or the document is not AsyncAPI 3.0); prints what the parser
// read (channels, operations, messages by name) as JSON on success.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const text = readFileSync(0, "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const serious = diagnostics.filter(
  (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
);
for (const d of serious) {
  console.error(`${d.severity === DiagnosticSeverity.Error ? "error" : "warning"} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
if (!document || diagnostics.some((d) => d.severity === DiagnosticSeverity.Error)) {
  process.exit(1);
}
if (document.version() !== "3.0.0") {
  console.error(`asyncapi ${document.version()}, not 3.0.0`);
  process.exit(1);
}
console.log(
  JSON.stringify({
    channels: document.channels().all().map((c) => c.address()),
    operations: document.operations().all().map((o) => `${o.action()} ${o.id()}`),
    messages: document.messages().all().map((m) => m.name()),
  }),
);
