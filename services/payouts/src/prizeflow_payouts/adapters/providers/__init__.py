"""Payout provider adapters; each implements `prizeflow_contracts.providers.RewardPayoutProvider`."""
