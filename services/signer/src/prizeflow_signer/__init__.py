"""The signer: the only Prizeflow process holding key material (hot key, PKCS#11 HSM, or none)."""
