"""TON building blocks shared by payouts, the signer and the TON emulator: strict addresses, wallet v4r2 external
messages with one transfer (TON or a jetton), highload wallet v3 external messages with a batch of transfers
(`highload`), and the checks that read them back."""
