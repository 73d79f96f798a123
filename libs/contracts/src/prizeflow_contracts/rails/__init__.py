"""Rails' pure wire rules, one module per rail, and their webhook faces (`reading`, `registry`).

Each `<rail>.py` holds a rail's `WebhookReader` and the port it asks its provider back through; each
`<rail>_events.py` how its callbacks become Prizeflow events. Payouts and the webhook ingress read them alike.
"""
