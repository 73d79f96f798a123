"""Compliance, a bounded context of the payouts deployable (ADR 0012, ADR 0013): players' verification records, the
risk policy's versions, the sanctions lists and their screen, the re-screen of verified players.

Another context uses it only through `prizeflow_compliance.facts` (and its `domain`); the deployable's composition
root (`prizeflow_payouts.bootstrap`) wires its `bootstrap` part.
"""
