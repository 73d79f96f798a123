"""Reconciliation: our payouts against each provider's statement, the exception queue people resolve, and the
finance exports (docs/adr/0011-reconciliation.md). A context of the payouts deployable: the other contexts import
only `statements.py`, its published interface."""
