"""Key backends behind `SignatureBackend`, chosen by `build_backend` from SIGNER_BACKEND.

- `hot_key`: an Ed25519 seed in memory (env or file), only with PAYOUTS_SIGN_WITH_HOT_KEY=true.
- `pkcs11`: an Ed25519 key inside any PKCS#11 token (SoftHSM2, a network HSM, a cloud HSM's PKCS#11
  library); the private key never leaves the token: CKM_EDDSA signs the 32-byte transaction hash.
- `external`: no key at all; every request that passes the checks is answered external_signing_required.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from stellar_sdk import Keypair, StrKey

from prizeflow_signer.application.ports import BackendUnavailableError, SignatureBackend
from prizeflow_signer.settings import BackendKind, SignerSettings

ED25519_OID_DER = bytes.fromhex("06032b6570")  # EC_PARAMS: namedCurve 1.3.101.112 (Ed25519)


class HotKeyBackend:
    """An in-process Ed25519 seed. The seed is held by stellar-sdk's Keypair and never logged."""

    kind = BackendKind.HOT_KEY

    def __init__(self, secret: str) -> None:
        if not StrKey.is_valid_ed25519_secret_seed(secret):
            raise ValueError("PAYOUT_HOT_SIGNER_SECRET is not a valid Stellar secret seed (S...)")
        self._keypair = Keypair.from_secret(secret)

    @property
    def public_key(self) -> str:
        return self._keypair.public_key

    def sign(self, tx_hash: bytes) -> bytes:
        return bytes(self._keypair.sign(tx_hash))

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"HotKeyBackend(public_key={self.public_key})"


def ec_point_to_raw(point: bytes) -> bytes:
    """CKA_EC_POINT of an Ed25519 key: a DER OCTET STRING (04 20 ‖ 32 bytes) per PKCS#11 3.0, or raw."""
    if len(point) == 34 and point[0] == 0x04 and point[1] == 0x20:
        return point[2:]
    if len(point) == 32:
        return point
    raise ValueError(f"unexpected EC_POINT of {len(point)} bytes for an Ed25519 key")


class Pkcs11Backend:
    """Signs with an Ed25519 private key inside a PKCS#11 token, found by token label and key label."""

    kind = BackendKind.PKCS11

    def __init__(self, *, module: str, token_label: str, pin: str, key_label: str) -> None:
        import pkcs11

        self._pkcs11: Any = pkcs11
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._key_label = key_label
        self._lock = threading.Lock()
        self._session: Any = None
        self._private: Any = None
        self._public_key = self._open()

    def _open(self) -> str:
        p = self._pkcs11
        try:
            token = p.lib(self._module).get_token(token_label=self._token_label)
            try:
                session = token.open(user_pin=self._pin)
            except p.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 logins are per application and token: another session of this process holds it.
                session = token.open()
            self._private = session.get_key(
                object_class=p.ObjectClass.PRIVATE_KEY, key_type=p.KeyType.EC_EDWARDS, label=self._key_label
            )
            public = session.get_key(
                object_class=p.ObjectClass.PUBLIC_KEY, key_type=p.KeyType.EC_EDWARDS, label=self._key_label
            )
            raw = ec_point_to_raw(bytes(public[p.Attribute.EC_POINT]))
        except p.exceptions.PKCS11Error as err:
            raise BackendUnavailableError(f"PKCS#11 token {self._token_label!r}: {type(err).__name__}") from err
        self._session = session
        return str(StrKey.encode_ed25519_public_key(raw))

    @property
    def public_key(self) -> str:
        return self._public_key

    def sign(self, tx_hash: bytes) -> bytes:
        p = self._pkcs11
        with self._lock:  # a PKCS#11 session is not safe for concurrent use
            try:
                if self._session is None and self._open() != self._public_key:
                    raise BackendUnavailableError("the key behind the label changed; refusing to sign")
                return bytes(self._private.sign(tx_hash, mechanism=p.Mechanism.EDDSA))
            except p.exceptions.PKCS11Error as err:
                self._drop_session()
                raise BackendUnavailableError(f"PKCS#11 sign failed: {type(err).__name__}") from err

    def _drop_session(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):  # the session is being discarded either way
                self._session.close()
        self._session = None

    def close(self) -> None:
        with self._lock:
            self._drop_session()

    def __repr__(self) -> str:
        return f"Pkcs11Backend(token={self._token_label!r}, key={self._key_label!r}, public_key={self._public_key})"


class ExternalBackend:
    """No key in this process: signing happens out of band (payouts admin API)."""

    kind = BackendKind.EXTERNAL

    @property
    def public_key(self) -> None:
        return None

    def sign(self, tx_hash: bytes) -> bytes:
        raise BackendUnavailableError("the external backend holds no key")

    def close(self) -> None:
        return None


def generate_pkcs11_ed25519_key(*, module: str, token_label: str, pin: str, key_label: str) -> str:
    """Create a persistent, non-extractable Ed25519 keypair in the token; returns its G... address.

    For tests, benchmarks and key ceremonies on SoftHSM2; a production HSM has its own tooling.
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism

    token = pkcs11.lib(module).get_token(token_label=token_label)
    with token.open(user_pin=pin, rw=True) as session:
        public, _private = session.generate_keypair(
            KeyType.EC_EDWARDS,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            public_template={Attribute.EC_PARAMS: ED25519_OID_DER},
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            label=key_label,
            store=True,
        )
        return str(StrKey.encode_ed25519_public_key(ec_point_to_raw(bytes(public[Attribute.EC_POINT]))))


def _hot(settings: SignerSettings) -> SignatureBackend:
    if not settings.payouts_sign_with_hot_key:
        raise ValueError("the hot_key backend needs PAYOUTS_SIGN_WITH_HOT_KEY=true")
    return HotKeyBackend(settings.hot_secret())


def _pkcs11(settings: SignerSettings) -> SignatureBackend:
    if not settings.signer_pkcs11_token_label or not settings.signer_pkcs11_key_label:
        raise ValueError("the pkcs11 backend needs SIGNER_PKCS11_TOKEN_LABEL and SIGNER_PKCS11_KEY_LABEL")
    return Pkcs11Backend(
        module=settings.pkcs11_module,
        token_label=settings.signer_pkcs11_token_label,
        pin=settings.pkcs11_pin(),
        key_label=settings.signer_pkcs11_key_label,
    )


BACKENDS: dict[BackendKind, Callable[[SignerSettings], SignatureBackend]] = {
    BackendKind.HOT_KEY: _hot,
    BackendKind.PKCS11: _pkcs11,
    BackendKind.EXTERNAL: lambda _settings: ExternalBackend(),
}


def build_backend(settings: SignerSettings) -> SignatureBackend:
    """The backend SIGNER_BACKEND names; raises (and the process refuses to start) when misconfigured."""
    return BACKENDS[settings.signer_backend](settings)


__all__ = [
    "BACKENDS",
    "ExternalBackend",
    "HotKeyBackend",
    "Pkcs11Backend",
    "build_backend",
    "ec_point_to_raw",
    "generate_pkcs11_ed25519_key",
]
