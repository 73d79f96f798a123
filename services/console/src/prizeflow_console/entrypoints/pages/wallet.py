"""Wallet (players): balances by asset, history, top-ups through the provider's checkout, payout requests and
their live status. The player is always the signed-in person; rewards checks it again on every call."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from pydantic import ValidationError

from prizeflow_console.application.compliance import MyVerification, ReadMyVerification, StartMyVerification
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.application.wallet import (
    TOP_UP_ASSETS,
    CheckTopUp,
    Outcome,
    ReadWallet,
    RequestPayout,
    SandboxCheckout,
    ShowClaim,
    ShowTopUp,
    StartTopUp,
)
from prizeflow_console.domain.money import AmountError, parse_major, redeemable
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.pages.reconciliation import my_history
from prizeflow_console.entrypoints.web import (
    Session,
    apis,
    back,
    flash,
    fragment,
    may,
    page,
    problem_text,
    signed_in,
)
from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_runtime.params import IdentifierPath

_REQUEST_KEY: Final = re.compile(r"^wallet-[A-Za-z0-9_\-]{16,64}$")  # as `_new_key` makes them


@dataclass(frozen=True, slots=True)
class DestinationKind:
    type: DestinationType
    label: str
    hint: str


# What a player may be paid to, with the format each takes. Rewards refuses a kind no payout provider pays
# (`no_payout_route`); the sandbox only exists where payouts runs its sandbox provider (dev and staging).
DESTINATIONS: Final = tuple(
    DestinationKind(DestinationType(kind), label, hint)
    for kind, label, hint in (
        ("stellar_account", "Stellar account", "A Stellar public key: G and 55 more capital letters or digits 2 to 7."),
        ("stripe_account", "Stripe account", "Your Stripe connected account id: acct_ and letters or digits."),
        ("bank_account", "Bank account", "Your account reference as your bank gives it, without spaces."),
        ("email", "Email", "An email address, e.g. name@example.com."),
        ("crypto_address", "Crypto address", "The address without spaces; a memo or tag goes in its own field."),
        ("sandbox", "Sandbox (test payouts)", "Test payouts only: <scenario>:<anything>, e.g. success:me."),
    )
)
_KINDS: Final = {d.type.value: d for d in DESTINATIONS}


def offered(dev: bool) -> tuple[DestinationKind, ...]:
    """The sandbox is offered in the dev profile only (elsewhere rewards would refuse it: no_payout_route)."""
    return DESTINATIONS if dev else tuple(d for d in DESTINATIONS if d.type.value != "sandbox")


def _new_key() -> str:
    """One per rendered form: submitting it twice sends the same key, and rewards makes one top-up or claim."""
    return "wallet-" + secrets.token_urlsafe(24)


def _field(form: Mapping[str, Any], name: str, limit: int = 300) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def _top_up_form(asset: str = "", amount: str = "") -> dict[str, str]:
    return {"asset": asset or TOP_UP_ASSETS[0], "amount": amount, "key": _new_key()}


def _claim_form(**values: str) -> dict[str, str]:
    return {"asset": "", "amount": "", "type": "", "address": "", "memo": "", "key": _new_key(), **values}


class WalletController(Controller):
    path = "/wallet"
    include_in_schema = False

    async def _render(
        self,
        request: Request[Any, Any, Any],
        session: Session,
        *,
        cursor: str | None = None,
        top_up: dict[str, str] | None = None,
        claim: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        wallet = await ReadWallet(apis(request))(session.viewer.user_id, token=session.token, cursor=cursor)
        return page(
            request, "wallet.html", session=session, current_page=Page.WALLET, wallet=wallet, cursor=cursor,
            top_up_form=top_up or _top_up_form(), claim_form=claim or _claim_form(), errors=errors or {},
            top_up_assets=TOP_UP_ASSETS, assets=ASSETS, destinations=offered(bool(request.app.state.dev)),
            status_code=status_code,
        )  # fmt: skip

    @get("/")
    async def show(
        self,
        request: Request[Any, Any, Any],
        cursor: Annotated[str | None, QueryParameter(max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")] = None,
    ) -> Template:
        session = signed_in(request, Page.WALLET)
        return await self._render(request, session, cursor=cursor)

    @get("/history.csv")
    async def history_csv(
        self,
        request: Request[Any, Any, Any],
        since: Annotated[str | None, QueryParameter(max_length=32)] = None,
        through: Annotated[str | None, QueryParameter(max_length=32)] = None,
    ) -> Response[Any]:
        """The player's own history as CSV, streamed from rewards (`GET /v1/me/history.csv`: the player is the
        token's subject); a refusal is said on the wallet page."""
        session = signed_in(request, Page.WALLET)
        try:
            download = await my_history(request, session, since, through)
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
            return back("/wallet")
        if download is None:
            flash(request, "error", "Choose a first and a last day (the last not before the first).")
            return back("/wallet")
        return download

    @post("/top-up")
    async def top_up(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        """A checkout session for the typed amount; then the top-up's own page (its checkout, its live status)."""
        session = may(request, Page.WALLET, Action.USE_WALLET)
        form = await request.form()
        asset, amount_text, key = _field(form, "asset", 12), _field(form, "amount", 40), _field(form, "key", 80)
        values = {**_top_up_form(asset, amount_text), "key": key if _REQUEST_KEY.fullmatch(key) else _new_key()}
        errors: dict[str, str] = {}
        amount = 0
        if asset not in TOP_UP_ASSETS:
            errors["top_up_asset"] = f"Choose one of {', '.join(TOP_UP_ASSETS)}"
        else:
            try:
                amount = parse_major(amount_text, asset)
            except AmountError as err:
                errors["top_up_amount"] = f"Amount: {err}"
        if not errors and not _REQUEST_KEY.fullmatch(key):
            errors["top_up"] = "This form had expired; check the amount and send it again"
        if errors:
            return await self._render(request, session, top_up=values, errors=errors, status_code=400)
        try:
            top_up_id = await StartTopUp(apis(request))(
                session.viewer.user_id, asset=asset, amount=amount, request_key=key, token=session.token
            )
        except ApiProblem as problem:
            return await self._render(
                request, session, top_up=values, errors={"top_up": problem_text(problem)},
                status_code=_shown_status(problem),
            )  # fmt: skip
        flash(request, "success", "Checkout started: pay to add the money to your wallet")
        return back(f"/wallet/top-ups/{top_up_id}")

    @post("/claim")
    async def claim(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        """A payout request (claim) to the typed destination; then its own page with its live status."""
        session = may(request, Page.WALLET, Action.USE_WALLET)
        form = await request.form()
        values = _claim_form(
            asset=_field(form, "asset", 12), amount=_field(form, "amount", 40), type=_field(form, "type", 40),
            address=_field(form, "address", 300), memo=_field(form, "memo", 80), key=_field(form, "key", 80),
        )  # fmt: skip
        errors = _claim_errors(values)
        if not _REQUEST_KEY.fullmatch(values["key"]):
            values["key"] = _new_key()
            errors.setdefault("claim", "This form had expired; check it and send it again")
        if errors:
            return await self._render(request, session, claim=values, errors=errors, status_code=400)
        destination = {"type": values["type"], "address": values["address"]}
        if values["memo"]:
            destination["memo"] = values["memo"]
        try:
            claim_id = await RequestPayout(apis(request))(
                asset=values["asset"], amount=parse_major(values["amount"], values["asset"]),
                destination=destination, request_key=values["key"], token=session.token,
            )  # fmt: skip
        except ApiProblem as problem:
            return await self._render(
                request, session, claim=values, errors={"claim": problem_text(problem)},
                status_code=_shown_status(problem),
            )  # fmt: skip
        flash(request, "success", "Payout requested")
        return back(f"/wallet/claims/{claim_id}")

    @get("/top-ups/{top_up_id:str}")
    async def top_up_status(self, request: Request[Any, Any, Any], top_up_id: IdentifierPath) -> Template:
        """The top-up's page; for htmx (polling while it waits for payment) only its status fragment."""
        session = signed_in(request, Page.WALLET)
        try:
            found = await ShowTopUp(apis(request))(session.viewer.user_id, top_up_id, token=session.token)
        except ApiProblem as problem:
            return self._unreadable(request, session, "top-up-status", problem)
        if found is None:
            return self._not_found(request, session, "top-up")
        if _is_htmx(request):
            return fragment("_wallet_top_up.html", top_up=found, oob=True)
        return page(request, "wallet_top_up.html", session=session, current_page=Page.WALLET, title="Top-up",
                    top_up=found)  # fmt: skip

    @post("/top-ups/{top_up_id:str}/sandbox")
    async def sandbox(self, request: Request[Any, Any, Any], top_up_id: IdentifierPath) -> Redirect:
        """The sandbox provider's checkout, done from here (dev profile): pay, or let the session expire."""
        session = may(request, Page.WALLET, Action.USE_WALLET)
        form = await request.form()
        choice = _field(form, "outcome", 20)
        if choice not in Outcome._value2member_map_:
            flash(request, "error", "Choose Pay or Let it expire")
            return back(f"/wallet/top-ups/{top_up_id}")
        outcome = Outcome(choice)
        try:
            done = await SandboxCheckout(apis(request))(session.viewer.user_id, top_up_id, outcome, token=session.token)
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            if done is None:
                raise NotFoundException("no such sandbox top-up of yours")
            flash(request, "success", "Paid at the sandbox checkout" if outcome is Outcome.PAID else
                  "You let the sandbox checkout expire")  # fmt: skip
        return back(f"/wallet/top-ups/{top_up_id}")

    @post("/top-ups/{top_up_id:str}/verify")
    async def verify(self, request: Request[Any, Any, Any], top_up_id: IdentifierPath) -> Redirect:
        """Back from the provider's checkout: ask rewards to read the payment back from the provider now."""
        session = may(request, Page.WALLET, Action.USE_WALLET)
        try:
            await CheckTopUp(apis(request))(session.viewer.user_id, top_up_id, token=session.token)
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            flash(request, "success", "Checked with the provider")
        return back(f"/wallet/top-ups/{top_up_id}")

    @get("/verification")
    async def verification(self, request: Request[Any, Any, Any]) -> Template:
        """The player's identity verification: its status and what to do next, and a button to start or resume it."""
        session = signed_in(request, Page.WALLET)
        try:
            mine = await ReadMyVerification(apis(request))(token=session.token)
        except ApiProblem as problem:
            return self._verification_page(request, session, None, problem)
        return self._verification_page(request, session, mine, None)

    @post("/verification")
    async def start_verification(self, request: Request[Any, Any, Any]) -> Template:
        """A fresh link to the vendor's hosted flow, followed by the player (a link, not a redirect: the console's
        `form-action` allows its own origin only)."""
        session = may(request, Page.WALLET, Action.USE_WALLET)
        try:
            mine = await StartMyVerification(apis(request))(token=session.token)
        except ApiProblem as problem:
            return self._verification_page(request, session, None, problem)
        return self._verification_page(request, session, mine, None)

    @staticmethod
    def _verification_page(
        request: Request[Any, Any, Any], session: Session, mine: MyVerification | None, problem: ApiProblem | None
    ) -> Template:
        return page(request, "wallet_verification.html", session=session, current_page=Page.WALLET,
                    title="Identity verification", mine=mine, problem=problem,
                    status_code=_shown_status(problem) if problem else 200)  # fmt: skip

    @get("/claims/{claim_id:str}")
    async def claim_status(self, request: Request[Any, Any, Any], claim_id: IdentifierPath) -> Template:
        """A payout request's page; for htmx (polling until it is final) only its status fragment."""
        session = signed_in(request, Page.WALLET)
        try:
            found = await ShowClaim(apis(request))(session.viewer.user_id, claim_id, token=session.token)
        except ApiProblem as problem:
            return self._unreadable(request, session, "claim-status", problem)
        if found is None:
            return self._not_found(request, session, "payout request")
        if _is_htmx(request):
            return fragment("_wallet_claim.html", claim=found, oob=True)
        return page(request, "wallet_claim.html", session=session, current_page=Page.WALLET, title="Payout request",
                    claim=found)  # fmt: skip

    @staticmethod
    def _not_found(request: Request[Any, Any, Any], session: Session, what: str) -> Template:
        """Nothing about it: whether it exists (someone else's) or not, the answer is the same."""
        detail = f"You have no such {what}."
        if _is_htmx(request):  # 200: htmx swaps it in, and the polling stops (it swaps no error answer)
            return fragment("_wallet_gone.html", detail=detail)
        return page(request, "error.html", session=session, title="Not found", detail=detail, status_code=404)

    @staticmethod
    def _unreadable(request: Request[Any, Any, Any], session: Session, target: str, problem: ApiProblem) -> Template:
        """Rewards did not answer: a polled status says so and keeps polling; a page shows the problem."""
        if _is_htmx(request):
            return fragment("_wallet_unreadable.html", target=target, url=request.url.path, problem=problem)
        return page(request, "error.html", session=session, title="Could not read it", detail=problem_text(problem),
                    status_code=_shown_status(problem))  # fmt: skip


def _claim_errors(values: dict[str, str]) -> dict[str, str]:
    """What the console can tell before asking: a redeemable asset, an amount it can hold, a destination of a
    kind offered in the format rewards takes. The rest (balance, limits, routes) is rewards' answer."""
    errors: dict[str, str] = {}
    asset = values["asset"]
    if asset not in ASSETS:
        errors["claim_asset"] = "Choose what to pay out"
    elif not redeemable(asset):
        errors["claim_asset"] = f"{ASSETS[asset].name} are game points: they cannot be paid out"
    else:
        try:
            parse_major(values["amount"], asset)
        except AmountError as err:
            errors["claim_amount"] = f"Amount: {err}"
    kind = _KINDS.get(values["type"])
    if kind is None:
        errors["claim_type"] = "Choose where to be paid"
    elif not values["address"]:
        errors["claim_address"] = f"Enter the destination. {kind.hint}"
    else:
        try:
            PayoutDestination.model_validate(
                {"type": kind.type.value, "address": values["address"], "memo": values["memo"] or None}
            )
        except ValidationError as err:
            fields = {str(e["loc"][0]) if e["loc"] else ("memo" if "memo" in e["msg"] else "") for e in err.errors()}
            if "memo" in fields:
                errors["claim_memo"] = "A memo is 1 to 64 letters, digits or punctuation (28 bytes for Stellar)"
            if fields - {"memo"}:
                errors["claim_address"] = f"That is not a {kind.label.lower()} destination. {kind.hint}"
    return errors


def _shown_status(problem: ApiProblem) -> int:
    return problem.status if 400 <= problem.status < 600 else 502


__all__ = ["DESTINATIONS", "WalletController"]
