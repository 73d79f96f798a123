"""An emulator of the identity-verification vendor API Prizeflow uses (Sumsub-shaped), for tests and `make run`."""
