"""Sign-in with the identity provider: authorization code with PKCE (S256), state and nonce."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from prizeflow_console.application.ports import IdentityProvider, SignedIn, SignInError
from prizeflow_console.domain.pkce import LoginAttempt, safe_next


@dataclass(frozen=True)
class SignInFlow:
    idp: IdentityProvider

    async def begin(self, *, next_path: str | None, login_hint: str | None) -> tuple[LoginAttempt, str]:
        attempt = LoginAttempt.new(safe_next(next_path))
        url = await self.idp.authorization_url(
            state=attempt.state, nonce=attempt.nonce, code_challenge=attempt.challenge, login_hint=login_hint
        )
        return attempt, url

    async def complete(self, attempt: LoginAttempt | None, *, code: str | None, state: str | None) -> SignedIn:
        if attempt is None:
            raise SignInError("this sign-in was not started here, or it took too long: sign in again")
        if not state or not hmac.compare_digest(state.encode(), attempt.state.encode()):
            raise SignInError("the sign-in response does not belong to this sign-in: sign in again")
        if not code:
            raise SignInError("the identity provider returned no authorization code")
        signed = await self.idp.exchange(code=code, code_verifier=attempt.verifier, nonce=attempt.nonce)
        if not signed.viewer.roles:
            raise SignInError("your account holds no Prizeflow role: ask an administrator for one")
        return signed


__all__ = ["SignInFlow"]
