"""The ports' implementations: PostgreSQL (the stores of `Books` and `bind`, the operators' queries), the Stripe API
(event confirmation), the gift-card API (orders fetched back) and the providers file."""
