"""The ports' implementations: PostgreSQL (group-commit writer, operators' store and queries), the Stripe API
(event confirmation) and the providers file."""
