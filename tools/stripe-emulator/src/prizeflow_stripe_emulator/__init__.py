"""Stripe API emulator."""
