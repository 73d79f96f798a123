"""Registry asset codes (contracts `ASSETS`, provider "stellar") ↔ stellar-sdk assets."""

from __future__ import annotations

from stellar_sdk import Asset as SdkAsset
from stellar_sdk import xdr

from prizeflow_contracts.money import ASSETS, asset

PROVIDER = "stellar"


class UnsupportedAssetError(ValueError):
    """An asset with no Stellar mapping in the registry."""


def supported_asset_codes() -> frozenset[str]:
    """Registry codes payable on Stellar (those with a "stellar" provider code)."""
    return frozenset(code for code, a in ASSETS.items() if PROVIDER in a.provider_codes and a.redeemable)


def stellar_asset(code: str) -> SdkAsset:
    """ "XLM" → native, "USDC" → USDC:<issuer>, as the registry maps them."""
    try:
        mapping = asset(code).provider_codes.get(PROVIDER)
    except ValueError as err:
        raise UnsupportedAssetError(str(err)) from err
    if mapping is None or code not in supported_asset_codes():
        raise UnsupportedAssetError(f"asset {code} is not payable on Stellar")
    if mapping == "native":
        return SdkAsset.native()
    asset_code, _, issuer = mapping.partition(":")
    return SdkAsset(asset_code, issuer)


def canonical(sdk_asset: SdkAsset) -> str:
    """ "native" or "CODE:ISSUER"; the form the registry's provider codes use."""
    return "native" if sdk_asset.is_native() else f"{sdk_asset.code}:{sdk_asset.issuer}"


def registry_code_of(sdk_asset: SdkAsset | xdr.Asset) -> str | None:
    """The registry code of a Stellar asset, or None when the registry does not know it."""
    if isinstance(sdk_asset, xdr.Asset):
        sdk_asset = SdkAsset.from_xdr_object(sdk_asset)
    wanted = canonical(sdk_asset)
    for code in supported_asset_codes():
        if ASSETS[code].provider_codes[PROVIDER] == wanted:
            return code
    return None


__all__ = ["UnsupportedAssetError", "canonical", "registry_code_of", "stellar_asset", "supported_asset_codes"]
