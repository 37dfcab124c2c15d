"""Parses a Prometheus text exposition with prometheus_client's parser.

Reads the exposition on stdin and prints JSON: a list of samples, each
{"name", "labels", "value"}, with the family's type under "type". Exits 1 if the parser
refuses the text.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    out = []
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.append({"family": family.name, "type": family.type, "name": s.name,
                            "labels": s.labels, "value": s.value})
    except Exception as e:
        print(f"not a valid exposition: {e}")
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
