"""Compliance through the payouts admin API: the risk policy (the active version, the proposals, propose, approve,
reject), one player's verification, screening and gate decisions, and the sanctions lists (loaded versions, a
refresh now).

Every call is made as the signed-in person; payouts authorises and decides (two different admins for a policy
version; ADR 0007: the console only decides what to offer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from prizeflow_console.application.ports import ApiProblem, PlatformApi

COMPLIANCE: Final = "/v1/admin/compliance"
POLICY: Final = f"{COMPLIANCE}/policy"
PROPOSALS: Final = f"{POLICY}/proposals"
LISTS: Final = f"{COMPLIANCE}/screening/lists"
REFRESH: Final = f"{COMPLIANCE}/screening/refresh"
MY_VERIFICATION: Final = "/v1/me/verification"
# A refresh fetches every configured list from its publisher while the person waits.
REFRESH_TIMEOUT_S: Final = 120.0


def _bad_answer(what: str) -> ApiProblem:
    return ApiProblem(502, "bad_answer", "Unexpected answer", f"payouts answered without {what}", "payouts")


@dataclass(frozen=True, slots=True)
class PolicyState:
    active: dict[str, Any] | None  # None: no version was ever approved (the empty policy, version 0, applies)
    proposals: list[dict[str, Any]]


@dataclass(frozen=True)
class ShowPolicy:
    apis: PlatformApi

    async def __call__(self, *, token: str) -> PolicyState:
        answer = await self.apis.get("payouts", POLICY, token=token)
        if not isinstance(answer, dict):
            raise _bad_answer("the policy")
        active = answer.get("active")
        proposals = answer.get("proposals")
        return PolicyState(
            active if isinstance(active, dict) else None,
            [p for p in proposals if isinstance(p, dict)] if isinstance(proposals, list) else [],
        )


@dataclass(frozen=True)
class ProposePolicy:
    """A new version of the rules, waiting for a second admin. A body payouts refuses is its 422 (field errors in
    the problem's `errors`)."""

    apis: PlatformApi

    async def __call__(self, rules: list[Any], note: str, reason: str, *, token: str) -> dict[str, Any]:
        body = {"policy": {"rules": rules, "note": note}, "reason": reason}
        answer = await self.apis.send("POST", "payouts", PROPOSALS, token=token, body=body)
        if not isinstance(answer, dict):
            raise _bad_answer("the proposal")
        return answer


@dataclass(frozen=True)
class DecideProposal:
    """Approve (it becomes the active version) or reject a proposal; never its proposer's to decide (payouts)."""

    apis: PlatformApi

    async def __call__(self, proposal_id: str, decision: str, reason: str, *, token: str) -> dict[str, Any]:
        if decision not in ("approve", "reject"):
            raise ValueError(decision)
        path = f"{PROPOSALS}/{quote(proposal_id, safe='')}/{decision}"
        answer = await self.apis.send("POST", "payouts", path, token=token, body={"reason": reason})
        return answer if isinstance(answer, dict) else {}


@dataclass(frozen=True)
class ShowPlayer:
    """A player's verification status and history, screening outcome and the gate's decisions (staff only)."""

    apis: PlatformApi

    async def __call__(self, player_id: str, *, token: str) -> dict[str, Any]:
        path = f"{COMPLIANCE}/players/{quote(player_id, safe='')}"
        answer = await self.apis.get("payouts", path, token=token)
        if not isinstance(answer, dict):
            raise _bad_answer("the player's compliance record")
        return answer


def _lists(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise _bad_answer("a list of sanctions lists")
    return [item for item in answer if isinstance(item, dict)]


@dataclass(frozen=True)
class ListSanctions:
    apis: PlatformApi

    async def __call__(self, *, token: str) -> list[dict[str, Any]]:
        return _lists(await self.apis.get("payouts", LISTS, token=token))


@dataclass(frozen=True)
class RefreshSanctions:
    """Fetch every configured list now (admin); the answer is the loaded versions afterwards."""

    apis: PlatformApi

    async def __call__(self, *, token: str) -> list[dict[str, Any]]:
        answer = await self.apis.send("POST", "payouts", REFRESH, token=token, body={}, timeout_s=REFRESH_TIMEOUT_S)
        return _lists(answer)


@dataclass(frozen=True, slots=True)
class MyVerification:
    """A player's own verification as payouts tells it: a status and the next step in words (never a threshold);
    `url`: the vendor's hosted flow, only when one was just started."""

    status: str
    message: str
    url: str | None = None


def _mine(answer: Any, *, with_url: bool) -> MyVerification:
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
        raise _bad_answer("a verification status")
    url = answer.get("url")
    # Only a web address is a link to follow (anything else from payouts is not put in an href).
    usable = with_url and isinstance(url, str) and url.startswith(("https://", "http://"))
    return MyVerification(str(answer["status"]), str(answer.get("message") or ""), url if usable else None)


@dataclass(frozen=True)
class ReadMyVerification:
    """The signed-in player's verification (payouts reads the player from the token, never a parameter)."""

    apis: PlatformApi

    async def __call__(self, *, token: str) -> MyVerification:
        return _mine(await self.apis.get("payouts", MY_VERIFICATION, token=token), with_url=False)


@dataclass(frozen=True)
class StartMyVerification:
    """A link to the vendor's hosted flow for the signed-in player (a fresh one each time; the same verification)."""

    apis: PlatformApi

    async def __call__(self, *, token: str) -> MyVerification:
        return _mine(await self.apis.send("POST", "payouts", MY_VERIFICATION, token=token, body={}), with_url=True)


__all__ = [
    "COMPLIANCE",
    "LISTS",
    "MY_VERIFICATION",
    "POLICY",
    "PROPOSALS",
    "REFRESH",
    "REFRESH_TIMEOUT_S",
    "DecideProposal",
    "ListSanctions",
    "MyVerification",
    "PolicyState",
    "ProposePolicy",
    "ReadMyVerification",
    "RefreshSanctions",
    "ShowPlayer",
    "ShowPolicy",
    "StartMyVerification",
]
