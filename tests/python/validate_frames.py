"""Validates WebSocket frames against the AsyncAPI document's message schemas (jsonschema).

Input on stdin: {"document": <asyncapi.json>, "frames": [{"direction": "server"|"client",
"frame": {...}}, ...]}. Each frame is checked against the payload of the message
`<direction>.<frame type>`, its `$ref`s resolved within the document. Prints each invalid
frame with the reason and exits 1 if any is invalid or has no message.
"""

import json
import sys

from jsonschema import Draft7Validator

data = json.load(sys.stdin)
document = data["document"]
bad = 0
for item in data["frames"]:
    frame = item["frame"]
    key = f"{item['direction']}.{frame.get('type')}"
    if key not in document["components"]["messages"]:
        print(f"{key}: no such message in the document: {json.dumps(frame)}")
        bad += 1
        continue
    # The document as the root schema, so that "#/components/schemas/…" resolves.
    root = dict(document)
    root["$ref"] = f"#/components/messages/{key}/payload"
    for error in Draft7Validator(root).iter_errors(frame):
        print(f"{key}: {error.message} at {list(error.absolute_path)}: {json.dumps(frame)}")
        bad += 1
sys.exit(1 if bad else 0)
