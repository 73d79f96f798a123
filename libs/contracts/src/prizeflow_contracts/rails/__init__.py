"""Rails' pure wire rules, one module per rail, and their webhook faces (`reading`, `registry`).

Each `<rail>.py` holds a rail's `WebhookReader` (as `READER`, which `registry` finds) and the port it asks its
provider back through; `<rail>_events.py` (or the reader's own module) how its callbacks become Prizeflow events.
Payouts and the webhook ingress read them alike.
"""
