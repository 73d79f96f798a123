"""Use cases: `ReceiveWebhook` (verify, confirm, store, publish) and `RepublishDelivery` (operators, audited)."""
