#!/usr/bin/env python3
"""Verifies a Standard Webhooks signature with the reference Python library (PyPI
`standardwebhooks`), independent of the hub's Rust implementation. Reads
{"secret", "body", "headers"} as JSON on stdin; prints the verified payload, or exits 1."""
import json
import sys

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
try:
    payload = Webhook(request["secret"]).verify(request["body"], request["headers"])
except Exception as error:  # the library raises WebhookVerificationError
    print(f"verification failed: {error}", file=sys.stderr)
    sys.exit(1)
print(json.dumps(payload))
