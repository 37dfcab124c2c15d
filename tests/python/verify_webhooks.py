"""Verifies webhook deliveries with the Standard Webhooks reference implementation.

Reads {"secret": "whsec_...", "requests": [{"headers": {...}, "body": "..."}]} on stdin, checks
each request's signature (and timestamp tolerance) with `standardwebhooks`, and prints how many
it verified; exits 1 naming the first request it refuses.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    given = json.load(sys.stdin)
    hook = Webhook(given["secret"])
    for n, request in enumerate(given["requests"]):
        try:
            hook.verify(request["body"], request["headers"])
        except Exception as e:  # the package raises its own WebhookVerificationError
            print(f"request {n} ({request['headers'].get('webhook-id')}): {e}")
            return 1
    print(len(given["requests"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
